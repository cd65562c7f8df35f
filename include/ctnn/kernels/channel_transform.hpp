// A per-channel affine map and ReLU that a kernel applies while it stores its output, so the
// layers after a convolution in eval mode (BatchNorm, ReLU) need no pass of their own.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "ctnn/kernels/elementwise.hpp"
#include "ctnn/kernels/im2col.hpp"  // first_lanes
#include "ctnn/kernels/scratch.hpp"

namespace ctnn::kernels {

/// What conv_forward does to output channel m's values as it stores them: v · scale[m] + shift[m]
/// (a null scale means 1, a null shift 0), plus the value at the same place of `residual` (laid out
/// as the output; null: none), then max(·, 0) if relu. The residual is Residual's shortcut, added
/// as the main branch's last convolution stores its output.
template <class T>
struct ChannelTransform {
  const T* scale = nullptr;
  const T* shift = nullptr;
  bool relu = false;
  const T* residual = nullptr;
  /// If not null: set to Σy and Σy² of each output channel m over the batch (at 2m and 2m + 1), y
  /// the convolution's values before the map: a train-mode BatchNorm's statistics, taken while
  /// the values are in registers rather than in a pass of their own (see OutputMoments).
  double* moments = nullptr;

  /// Whether store() changes any value (else it copies).
  bool maps() const { return scale || shift || relu || residual; }

  /// output[offset + i] = transform(row[i]) for i in [0, length), row being part of channel
  /// `channel`'s output. One pass from the GEMM's tile to the batch: applied in the tile first,
  /// then copied, ResNet50's eval-mode stores took two.
  void store(const T* row, std::size_t length, std::size_t channel, T* output, std::size_t offset) const {
    const T s = scale ? scale[channel] : T(1), b = shift ? shift[channel] : T(0);
    const T* add = residual ? residual + offset : nullptr;
    T* out = output + offset;
#if defined(__AVX512F__)
    // Masked vectors, no scalar tail: rows are often short (28 or 14 values a row in place, runs
    // of 16 or 49 for small images), and as plain loops the tails took 5 % of an MNIST step.
    if constexpr (std::is_same_v<T, float>) {
      const __m512 sv = _mm512_set1_ps(s), bv = _mm512_set1_ps(b), zero = _mm512_setzero_ps();
      const auto each = [&](auto value) {
        for (std::size_t i = 0; i < length; i += 16) {
          const __mmask16 m = first_lanes(int(std::min<std::size_t>(16, length - i)));
          __m512 v = value(m, i);
          if (relu) v = _mm512_max_ps(zero, v);  // std::max(v, 0): a NaN stays NaN
          _mm512_mask_storeu_ps(out + i, m, v);
        }
      };
      const auto in = [&](__mmask16 m, std::size_t i) { return _mm512_maskz_loadu_ps(m, row + i); };
      const auto plus = [&](__mmask16 m, std::size_t i) { return _mm512_maskz_loadu_ps(m, add + i); };
      // v · s + b contracted, as GCC compiles BatchNorm2d's normalized(); the tests that compare
      // fused and separate layers bit for bit hold the two together.
      if (scale && add) each([&](__mmask16 m, std::size_t i) { return _mm512_add_ps(_mm512_fmadd_ps(in(m, i), sv, bv), plus(m, i)); });
      else if (scale) each([&](__mmask16 m, std::size_t i) { return _mm512_fmadd_ps(in(m, i), sv, bv); });
      else if (shift && add) each([&](__mmask16 m, std::size_t i) { return _mm512_add_ps(_mm512_add_ps(in(m, i), bv), plus(m, i)); });
      else if (shift) each([&](__mmask16 m, std::size_t i) { return _mm512_add_ps(in(m, i), bv); });
      else if (add) each([&](__mmask16 m, std::size_t i) { return _mm512_add_ps(in(m, i), plus(m, i)); });
      else each(in);
      return;
    }
#endif
    const auto each = [&](auto value) {
      if (relu)
        for (std::size_t i = 0; i < length; ++i) out[i] = std::max(value(i), T(0));
      else
        for (std::size_t i = 0; i < length; ++i) out[i] = value(i);
    };
    // The same expressions as BatchNorm2d's and Residual's own loops, so fused and separate layers
    // agree bit for bit.
    if (scale && add) each([&](std::size_t i) { return (row[i] * s + b) + add[i]; });
    else if (scale) each([&](std::size_t i) { return row[i] * s + b; });
    else if (shift && add) each([&](std::size_t i) { return (row[i] + b) + add[i]; });
    else if (shift) each([&](std::size_t i) { return row[i] + b; });
    else if (add) each([&](std::size_t i) { return row[i] + add[i]; });
    else each([&](std::size_t i) { return row[i]; });
  }
};

/// ChannelTransform::moments for a convolution that runs as `tasks` tasks over `channels` output
/// channels: each task adds its values to lanes of its own (lanes()), one LaneSums per channel,
/// kept as the task's totals (keep()); finish() adds those up in task order, so the moments do not
/// depend on the thread count. The direct kernels add every value and square exactly (LaneSums);
/// the Winograd ones a block's few values in float first.
class OutputMoments {
 public:
  OutputMoments(double* totals, std::size_t tasks, std::size_t channels)
      : totals_(totals), channels_(channels),
        partials_(totals ? scratch<double>(0, Slot::moment_partials, 2 * tasks * channels) : nullptr) {
    if (totals) std::fill_n(partials_, 2 * tasks * channels, 0.0);
  }

  /// `rows` zeroed sums for a task's channels in thread `thread`, or null without moments.
  LaneSums* lanes(std::size_t thread, std::size_t rows) const {
    if (!totals_) return nullptr;
    LaneSums* sums = scratch<LaneSums>(thread, Slot::moment_lanes, rows);
    std::fill_n(sums, rows, LaneSums{});
    return sums;
  }
  /// Task `task`'s sums of channels [m0, m0 + rows), from lanes().
  void keep(std::size_t task, std::size_t m0, std::size_t rows, const LaneSums* sums) const {
    if (!totals_) return;
    for (std::size_t r = 0; r < rows; ++r) {
      const auto [sum, squares] = sums[r].totals();
      partials_[2 * (task * channels_ + m0 + r)] = sum, partials_[2 * (task * channels_ + m0 + r) + 1] = squares;
    }
  }
  /// The totals, after every task has kept its sums.
  void finish(std::size_t tasks) const {
    if (!totals_) return;
    std::fill_n(totals_, 2 * channels_, 0.0);
    for (std::size_t task = 0; task < tasks; ++task)
      for (std::size_t i = 0; i < 2 * channels_; ++i) totals_[i] += partials_[2 * task * channels_ + i];
  }

 private:
  double* totals_;
  std::size_t channels_;
  double* partials_;
};

}  // namespace ctnn::kernels
