// The weight gradient of a convolution read in place, as dot products along the image:
//   dw[m][t] = Σ_q g[m][q] · x[offset_t + q]
// with x a zero-bordered image and offset_t its shift to kernel tap t. Vectors run along q, so a
// register tile of 4 output channels × 6 taps loads 10 vectors for 24 FMAs. As a product with
// vectors along m instead, a 16-channel layer had one vector per row and one broadcast load per
// FMA, and ran at 60 % of the forward pass.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace ctnn::kernels {

/// Lanes of one partial sum vector.
inline constexpr std::size_t tap_lanes = 16;

#if defined(__AVX512F__)
namespace detail {
// sums (Rows × Taps vectors, row m's tap t at sums + (m·taps + t)·16) += g rows × shifted x rows
// over q in [q0, q1), lane by lane (q1 − q0 a multiple of 16).
template <int Rows, int Taps>
inline void tap_tile(const float* g, std::size_t ldg, const float* x, const std::uint32_t* offsets, std::size_t q0,
                     std::size_t q1, float* sums, std::size_t taps) {
  __m512 acc[Rows][Taps];
  const float* shifted[Taps];
#pragma GCC unroll 6
  for (int t = 0; t < Taps; ++t) shifted[t] = x + offsets[t];
#pragma GCC unroll 4
  for (int m = 0; m < Rows; ++m)
#pragma GCC unroll 6
    for (int t = 0; t < Taps; ++t) acc[m][t] = _mm512_load_ps(sums + (m * taps + t) * tap_lanes);
  for (std::size_t q = q0; q < q1; q += tap_lanes) {
    __m512 gv[Rows];
#pragma GCC unroll 4
    for (int m = 0; m < Rows; ++m) gv[m] = _mm512_load_ps(g + m * ldg + q);
#pragma GCC unroll 6
    for (int t = 0; t < Taps; ++t) {
      __m512 xv = _mm512_loadu_ps(shifted[t] + q);
      // Keeps xv in a register: GCC otherwise folds the load into each of the Rows FMAs, and
      // the repeated unaligned loads, not the FMAs, set the pace (half speed).
      __asm__("" : "+v"(xv));
#pragma GCC unroll 4
      for (int m = 0; m < Rows; ++m) acc[m][t] = _mm512_fmadd_ps(gv[m], xv, acc[m][t]);
    }
  }
#pragma GCC unroll 4
  for (int m = 0; m < Rows; ++m)
#pragma GCC unroll 6
    for (int t = 0; t < Taps; ++t) _mm512_store_ps(sums + (m * taps + t) * tap_lanes, acc[m][t]);
}

// Remainders are counted down, so GCC sees the whole tiles end exactly at the multiple.
template <int Rows>
inline void tap_rows(const float* g, std::size_t ldg, const float* x, const std::uint32_t* offsets, std::size_t taps,
                     std::size_t q0, std::size_t q1, float* sums) {
  const std::size_t whole = taps / 6 * 6;
  for (std::size_t t = 0; t < whole; t += 6) tap_tile<Rows, 6>(g, ldg, x, offsets + t, q0, q1, sums + t * tap_lanes, taps);
  for (std::size_t t = whole, left = taps % 6; left > 0; ++t, --left)
    tap_tile<Rows, 1>(g, ldg, x, offsets + t, q0, q1, sums + t * tap_lanes, taps);
}
}  // namespace detail

/// sums (M × taps vectors of tap_lanes floats, 64-byte aligned) += lane-wise Σ_q g[m][q] ·
/// x[offsets[t] + q] for q in [0, width). g: M rows at stride ldg, 64-byte aligned, width and ldg
/// multiples of tap_lanes; x readable up to the largest offset + width. Each lane's additions run
/// in q order, so the result depends on the shapes only.
inline void correlate_taps(std::size_t M, std::size_t taps, const float* g, std::size_t ldg, std::size_t width,
                           const float* x, const std::uint32_t* offsets, float* sums) {
  // q in chunks of at most 1,024 (whole vectors, as even as that allows), so a chunk's g rows and
  // image rows stay in L2 across the tiles that reuse them. No smaller: each tile loads and stores
  // its 24 sums once per chunk, and MNIST's 28×28 layers (848 columns) in two chunks of 512 took
  // 1.11× the time of one.
  constexpr std::size_t most = 1024;
  const std::size_t chunks = (width + most - 1) / most;
  const std::size_t chunk = ((width + chunks - 1) / chunks + tap_lanes - 1) / tap_lanes * tap_lanes;
  for (std::size_t q0 = 0; q0 < width; q0 += chunk) {
    const std::size_t q1 = q0 + chunk < width ? q0 + chunk : width;
    const std::size_t whole = M / 4 * 4;
    for (std::size_t m = 0; m < whole; m += 4)
      detail::tap_rows<4>(g + m * ldg, ldg, x, offsets, taps, q0, q1, sums + m * taps * tap_lanes);
    for (std::size_t m = whole, left = M % 4; left > 0; ++m, --left)
      detail::tap_rows<1>(g + m * ldg, ldg, x, offsets, taps, q0, q1, sums + m * taps * tap_lanes);
  }
}

/// The sum of a vector's lanes, in a fixed order: halves, then quarters, pairs and neighbours.
/// (The zero-masked forms with a full mask: GCC 12's unmasked ones warn of an uninitialised value.)
inline float lane_total(__m512 v) {
  constexpr __mmask16 all = 0xFFFF;
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(all, v, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_maskz_shuffle_f32x4(all, v, v, 0xB1));
  v = _mm512_add_ps(v, _mm512_maskz_permute_ps(all, v, 0x4E));
  v = _mm512_add_ps(v, _mm512_maskz_permute_ps(all, v, 0xB1));
  return _mm512_cvtss_f32(v);
}
#endif

}  // namespace ctnn::kernels
