// C = A · B for the convolutions, with B in panels of at most 48 columns. The forward pass writes
// its patch columns straight into packed panels (im2col is the packing), and A (the weights) is
// read where it lies, one broadcast per value: nothing is packed twice, and weights used once
// (batch-1 inference) are read once. AVX-512 register tiles of 8 rows × 48 columns for float.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace ctnn::kernels {

/// Columns of a packed panel: three AVX-512 vectors of float.
inline constexpr std::size_t panel_width = 48;

/// n columns rounded up to whole panels: what a buffer of packed panels holds per row.
constexpr std::size_t whole_panels(std::size_t n) { return (n + panel_width - 1) / panel_width * panel_width; }

/// Columns per panel for packing n columns: panel_width, or 32 where that would leave a last panel
/// of one vector (1–16 columns) and 32-wide panels do not (an odd number of whole 48s: 49 columns
/// as 32 + 17, 64 as 32 + 32). A one-vector panel runs at 58 % of the speed of a two- or
/// three-vector one: 64 columns as 48 + 16 ran at 83 % of 32 + 32. Never needs more than
/// whole_panels(n) per row.
constexpr std::size_t panel_width_for(std::size_t n) {
  const std::size_t tail = n % panel_width;
  return n > panel_width && tail != 0 && tail <= 16 && n / panel_width % 2 == 1 ? 32 : panel_width;
}

/// A matrix operand read in place: element (r, k) at data[r·row_stride + k·column_stride], so a
/// row-major matrix and its transpose need no copy.
template <class T>
struct Strided {
  const T* data;
  std::size_t row_stride, column_stride;
  const T& operator()(std::size_t r, std::size_t k) const { return data[r * row_stride + k * column_stride]; }
  const T* row(std::size_t r) const { return data + r * row_stride; }
  Strided from_row(std::size_t r) const { return {row(r), row_stride, column_stride}; }
  Strided from_column(std::size_t k) const { return {data + k * column_stride, row_stride, column_stride}; }
};

/// An operand whose row r starts at data + rows[r], columns contiguous: an image read in place as
/// a convolution's patch matrix, row (c, ky, kx) being the image shifted to that kernel tap.
template <class T>
struct Tabled {
  const T* data;
  const std::uint32_t* rows;
  static constexpr std::size_t column_stride = 1;
  const T& operator()(std::size_t r, std::size_t k) const { return data[rows[r] + k]; }
  const T* row(std::size_t r) const { return data + rows[r]; }
  Tabled from_row(std::size_t r) const { return {data, rows + r}; }
  Tabled from_column(std::size_t k) const { return {data + k, rows}; }
};

/// Where B's row k starts, relative to B: evenly spaced rows (a packed panel, a row-major
/// matrix) ...
struct EvenRows {
  std::size_t ldb, start = 0;
  std::size_t operator()(std::size_t k) const { return start + k * ldb; }
  EvenRows skip(std::size_t k0) const { return {ldb, start + k0 * ldb}; }
};
/// ... or rows listed in a table: an image read in place by a convolution, row (c, ky, kx) at the
/// offset of its kernel tap.
struct TableRows {
  const std::uint32_t* offsets;
  std::size_t operator()(std::size_t k) const { return offsets[k]; }
  TableRows skip(std::size_t k0) const { return {offsets + k0}; }
};

