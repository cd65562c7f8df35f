#pragma once

#include <cmath>
#include <string>

#include "ctnn/module.hpp"

namespace ctnn {

/// Linear<In, Out, Bias = true>: y = W·x + b with W of shape [Out, In] (row-major, as PyTorch).
/// Input: any shape of In values in total (a flattened [In, 1, 1] or e.g. [C, 1, 1] with C = In);
/// output [Out, 1, 1]. PyTorch: nn.Linear(In, Out, bias=Bias).
template <int InFeatures, int OutFeatures, bool Bias = true>
struct Linear {
  static_assert(InFeatures > 0 && OutFeatures > 0, "Linear: feature counts must be positive");

  static std::string repr() {
    return "Linear(in_features=" + std::to_string(InFeatures) + ", out_features=" + std::to_string(OutFeatures) +
           ", bias=" + (Bias ? "True" : "False") + ")";
  }

  template <ShapeType In, class T>
  class Module {
    static_assert(In::size == std::size_t(InFeatures),
                  "Linear: in-features differ from the flattened input size");
    using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

   public:
    using input_shape = In;
    using output_shape = Shape<OutFeatures, 1, 1>;
    static constexpr std::size_t parameter_count = std::size_t(OutFeatures) * InFeatures + (Bias ? OutFeatures : 0);
    static constexpr std::size_t multiply_adds = std::size_t(OutFeatures) * InFeatures;

    Parameter<T> weight{{OutFeatures, InFeatures}};
    Parameter<T> bias{{Bias ? OutFeatures : 0}};

    void forward(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode) {
      y.resize(x.batch_size());
      y.matrix().noalias() = weights() * x.matrix();
      if constexpr (Bias) y.matrix().colwise() += Eigen::Map<const Vector>(bias.value.data(), OutFeatures);
    }

    void backward(const Batch<In, T>& x, const Batch<output_shape, T>&, const Batch<output_shape, T>& dy,
                  Batch<In, T>* dx) {
      Eigen::Map<RowMatrix>(weight.grad.data(), OutFeatures, InFeatures).noalias() += dy.matrix() * x.matrix().transpose();
      if constexpr (Bias) Eigen::Map<Vector>(bias.grad.data(), OutFeatures) += dy.matrix().rowwise().sum();
      if (!dx) return;
      dx->resize(x.batch_size());
      dx->matrix().noalias() = weights().transpose() * dy.matrix();
    }

    template <class F>
    void visit(F&& f, const std::string& prefix) {
      f(join_name(prefix, "weight"), weight);
      if constexpr (Bias) f(join_name(prefix, "bias"), bias);
    }

    /// PyTorch's default: weight and bias ~ U(−1/√In, 1/√In) (kaiming_uniform with a = √5).
    void initialize(Rng& rng) {
      const double bound = 1.0 / std::sqrt(double(InFeatures));
      for (auto& v : weight.value) v = T(rng.uniform(-bound, bound));
      for (auto& v : bias.value) v = T(rng.uniform(-bound, bound));
    }

    template <class F>
    static void describe(F&& f, const std::string& name) {
      describe_leaf<Module>(f, name, repr());
    }

   private:
    Eigen::Map<const RowMatrix> weights() const { return {weight.value.data(), OutFeatures, InFeatures}; }
  };
};

}  // namespace ctnn
