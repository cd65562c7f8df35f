#pragma once

#include <cmath>
#include <string>

#include "ctnn/kernels/channel_transform.hpp"
#include "ctnn/kernels/elementwise.hpp"
#include "ctnn/module.hpp"

namespace ctnn {

namespace detail {
// Set by update_bn (batchnorm_statistics.hpp) in the calling thread: train-mode forwards then
// make the running statistics the plain average over the batches seen, PyTorch's momentum=None.
inline thread_local bool cumulative_batchnorm_statistics = false;
}  // namespace detail

/// BatchNorm2d<C>: per-channel normalisation over (N, H, W), affine weight and bias, eps 1e-5,
/// momentum 0.1. Train mode uses the biased batch variance and updates running_mean/running_var
/// (unbiased) and num_batches_tracked; eval mode uses the running statistics. Shape preserved.
/// PyTorch: nn.BatchNorm2d(C).
template <int Channels>
struct BatchNorm2d {
  static_assert(Channels > 0, "BatchNorm2d: channel count must be positive");
  static constexpr double eps = 1e-5;
  static constexpr double momentum = 0.1;

  static std::string repr() {
    return "BatchNorm2d(" + std::to_string(Channels) + ", eps=1e-05, momentum=0.1)";
  }

  template <ShapeType In, class T>
  class Module {
    static_assert(In::channels == Channels,
                  "BatchNorm2d: channel mismatch (the input has a different channel count than num_features)");
    static constexpr std::size_t plane = In::plane;

   public:
    using input_shape = In;
    using output_shape = In;
    static constexpr std::size_t parameter_count = 2 * std::size_t(Channels);
    static constexpr std::size_t multiply_adds = 0;

    Parameter<T> weight{{Channels}};
    Parameter<T> bias{{Channels}};
    Buffer<T> running_mean{{Channels}, T(0)};
    Buffer<T> running_var{{Channels}, T(1)};
    Counter num_batches_tracked;

    /// With `relu`, the stored value is clamped at 0: Sequential runs BatchNorm → ReLU this way,
    /// so the BatchNorm output (which backward() does not read) is never stored.
    void forward(const Batch<In, T>& x, Batch<In, T>& y, Mode mode, bool relu = false) {
      const std::size_t batch = x.batch_size();
      y.resize(batch);
      last_mode_ = mode;
      const std::size_t count = batch * plane;
      if (mode == Mode::train && count < 2)
        throw std::invalid_argument("BatchNorm2d: expected more than 1 value per channel when training");
      const double update_weight =  // of this batch in the running statistics
          detail::cumulative_batchnorm_statistics ? 1.0 / double(num_batches_tracked.value + 1) : momentum;
      // One task per channel: its statistics, running-statistics update and normalisation.
      parallel_for(Channels, [&](std::size_t c, std::size_t) {
        if (mode == Mode::train) {
          double sum = 0;
          for_each_plane(x, c, [&](const T* p) { sum += kernels::lane_sum<T>(plane, [&](std::size_t i) { return p[i]; }); });
          const double mean = sum / double(count);
          const T m = T(mean);
          double squares = 0;
          for_each_plane(x, c, [&](const T* p) {
            squares += kernels::lane_sum<T>(plane, [&](std::size_t i) { return (double(p[i]) - mean) * (double(p[i]) - mean); });
          });
          const double var = squares / double(count);
          set_statistics(c, m, T(1.0 / std::sqrt(var + eps)));
          running_mean.value[c] = T((1 - update_weight) * running_mean.value[c] + update_weight * mean);
          running_var.value[c] = T((1 - update_weight) * running_var.value[c] + update_weight * squares / double(count - 1));
        } else {
          use_running_statistics(c);
        }
        const T scale = scale_[c], shift = shift_[c];
        for (std::size_t n = 0; n < batch; ++n) {
          const T* in = x.image(n) + c * plane;
          T* out = y.image(n) + c * plane;
          if (relu)
            for (std::size_t i = 0; i < plane; ++i) out[i] = std::max(in[i] * scale + shift, T(0));
          else
            for (std::size_t i = 0; i < plane; ++i) out[i] = in[i] * scale + shift;
        }
      });
      if (mode == Mode::train) ++num_batches_tracked.value;
    }
    static constexpr bool fuses_following_relu = true;

