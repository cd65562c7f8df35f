// Loops over whole activations: split into fixed slices for the thread pool, and per-plane sums
// that vectorise (independent lanes, so no reassociation of a single sum is needed).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <numeric>
#include <type_traits>
#include <utility>

#include "ctnn/threads.hpp"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace ctnn::kernels {

/// Calls f(begin, end) over [0, count) in slices of about 16K values, in parallel. Slices depend
/// only on count, so an elementwise result never depends on the thread count.
template <class F>
void parallel_slices(std::size_t count, F&& f) {
  constexpr std::size_t slice = 16384;
  parallel_for((count + slice - 1) / slice, [&](std::size_t s, std::size_t) {
    f(s * slice, std::min(count, (s + 1) * slice));
  });
}

/// sums[m] += Σ of channel m's plane over images, for N images of M planes of `plane` values (y
/// laid out N × M × plane): a convolution's bias gradient. Summed image by image.
template <class T>
void add_channel_sums(const T* y, std::size_t N, std::size_t M, std::size_t plane, T* sums) {
  for (std::size_t n = 0; n < N; ++n)
    for (std::size_t m = 0; m < M; ++m)
      sums[m] += std::accumulate(y + (n * M + m) * plane, y + (n * M + m + 1) * plane, T(0));
}

/// Values [begin, end) of a batch as an Eigen array, for vectorised expressions on one slice.
template <class B>
auto array(B& batch, std::size_t begin, std::size_t end) {
  using T = std::remove_const_t<std::remove_pointer_t<decltype(batch.data())>>;
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  using Mapped = std::conditional_t<std::is_const_v<B>, const Array, Array>;
  return Eigen::Map<Mapped>(batch.data() + begin, Eigen::Index(end - begin));
}

/// Two sums, Σ a(i) and Σ a(i)·b(i), each accumulated in 16 double lanes: float
/// terms and their products are exact in double, so the sums lose nothing to their rounding
/// (BatchNorm's gradient sums cancel heavily), and the order (hence the result) is fixed by the
/// calls' lengths. The lanes are added up once, in totals(): done per call, the two chains of 16
/// dependent adds took longer than the sums of a 16- or 49-value plane themselves.
struct LaneSums {
  alignas(64) double first[16] = {}, second[16] = {};