namespace detail {

#if defined(__AVX512F__)
// rows × (vectors·16) of C (rows ≤ 8) over k in [0, K):
//   C = (accumulate ? C : 0) + Σ_k a(r, k) · B row k (at b + rows(k)).
// The last vector of each row is loaded and stored under `last`, so nothing past `width` is touched.
// Tiles of fewer than 16 accumulators sum even and odd k apart: an FMA's result is ready only a few
// issues later, so 8 sums in turn left the FMA units half idle (a 16-column weight gradient ran at
// 61 % of the 48-column one).
template <int Rows, int Vectors, class A, class BRows>
inline void panel_tile(std::size_t K, A a, const float* b, BRows b_rows, float* c, std::size_t ldc,
                       __mmask16 last, bool accumulate) {
  constexpr int Chains = Rows * Vectors < 16 ? 2 : 1;
  __m512 acc[Chains][Rows][Vectors];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) {
      const __mmask16 m = v == Vectors - 1 ? last : __mmask16(0xFFFF);
      acc[0][r][v] = accumulate ? _mm512_maskz_loadu_ps(m, c + r * ldc + 16 * v) : _mm512_setzero_ps();
      for (int ch = 1; ch < Chains; ++ch) acc[ch][r][v] = _mm512_setzero_ps();
    }
  const float* row[Rows];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) row[r] = a.row(r);
  const auto step = [&](std::size_t k, __m512 (&sum)[Rows][Vectors]) __attribute__((always_inline)) {
    const float* bk = b + b_rows(k);
    __m512 bv[Vectors];
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) bv[v] = v == Vectors - 1 ? _mm512_maskz_loadu_ps(last, bk + 16 * v) : _mm512_loadu_ps(bk + 16 * v);
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      const __m512 av = _mm512_set1_ps(row[r][k * a.column_stride]);
#pragma GCC unroll 3
      for (int v = 0; v < Vectors; ++v) sum[r][v] = _mm512_fmadd_ps(av, bv[v], sum[r][v]);
    }
  };
  std::size_t k = 0;
  for (; k + Chains <= K; k += Chains)
#pragma GCC unroll 4
    for (int ch = 0; ch < Chains; ++ch) step(k + ch, acc[ch]);
  if constexpr (Chains > 1)
    for (; k < K; ++k) step(k, acc[0]);
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r)
#pragma GCC unroll 3
    for (int v = 0; v < Vectors; ++v) {
      for (int ch = 1; ch < Chains; ++ch) acc[0][r][v] = _mm512_add_ps(acc[0][r][v], acc[ch][r][v]);
      _mm512_mask_storeu_ps(c + r * ldc + 16 * v, v == Vectors - 1 ? last : __mmask16(0xFFFF), acc[0][r][v]);
    }
}

template <int Vectors, class A, class BRows>
inline void panel_rows(std::size_t M, std::size_t K, A a, const float* b, BRows b_rows, float* c, std::size_t ldc,
                       __mmask16 last, bool accumulate) {
  const std::size_t whole = M / 8 * 8;
  for (std::size_t r = 0; r < whole; r += 8)
    panel_tile<8, Vectors>(K, a.from_row(r), b, b_rows, c + r * ldc, ldc, last, accumulate);
  for (std::size_t i = 0; i < M % 8; ++i)
    panel_tile<1, Vectors>(K, a.from_row(whole + i), b, b_rows, c + (whole + i) * ldc, ldc, last, accumulate);
}
#endif

}  // namespace detail

/// Whether panel_product has a vector kernel for T here; the convolutions use Eigen otherwise.
template <class T>
inline constexpr bool has_panel_kernel =
#if defined(__AVX512F__)
    std::is_same_v<T, float>;
#else
    false;
#endif

/// C (M × width, row stride ldc) = A (M × K) · B, or += if accumulate; B's row k is at
/// b + b_rows(k) and width ≤ panel_width of its columns are used.
template <class T, class A, class BRows>
void panel_product(std::size_t M, std::size_t K, A a, const T* b, BRows b_rows, std::size_t width, T* c,
                   std::size_t ldc, bool accumulate) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    const std::size_t vectors = (width + 15) / 16, tail = width - 16 * (vectors - 1);
    const __mmask16 last = tail == 16 ? __mmask16(0xFFFF) : __mmask16((1u << tail) - 1);
    if (vectors == 3) detail::panel_rows<3>(M, K, a, b, b_rows, c, ldc, last, accumulate);
    else if (vectors == 2) detail::panel_rows<2>(M, K, a, b, b_rows, c, ldc, last, accumulate);
    else if (vectors == 1) detail::panel_rows<1>(M, K, a, b, b_rows, c, ldc, last, accumulate);
    return;
  }
#endif
  for (std::size_t r = 0; r < M; ++r) {
    T* out = c + r * ldc;
    if (!accumulate) std::fill_n(out, width, T(0));
    for (std::size_t k = 0; k < K; ++k) {
      const T value = a(r, k);
      for (std::size_t j = 0; j < width; ++j) out[j] += value * b[b_rows(k) + j];
    }
  }
}

