#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cmath>
#include <type_traits>
#include <utility>
#include <vector>
#include <string>

#include "ctnn/kernels/channel_transform.hpp"
#include "ctnn/kernels/elementwise.hpp"
#include "ctnn/kernels/scratch.hpp"
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
    /// so the BatchNorm output (which backward() does not read) is never stored. With a
    /// `residual` (the shape of y), y = BatchNorm(x) + residual, clamped after the sum if `relu`:
    /// Residual's add and ReLU after a main branch that ends in this layer. With `x_moments`
    /// (Σx and Σx² of each channel c at 2c and 2c + 1, as the convolution before takes them while
    /// it stores x: ChannelTransform::moments), train mode needs no pass of its own for them.
    void forward(const Batch<In, T>& x, Batch<In, T>& y, Mode mode, bool relu = false,
                 const Batch<In, T>* residual = nullptr, const double* x_moments = nullptr) {
      const std::size_t batch = x.batch_size();
      y.resize(batch);
      last_mode_ = mode;
      const std::size_t count = batch * plane;
      if (mode == Mode::train && count < 2)
        throw std::invalid_argument("BatchNorm2d: expected more than 1 value per channel when training");
      if (mode == Mode::train) {
        // Σx and Σx² in one pass: in double, E[x²] − mean² keeps float precision unless |mean|
        // exceeds the standard deviation by over 10³, far from what follows a convolution.
        if (!x_moments) {
          sum_blocks(batch, [&](std::size_t n, std::size_t c, kernels::LaneSums& sums) {
            sums.add_squares(x.image(n) + c * plane, plane);
          });
        }
        const double update_weight =  // of this batch in the running statistics
            detail::cumulative_batchnorm_statistics ? 1.0 / double(num_batches_tracked.value + 1) : momentum;
        for (std::size_t c = 0; c < std::size_t(Channels); ++c) {
          const auto [sum, squares] = x_moments ? std::pair(x_moments[2 * c], x_moments[2 * c + 1]) : block_totals(c);
          const double mean = sum / double(count), centered = std::max(squares - sum * mean, 0.0);
          set_statistics(c, T(mean), T(1.0 / std::sqrt(centered / double(count) + eps)));
          running_mean.value[c] = T((1 - update_weight) * running_mean.value[c] + update_weight * mean);
          running_var.value[c] = T((1 - update_weight) * running_var.value[c] + update_weight * centered / double(count - 1));
        }
        ++num_batches_tracked.value;
      } else {
        for (std::size_t c = 0; c < std::size_t(Channels); ++c) use_running_statistics(c);
      }
      for_each_block(batch, [&](std::size_t n, std::size_t c) {
        const T *in = x.image(n) + c * plane, scale = scale_[c], shift = shift_[c];
        T* out = y.image(n) + c * plane;
        if (residual) {
          const T* add = residual->image(n) + c * plane;
          if (relu)
            for (std::size_t i = 0; i < plane; ++i) out[i] = std::max(normalized(in[i], scale, shift) + add[i], T(0));
          else
            for (std::size_t i = 0; i < plane; ++i) out[i] = normalized(in[i], scale, shift) + add[i];
        } else if (relu)
          for (std::size_t i = 0; i < plane; ++i) out[i] = std::max(normalized(in[i], scale, shift), T(0));
        else
          for (std::size_t i = 0; i < plane; ++i) out[i] = normalized(in[i], scale, shift);
      });
    }
    static constexpr bool fuses_following_relu = true;
    static constexpr bool adds_residual = true;  // forward(…, residual): see Sequential

    /// Eval mode as a per-channel map y = x · scale + shift (plus `residual`, then a ReLU if
    /// `relu`, as forward()), for the layer before to apply while it stores its output;
    /// forward(x, y, Mode::eval) in one pass less. Leaves the statistics backward() needs, as an
    /// eval-mode forward() does.
    kernels::ChannelTransform<T> eval_transform(bool relu, const Batch<In, T>* residual = nullptr) {
      last_mode_ = Mode::eval;
      for (std::size_t c = 0; c < std::size_t(Channels); ++c) use_running_statistics(c);
      return {scale_.data(), shift_.data(), relu, residual ? residual->data() : nullptr};
    }

    /// With `relu`, dy is the gradient of the ReLU that forward(…, relu = true) applied: it passes
    /// where the BatchNorm output, recomputed from x by forward's own expression, is positive.
    /// Sequential runs ReLU → BatchNorm backward this way: two passes over x and dy, not three.
    void backward(const Batch<In, T>& x, const Batch<In, T>&, const Batch<In, T>& dy, Batch<In, T>* dx,
                  bool relu = false) {
      const std::size_t batch = x.batch_size();
      const double count = double(batch * plane);
      // Σdy and Σdy · x̂, the two reductions both the parameter and the input gradients need.
      sum_blocks(batch, [&](std::size_t n, std::size_t c, kernels::LaneSums& sums) {
        const T *in = x.image(n) + c * plane, *g = dy.image(n) + c * plane, mean = mean_[c];
        const T scale = scale_[c], shift = shift_[c];
        const auto passed = [&](std::size_t i) { return relu_gradient(normalized(in[i], scale, shift), g[i]); };
        const auto centered = [&](std::size_t i) { return T(in[i] - mean); };
        if (relu)
          sums.add_products(plane, passed, centered);
        else
          sums.add_products(plane, [&](std::size_t i) { return g[i]; }, centered);
      });
      // dx = γ/σ · (dy − mean(dy) − x̂ · mean(dy · x̂)): batch statistics depend on every input.
      const bool train = last_mode_ == Mode::train;
      for (std::size_t c = 0; c < std::size_t(Channels); ++c) {
        const auto [sum_dy, sum_dy_centered] = block_totals(c);
        const double sum_dy_xhat = sum_dy_centered * double(inv_std_[c]);
        weight.grad[c] += T(sum_dy_xhat);
        bias.grad[c] += T(sum_dy);
        input_gradient_[c] = {weight.value[c] * inv_std_[c], train ? T(sum_dy / count) : T(0),
                              train ? T(sum_dy_xhat / count) * inv_std_[c] : T(0)};
      }
      if (!dx) return;
      dx->resize(batch);
      for_each_block(batch, [&](std::size_t n, std::size_t c) {
        const T *in = x.image(n) + c * plane, *g = dy.image(n) + c * plane, mean = mean_[c];
        const auto [scale, mean_dy, xhat_coefficient] = input_gradient_[c];
        const T forward_scale = scale_[c], forward_shift = shift_[c];
        T* out = dx->image(n) + c * plane;
        if (relu)
          for (std::size_t i = 0; i < plane; ++i) {
            const T passed = relu_gradient(normalized(in[i], forward_scale, forward_shift), g[i]);
            out[i] = scale * (passed - mean_dy - (in[i] - mean) * xhat_coefficient);
          }
        else
          for (std::size_t i = 0; i < plane; ++i) out[i] = scale * (g[i] - mean_dy - (in[i] - mean) * xhat_coefficient);
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
    // The output before any ReLU; backward's ReLU mask uses this same expression, so it matches
    // the forward's bit for bit.
    static T normalized(T value, T scale, T shift) { return value * scale + shift; }
    // gradient if output > 0, else +0 (ReLU's backward), as a bit mask: GCC turns the plain select
    // into a branch inside LaneSums' lanes, which then ran scalar at half the speed of two passes.
    static T relu_gradient(T output, T gradient) {
      using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
      return std::bit_cast<T>(std::bit_cast<Bits>(gradient) & (output > T(0) ? ~Bits(0) : Bits(0)));
    }

    void set_statistics(std::size_t c, T mean, T inv_std) {
      mean_[c] = mean;
      inv_std_[c] = inv_std;
      scale_[c] = weight.value[c] * inv_std;
      shift_[c] = bias.value[c] - mean * scale_[c];
    }
    void use_running_statistics(std::size_t c) {
      set_statistics(c, running_mean.value[c], T(1.0 / std::sqrt(double(running_var.value[c]) + eps)));
    }

    // Tasks are image blocks × channel groups fixed by the batch size alone, so every sum is
    // ordered the same for any thread count. A block's images stay with one thread, as in the
    // convolutions around this layer, so activations are read on the core that wrote them.
    // for_each_task calls f(block, n0, n1, c0, c1, thread) once per task: images [n0, n1), channels
    // [c0, c1).
    static constexpr std::size_t tasks = 16;
    static std::size_t images_per_block(std::size_t batch) { return (batch + tasks - 1) / tasks; }
    static std::size_t blocks(std::size_t batch) { return (batch + images_per_block(batch) - 1) / images_per_block(batch); }
    template <class F>
    void for_each_task(std::size_t batch, F&& f) {
      constexpr std::size_t C = Channels;
      const std::size_t per_block = images_per_block(batch), blocks = this->blocks(batch);
      const std::size_t per_group = (C + (tasks + blocks - 1) / blocks - 1) / ((tasks + blocks - 1) / blocks);
      const std::size_t groups = (C + per_group - 1) / per_group;
      parallel_for(blocks * groups, [&](std::size_t task, std::size_t thread) {
        const std::size_t block = task / groups, c0 = task % groups * per_group, c1 = std::min(C, c0 + per_group);
        f(block, block * per_block, std::min(batch, (block + 1) * per_block), c0, c1, thread);
      });
    }
    // f(n, c) for every image and channel, image by image within a task.
    template <class F>
    void for_each_block(std::size_t batch, F&& f) {
      for_each_task(batch, [&](std::size_t, std::size_t n0, std::size_t n1, std::size_t c0, std::size_t c1, std::size_t) {
        for (std::size_t n = n0; n < n1; ++n)
          for (std::size_t c = c0; c < c1; ++c) f(n, c);
      });
    }
    // f(n, c, sums) adds image n's channel c to sums, one set of lanes per block and channel (in the
    // thread's scratch), whose two totals block_totals() then adds up in block order. Images stay
    // the outer loop: read channel by channel across images, large planes came 40 % slower from L3.
    template <class F>
    void sum_blocks(std::size_t batch, F&& f) {
      block_sums_.assign(2 * std::size_t(Channels) * blocks(batch), 0.0);
      for_each_task(batch, [&](std::size_t block, std::size_t n0, std::size_t n1, std::size_t c0, std::size_t c1,
                               std::size_t thread) {
        kernels::LaneSums* lanes = kernels::scratch<kernels::LaneSums>(thread, kernels::Slot::lane_sums, c1 - c0);
        std::fill_n(lanes, c1 - c0, kernels::LaneSums{});
        for (std::size_t n = n0; n < n1; ++n)
          for (std::size_t c = c0; c < c1; ++c) f(n, c, lanes[c - c0]);
        for (std::size_t c = c0; c < c1; ++c) {
          const auto [first, second] = lanes[c - c0].totals();
          block_sums_[2 * (block * Channels + c)] = first, block_sums_[2 * (block * Channels + c) + 1] = second;
        }
      });
    }
    // Channel c's two sums over the blocks of the last sum_blocks, in block order.
    std::pair<double, double> block_totals(std::size_t c) const {
      double first = 0, second = 0;
      for (std::size_t i = 2 * c; i < block_sums_.size(); i += 2 * Channels) first += block_sums_[i], second += block_sums_[i + 1];
      return {first, second};
    }

    // Statistics of the last forward (batch or running), needed by backward.
    std::vector<T> mean_ = std::vector<T>(Channels);
    std::vector<T> inv_std_ = std::vector<T>(Channels);
    std::vector<T> scale_ = std::vector<T>(Channels);  // weight · inv_std
    std::vector<T> shift_ = std::vector<T>(Channels);  // bias − mean · scale
    Mode last_mode_ = Mode::eval;
    std::vector<double> block_sums_;
    struct InputGradient {
      T scale, mean_dy, xhat_coefficient;
    };
    std::vector<InputGradient> input_gradient_ = std::vector<InputGradient>(Channels);
  };
};

}  // namespace ctnn