    /// Eval mode as a per-channel map y = x · scale + shift (plus a ReLU if `relu`), for the layer
    /// before to apply while it stores its output; forward(x, y, Mode::eval) in one pass less.
    /// Leaves the statistics backward() needs, as an eval-mode forward() does.
    kernels::ChannelTransform<T> eval_transform(bool relu) {
      last_mode_ = Mode::eval;
      for (std::size_t c = 0; c < std::size_t(Channels); ++c) use_running_statistics(c);
      return {scale_.data(), shift_.data(), relu};
    }

    void backward(const Batch<In, T>& x, const Batch<In, T>&, const Batch<In, T>& dy, Batch<In, T>* dx) {
      const std::size_t batch = x.batch_size();
      const double count = double(batch * plane);
      if (dx) dx->resize(batch);
      parallel_for(Channels, [&](std::size_t c, std::size_t) {
        // sum(dy) and sum(dy · x̂), the two reductions both the parameter and the input gradients need.
        const T mean = mean_[c];
        double sum_dy = 0, sum_dy_centered = 0;
        for (std::size_t n = 0; n < batch; ++n) {
          const T* in = x.image(n) + c * plane;
          const T* g = dy.image(n) + c * plane;
          sum_dy += kernels::lane_sum<T>(plane, [&](std::size_t i) { return g[i]; });
          sum_dy_centered += kernels::lane_sum<T>(plane, [&](std::size_t i) { return double(g[i]) * double(in[i] - mean); });
        }
        const double sum_dy_xhat = sum_dy_centered * double(inv_std_[c]);
        weight.grad[c] += T(sum_dy_xhat);
        bias.grad[c] += T(sum_dy);
        if (!dx) return;
        const T scale = weight.value[c] * inv_std_[c];
        // dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)): batch statistics depend on every input.
        const bool train = last_mode_ == Mode::train;
        const T mean_dy = train ? T(sum_dy / count) : T(0);
        const T xhat_coefficient = train ? T(sum_dy_xhat / count) * inv_std_[c] : T(0);
        for (std::size_t n = 0; n < batch; ++n) {
          const T* in = x.image(n) + c * plane;
          const T* g = dy.image(n) + c * plane;
          T* out = dx->image(n) + c * plane;
          for (std::size_t i = 0; i < plane; ++i) out[i] = scale * (g[i] - mean_dy - (in[i] - mean) * xhat_coefficient);
        }
      });
    }

    template <class F>
    void visit(F&& f, const std::string& prefix) {
      f(join_name(prefix, "weight"), weight);
      f(join_name(prefix, "bias"), bias);
      f(join_name(prefix, "running_mean"), running_mean);
      f(join_name(prefix, "running_var"), running_var);
      f(join_name(prefix, "num_batches_tracked"), num_batches_tracked);
    }

    /// Weight 1, bias 0 (the seed's init and PyTorch's default); running statistics reset.
    void initialize(Rng&) {
      std::fill(weight.value.begin(), weight.value.end(), T(1));
      std::fill(bias.value.begin(), bias.value.end(), T(0));
      std::fill(running_mean.value.begin(), running_mean.value.end(), T(0));
      std::fill(running_var.value.begin(), running_var.value.end(), T(1));
      num_batches_tracked.value = 0;
    }

    template <class F>
    static void describe(F&& f, const std::string& name) {
      describe_leaf<Module>(f, name, repr());
    }

   private:
    void set_statistics(std::size_t c, T mean, T inv_std) {
      mean_[c] = mean;
      inv_std_[c] = inv_std;
      scale_[c] = weight.value[c] * inv_std;
      shift_[c] = bias.value[c] - mean * scale_[c];
    }
    void use_running_statistics(std::size_t c) {
      set_statistics(c, running_mean.value[c], T(1.0 / std::sqrt(double(running_var.value[c]) + eps)));
    }

    template <class F>
    static void for_each_plane(const Batch<In, T>& x, std::size_t c, F&& f) {
      for (std::size_t n = 0; n < x.batch_size(); ++n) f(x.image(n) + c * plane);
    }

    // Statistics of the last forward (batch or running), needed by backward.
    std::vector<T> mean_ = std::vector<T>(Channels);
    std::vector<T> inv_std_ = std::vector<T>(Channels);
    std::vector<T> scale_ = std::vector<T>(Channels);  // weight · inv_std
    std::vector<T> shift_ = std::vector<T>(Channels);  // bias − mean · scale
    Mode last_mode_ = Mode::eval;
  };
};

}  // namespace ctnn
