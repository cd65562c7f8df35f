#pragma once

#include <cmath>
#include <string>

#include "ctnn/kernels/im2col.hpp"
#include "ctnn/module.hpp"

namespace ctnn {

/// Conv2d<In, Out, Kernel, Stride, Padding, Bias>: square kernel, zero padding, weight OIHW.
/// Input [In, H, W] -> output [Out, (H + 2P - K)/S + 1, (W + 2P - K)/S + 1].
/// PyTorch: nn.Conv2d(In, Out, kernel_size=Kernel, stride=Stride, padding=Padding, bias=Bias).
template <int InChannels, int OutChannels, int Kernel, int Stride = 1, int Padding = 0, bool Bias = false>
struct Conv2d {
  static_assert(InChannels > 0 && OutChannels > 0, "Conv2d: channel counts must be positive");
  static_assert(Kernel > 0, "Conv2d: kernel size must be positive");
  static_assert(Stride > 0, "Conv2d: zero stride (stride must be positive)");
  static_assert(Padding >= 0, "Conv2d: padding must not be negative");

  static std::string repr() {
    return "Conv2d(" + std::to_string(InChannels) + ", " + std::to_string(OutChannels) +
           ", kernel_size=" + std::to_string(Kernel) + ", stride=" + std::to_string(Stride) +
           ", padding=" + std::to_string(Padding) + ", bias=" + (Bias ? "True" : "False") + ")";
  }

  template <ShapeType In, class T>
  class Module {
    static_assert(In::channels == InChannels,
                  "Conv2d: channel mismatch (the input has a different channel count than the layer's in_channels)");
    static_assert(Kernel <= In::height + 2 * Padding && Kernel <= In::width + 2 * Padding,
                  "Conv2d: kernel larger than padded input");

    static constexpr int patch = InChannels * Kernel * Kernel;
    static constexpr bool pointwise = Kernel == 1 && Stride == 1 && Padding == 0;
    using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    using Vector = Eigen::Matrix<T, Eigen::Dynamic, 1>;

   public:
    using input_shape = In;
    using output_shape = Shape<OutChannels, window_output_size(In::height, Kernel, Stride, Padding),
                               window_output_size(In::width, Kernel, Stride, Padding)>;
    static constexpr std::size_t parameter_count = std::size_t(OutChannels) * patch + (Bias ? OutChannels : 0);
    static constexpr std::size_t multiply_adds = std::size_t(OutChannels) * patch * output_shape::plane;
    static constexpr int positions = int(output_shape::plane);

    Parameter<T> weight{{OutChannels, InChannels, Kernel, Kernel}};
    Parameter<T> bias{{Bias ? OutChannels : 0}};

    void forward(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode) {
      y.resize(x.batch_size());
      const Eigen::Map<const RowMatrix> w(weight.value.data(), OutChannels, patch);
      for (std::size_t n = 0; n < x.batch_size(); ++n) {
        Eigen::Map<RowMatrix> out(y.image(n), OutChannels, positions);
        out.noalias() = w * columns(x.image(n));
        if constexpr (Bias) out.colwise() += Eigen::Map<const Vector>(bias.value.data(), OutChannels);
      }
    }

    void backward(const Batch<In, T>& x, const Batch<output_shape, T>&, const Batch<output_shape, T>& dy,
                  Batch<In, T>* dx) {
      const Eigen::Map<const RowMatrix> w(weight.value.data(), OutChannels, patch);
      Eigen::Map<RowMatrix> dw(weight.grad.data(), OutChannels, patch);
      if (dx) dx->resize(x.batch_size());
      for (std::size_t n = 0; n < x.batch_size(); ++n) {
        const Eigen::Map<const RowMatrix> grad_out(dy.image(n), OutChannels, positions);
        dw.noalias() += grad_out * columns(x.image(n)).transpose();
        if constexpr (Bias) Eigen::Map<Vector>(bias.grad.data(), OutChannels) += grad_out.rowwise().sum();
        if (!dx) continue;
        if constexpr (pointwise) {
          Eigen::Map<RowMatrix>(dx->image(n), patch, positions).noalias() = w.transpose() * grad_out;
        } else {
          scratch_.resize(std::size_t(patch) * positions);
          Eigen::Map<RowMatrix>(scratch_.data(), patch, positions).noalias() = w.transpose() * grad_out;
          std::fill_n(dx->image(n), In::size, T(0));
          kernels::col2im_add<InChannels, In::height, In::width, Kernel, Stride, Padding>(scratch_.data(), dx->image(n));
        }
      }
    }

    template <class F>
    void visit(F&& f, const std::string& prefix) {
      f(join_name(prefix, "weight"), weight);
      if constexpr (Bias) f(join_name(prefix, "bias"), bias);
    }

    /// The seed's He init: weight ~ N(0, sqrt(2 / (K·K·Out))); bias as PyTorch's default.
    void initialize(Rng& rng) {
      const double stddev = std::sqrt(2.0 / (Kernel * Kernel * OutChannels));
      for (auto& v : weight.value) v = T(rng.normal(0.0, stddev));
      const double bound = 1.0 / std::sqrt(double(patch));
      for (auto& v : bias.value) v = T(rng.uniform(-bound, bound));
    }

    template <class F>
    static void describe(F&& f, const std::string& name) {
      describe_leaf<Module>(f, name, repr());
    }

   private:
    // The (In·K·K) × (Ho·Wo) patch matrix of one image; a 1×1/stride-1 convolution reads the image as is.
    Eigen::Map<const RowMatrix> columns(const T* image) {
      if constexpr (pointwise) {
        return {image, patch, positions};
      } else {
        columns_.resize(std::size_t(patch) * positions);
        kernels::im2col<InChannels, In::height, In::width, Kernel, Stride, Padding>(image, columns_.data());
        return {columns_.data(), patch, positions};
      }
    }

    AlignedVector<T> columns_;
    AlignedVector<T> scratch_;
  };
};

}  // namespace ctnn