  /// Adds a(i) and a(i)·b(i) for i in [0, n), i to lane i mod 16.
  template <class A, class B>
  void add_products(std::size_t n, A&& a, B&& b) {
    std::size_t i = 0;
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<std::invoke_result_t<A&, std::size_t>, float>) {
      // Widened in vectors by hand: left to GCC, BatchNorm's x and x² went to double one value at
      // a time, and its statistics pass ran at half the speed of the gradient sums.
      __m512d a_low = _mm512_load_pd(first), a_high = _mm512_load_pd(first + 8);
      __m512d ab_low = _mm512_load_pd(second), ab_high = _mm512_load_pd(second + 8);
      for (; i + 16 <= n; i += 16) {
        alignas(64) float as[16], bs[16];
        for (int l = 0; l < 16; ++l) as[l] = a(i + l), bs[l] = b(i + l);
        const __m512d al = _mm512_cvtps_pd(_mm256_load_ps(as)), ah = _mm512_cvtps_pd(_mm256_load_ps(as + 8));
        a_low = _mm512_add_pd(a_low, al), a_high = _mm512_add_pd(a_high, ah);
        // An FMA rounds once, as the add after an exact product does.
        ab_low = _mm512_fmadd_pd(al, _mm512_cvtps_pd(_mm256_load_ps(bs)), ab_low);
        ab_high = _mm512_fmadd_pd(ah, _mm512_cvtps_pd(_mm256_load_ps(bs + 8)), ab_high);
      }
      _mm512_store_pd(first, a_low), _mm512_store_pd(first + 8, a_high);
      _mm512_store_pd(second, ab_low), _mm512_store_pd(second + 8, ab_high);
    }
#endif
    for (; i + 16 <= n; i += 16)
      for (int l = 0; l < 16; ++l) add_term(l, a(i + l), b(i + l));
    for (int l = 0; i < n && l < 16; ++i, ++l) add_term(l, a(i), b(i));
  }

  /// Adds v(i) and v(i)² for i in [0, n) of each of `rows` rows `stride` apart, as
  /// add_products(n, v, v) row by row does (same lanes, same results), with each row's last
  /// partial vector masked instead of added value by value. With `copy`, also copies the rows
  /// there, `copy_stride` apart: a convolution's store and its BatchNorm's statistics in one read.
  template <class T>
  void add_squares(const T* v, std::size_t n, std::size_t rows = 1, std::size_t stride = 0, T* copy = nullptr,
                   std::size_t copy_stride = 0) {
#if defined(__AVX512F__)
    if constexpr (std::is_same_v<T, float>) {
      __m512d a_low = _mm512_load_pd(first), a_high = _mm512_load_pd(first + 8);
      __m512d ab_low = _mm512_load_pd(second), ab_high = _mm512_load_pd(second + 8);
      const auto add = [&](__m512 values) {
        const __m512d low = _mm512_cvtps_pd(_mm512_castps512_ps256(values));
        const __m512d high = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(values), 1)));
        a_low = _mm512_add_pd(a_low, low), a_high = _mm512_add_pd(a_high, high);
        ab_low = _mm512_fmadd_pd(low, low, ab_low), ab_high = _mm512_fmadd_pd(high, high, ab_high);
      };
      const std::size_t whole = n / 16 * 16;
      const __mmask16 tail = __mmask16((1u << (n % 16)) - 1);  // lanes past n load 0, which adds nothing
      for (std::size_t row = 0; row < rows; ++row, v += stride) {
        for (std::size_t i = 0; i < whole; i += 16) {
          const __m512 values = _mm512_loadu_ps(v + i);
          if (copy) _mm512_storeu_ps(copy + row * copy_stride + i, values);
          add(values);
        }
        if (tail) {
          const __m512 values = _mm512_maskz_loadu_ps(tail, v + whole);
          if (copy) _mm512_mask_storeu_ps(copy + row * copy_stride + whole, tail, values);
          add(values);
        }
      }
      _mm512_store_pd(first, a_low), _mm512_store_pd(first + 8, a_high);
      _mm512_store_pd(second, ab_low), _mm512_store_pd(second + 8, ab_high);
      return;
    }
#endif
    for (std::size_t row = 0; row < rows; ++row, v += stride) {
      add_products(n, [&](std::size_t i) { return v[i]; }, [&](std::size_t i) { return v[i]; });
      if (copy) std::copy_n(v, n, copy + row * copy_stride);
    }
  }

#if defined(__AVX512F__)
  /// Adds lane l of a to first[l] and of b to second[l]: sums a kernel kept in float lanes for a
  /// few values (a Winograd block's outputs) before they join the double ones.
  void add_lanes(__m512 a, __m512 b) {
    const auto widen = [](__m512 v, int half) {
      return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), half)));
    };
    _mm512_store_pd(first, _mm512_add_pd(_mm512_load_pd(first), widen(a, 0)));
    _mm512_store_pd(first + 8, _mm512_add_pd(_mm512_load_pd(first + 8), widen(a, 1)));
    _mm512_store_pd(second, _mm512_add_pd(_mm512_load_pd(second), widen(b, 0)));
    _mm512_store_pd(second + 8, _mm512_add_pd(_mm512_load_pd(second + 8), widen(b, 1)));
  }
#endif

  /// {Σ a, Σ a·b}: the lanes summed pairwise, in a fixed order.
  std::pair<double, double> totals() const {
    double a[16], b[16];
    std::copy_n(first, 16, a), std::copy_n(second, 16, b);
    for (int width = 8; width > 0; width /= 2)
      for (int l = 0; l < width; ++l) a[l] += a[l + width], b[l] += b[l + width];
    return {a[0], b[0]};
  }

 private:
  template <class T>
  void add_term(int lane, T a, T b) {
    first[lane] += double(a);
    second[lane] += double(a) * double(b);
  }
};

}  // namespace ctnn::kernels
