// A per-channel affine map and ReLU that a kernel applies while it stores its output, so the
// layers after a convolution in eval mode (BatchNorm, ReLU) need no pass of their own.
#pragma once

#include <algorithm>
#include <cstddef>
#include <type_traits>

#include "ctnn/kernels/im2col.hpp"  // first_lanes

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

}  // namespace ctnn::kernels