/// Packs the transpose of a rows × columns row-major matrix m (row stride ld) as panels of
/// `width` ≤ panel_width for panel_gemm (ldb = width): panel j's row k, at panels + j·panel_stride
/// + k·width (panel_stride 0: columns · width), holds m's rows [j·width, (j + 1)·width) at column k.
template <class T>
void pack_transposed(const T* m, std::size_t rows, std::size_t columns, std::size_t ld, T* panels,
                     std::size_t width = panel_width, std::size_t panel_stride = 0) {
  if (panel_stride == 0) panel_stride = columns * width;
#if defined(__AVX512F__)
  // 16 rows at a time, gathered down a column into one store: value by value, every store went to
  // a cache line of its own (1 % of an MNIST training step in the in-place weight gradients alone).
  if constexpr (std::is_same_v<T, float>) {
    if (width % 16 == 0 && ld <= std::size_t(INT32_MAX) / 16) {
      const __m512i row_offsets = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                     _mm512_set1_epi32(int(ld)));
      for (std::size_t r0 = 0; r0 < rows; r0 += 16) {
        const std::size_t left = rows - r0;
        const __mmask16 lanes = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
        T* out = panels + r0 / width * panel_stride + r0 % width;
        for (std::size_t k = 0; k < columns; ++k)
          _mm512_mask_storeu_ps(out + k * width, lanes,
                                _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, row_offsets, m + r0 * ld + k, 4));
      }
      return;
    }
  }
#endif
  for (std::size_t r = 0; r < rows; ++r) {
    T* out = panels + r / width * panel_stride + r % width;
    const T* in = m + r * ld;
    for (std::size_t k = 0; k < columns; ++k) out[k * width] = in[k];
  }
}

/// Depth of one pass over a panel: 384 rows of 48 floats (72 KiB) stay near the core while every
/// row block of A runs over them.
inline constexpr std::size_t panel_depth = 384;
/// Rows of A per pass over all of B's panels: 256 rows at panel_depth (384 KiB) stay in L2 while
/// the panels stream past. Without it a weight gradient with 4,608 rows (ResNet50's 512-channel
/// 3×3 layers) read all of A, 7 MB, from L3 once per panel.
inline constexpr std::size_t row_block = 256;

/// C (M × n, row stride ldc) = A (M × K) · B (+= if accumulate), B given as ceil(n / panel_width) panels: panel j's
/// row k at b + j·panel_stride + k·ldb. Packed panels: ldb = panel_width, panel_stride =
/// K·panel_width; a row-major K × n matrix: ldb = n, panel_stride = panel_width. K is taken in
/// blocks of panel_depth, always in the same order, so the result depends on the shapes only
/// (row blocks of A change which products run first, not the order of any sum).
/// The same with B's row k of every panel at b + j·panel_stride + b_rows(k): TableRows lets a
/// convolution read a zero-bordered image in place, one row per kernel tap. Panels hold `width`
/// ≤ panel_width columns (see panel_width_for).
template <class T, class A, class BRows>
void panel_gemm(std::size_t M, std::size_t K, A a, const T* b, BRows b_rows, std::size_t panel_stride,
                std::size_t n, T* c, std::size_t ldc, bool accumulate = false, std::size_t width = panel_width) {
  for (std::size_t k0 = 0; k0 < K; k0 += panel_depth) {
    const std::size_t depth = std::min(panel_depth, K - k0);
    for (std::size_t r0 = 0; r0 < M; r0 += row_block) {
      const A block = a.from_row(r0).from_column(k0);
      const std::size_t rows = std::min(row_block, M - r0);
      for (std::size_t j = 0; j * width < n; ++j)
        panel_product(rows, depth, block, b + j * panel_stride, b_rows.skip(k0), std::min(width, n - j * width),
                      c + r0 * ldc + j * width, ldc, accumulate || k0 > 0);
    }
  }
}
template <class T>
void panel_gemm(std::size_t M, std::size_t K, Strided<T> a, const T* b, std::size_t ldb, std::size_t panel_stride,
                std::size_t n, T* c, std::size_t ldc, bool accumulate = false, std::size_t width = panel_width) {
  panel_gemm<T>(M, K, a, b, EvenRows{ldb}, panel_stride, n, c, ldc, accumulate, width);
}

}  // namespace ctnn::kernels
