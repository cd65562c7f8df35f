#pragma once

#include <cmath>
#include <string>

#include "ctnn/kernels/conv.hpp"
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
    using Geometry = kernels::ConvGeometry<InChannels, In::height, In::width, Kernel, Stride, Padding>;

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
      forward_transformed(x, y, {nullptr, Bias ? bias.value.data() : nullptr, false});
    }

    /// forward() with `transform` applied to each output value as it is stored: Sequential folds
    /// an eval-mode BatchNorm (and ReLU) that follows a bias-free convolution into it.
    void forward_transformed(const Batch<In, T>& x, Batch<output_shape, T>& y,
                             const kernels::ChannelTransform<T>& transform) {
      y.resize(x.batch_size());
      kernels::conv_forward<Geometry, OutChannels>(x.data(), x.batch_size(), weight.value.data(), transform, y.data());
    }
    static constexpr bool folds_channel_transform = !Bias;

    void backward(const Batch<In, T>& x, const Batch<output_shape, T>&, const Batch<output_shape, T>& dy,
                  Batch<In, T>* dx) {
      if (dx) dx->resize(x.batch_size());
      kernels::conv_backward<Geometry, OutChannels>(x.data(), dy.data(), x.batch_size(), weight.value.data(),
                                                    weight.grad.data(), Bias ? bias.grad.data() : nullptr,
                                                    dx ? dx->data() : nullptr);
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

  };
};

}  // namespace ctnn
