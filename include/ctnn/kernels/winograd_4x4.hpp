// 3×3 stride-1 convolutions by Winograd's F(4×4, 3×3): each 4×4 block of outputs comes
// from a 6×6 block of inputs in 36 multiplies per channel pair instead of 144 (F(2×2, 3×3) needs
// 64 for the same outputs), as 36 GEMMs in the transform domain:
//   Y = Aᵀ [ (G w Gᵀ) ⊙ (Bᵀ d B) ] A.
// The interpolation points are 0, 1, −1, ½, −2 (and ∞): against the usual 0, ±1, ±2 they halve
// float32's rounding (MNIST's layers, largest error over the output's largest value: 1.3–2.3e-6
// against 2.8–8.0e-6; F(2×2)'s is 2.5–4.8e-7, the direct sum's about 4e-7).
// The weight gradient of layers with 32+ channels on both sides goes the same way: 36 GEMMs over
// the blocks, dU[ξ] = Σ dZ[ξ] V[ξ]ᵀ, then dw = Gᵀ dU G (its sums are long, so its rounding stays
// near the direct kernel's: 1.5–1.9e-7 of the sum of |products| against 0.6–1.1e-7 for F(2×2)).
#pragma once

#include <algorithm>
#include <cstddef>

#include "ctnn/kernels/channel_transform.hpp"
#include "ctnn/kernels/im2col.hpp"
#include "ctnn/kernels/winograd.hpp"
#include "ctnn/threads.hpp"

namespace ctnn::kernels {

/// Whether conv_forward can run geometry G with M outputs by F(4×4, 3×3): 3×3, stride 1, padding 1,
/// float with the AVX-512 kernels, 16 to 256 channels on both sides. Measured (2 threads): MNIST's
/// 16-channel 28×28 layer in 0.82 of the direct kernel's time; its 32-, 64- and 128-channel layers
/// in 0.72–0.82 of F(2×2)'s; ResNet50's 64@56, 128@28 and 256@14 in 0.67–0.83, 0.71–0.91 and
/// 0.83–1.00. Past 256 channels the 36 transformed kernels (4× the weights) were not measured.
template <class G, int M, class T>
constexpr bool uses_winograd_4x4 = has_panel_kernel<T> && G::kernel == 3 && G::stride == 1 && G::padding == 1 &&
                                   G::channels % 16 == 0 && G::channels >= 16 && G::channels <= 256 && M >= 16 &&
                                   M <= 256;

/// ... and does when the batch has at least a panel of 4×4 blocks.
template <class G>
constexpr std::size_t winograd_4x4_blocks(std::size_t N) { return N * winograd::Blocks<G, 4>::per_image; }

#if defined(__AVX512F__)
namespace winograd_4x4 {

inline constexpr int points = 36;  // ξ = 6i + j of the 6×6 transform domain

// G = [1 0 0; ⅓ ⅓ ⅓; −⅓ ⅓ −⅓; −16/15 −8/15 −4/15; 1/15 −2/15 4/15; 0 0 1], applied to (g0, g1, g2).
inline void kernel_column(const __m512 g[3], __m512 u[6]) {
  const __m512 third = _mm512_set1_ps(1.0f / 3), two = _mm512_set1_ps(2.0f), four = _mm512_set1_ps(4.0f);
  const __m512 outer = _mm512_add_ps(g[0], g[2]);
  u[0] = g[0];
  u[1] = _mm512_mul_ps(third, _mm512_add_ps(outer, g[1]));
  u[2] = _mm512_mul_ps(third, _mm512_sub_ps(g[1], outer));
  u[3] = _mm512_mul_ps(_mm512_set1_ps(-4.0f / 15), _mm512_fmadd_ps(four, g[0], _mm512_fmadd_ps(two, g[1], g[2])));
  u[4] = _mm512_mul_ps(_mm512_set1_ps(1.0f / 15), _mm512_fmadd_ps(four, g[2], _mm512_fnmadd_ps(two, g[1], g[0])));
  u[5] = g[2];
}

// Bᵀ = [1 −3/2 −2 3/2 1 0; 0 −1 ½ 5/2 1 0; 0 1 −5/2 ½ 1 0; 0 −2 −1 2 1 0; 0 ½ −1 −½ 1 0;
//       0 1 −3/2 −2 3/2 1], applied to (d0 … d5).
inline void input_column(const __m512 d[6], __m512 r[6]) {
  const __m512 two = _mm512_set1_ps(2.0f), half = _mm512_set1_ps(0.5f), three_halves = _mm512_set1_ps(1.5f),
               five_halves = _mm512_set1_ps(2.5f);
  const __m512 odd = _mm512_sub_ps(d[3], d[1]), even = _mm512_sub_ps(d[4], d[2]);
  r[0] = _mm512_fmadd_ps(three_halves, odd, _mm512_fnmadd_ps(two, d[2], _mm512_add_ps(d[0], d[4])));
  r[1] = _mm512_fmadd_ps(five_halves, d[3], _mm512_fmadd_ps(half, d[2], _mm512_sub_ps(d[4], d[1])));
  r[2] = _mm512_fmadd_ps(half, d[3], _mm512_fnmadd_ps(five_halves, d[2], _mm512_add_ps(d[4], d[1])));
  r[3] = _mm512_fmadd_ps(two, odd, even);
  r[4] = _mm512_fnmadd_ps(half, odd, even);
  r[5] = _mm512_fmadd_ps(three_halves, even, _mm512_fnmadd_ps(two, d[3], _mm512_add_ps(d[5], d[1])));
}

// Aᵀ = [1 1 1 1 1 0; 0 1 −1 ½ −2 0; 0 1 1 ¼ 4 0; 0 1 −1 ⅛ −8 1], applied to (p0 … p5).
inline void output_column(const __m512 p[6], __m512 o[4]) {
  const __m512 sum = _mm512_add_ps(p[1], p[2]), difference = _mm512_sub_ps(p[1], p[2]);
  o[0] = _mm512_add_ps(_mm512_add_ps(p[0], sum), _mm512_add_ps(p[3], p[4]));
  o[1] = _mm512_fnmadd_ps(_mm512_set1_ps(2.0f), p[4], _mm512_fmadd_ps(_mm512_set1_ps(0.5f), p[3], difference));
  o[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), p[4], _mm512_fmadd_ps(_mm512_set1_ps(0.25f), p[3], sum));
  o[3] = _mm512_fnmadd_ps(_mm512_set1_ps(8.0f), p[4],
                          _mm512_fmadd_ps(_mm512_set1_ps(0.125f), p[3], _mm512_add_ps(difference, p[5])));
}

// A = (Aᵀ)ᵀ applied to (g0 … g3): the output gradient's way back into the transform domain.
inline void gradient_column(const __m512 g[4], __m512 h[6]) {
  const __m512 even = _mm512_add_ps(g[0], g[2]), odd = _mm512_add_ps(g[1], g[3]);
  h[0] = g[0];
  h[1] = _mm512_add_ps(even, odd);
  h[2] = _mm512_sub_ps(even, odd);
  // g0 + ½ g1 + ¼ g2 + ⅛ g3 and g0 − 2 g1 + 4 g2 − 8 g3
  h[3] = _mm512_fmadd_ps(_mm512_set1_ps(0.5f), _mm512_fmadd_ps(_mm512_set1_ps(0.5f), _mm512_fmadd_ps(_mm512_set1_ps(0.5f), g[3], g[2]), g[1]), g[0]);
  h[4] = _mm512_fmadd_ps(_mm512_set1_ps(-2.0f), _mm512_fmadd_ps(_mm512_set1_ps(-2.0f), _mm512_fmadd_ps(_mm512_set1_ps(-2.0f), g[3], g[2]), g[1]), g[0]);
  h[5] = g[3];
}

// Gᵀ applied to (p0 … p5): the transform-domain weight gradient's way back to 3 taps.
inline void kernel_gradient_column(const __m512 p[6], __m512 e[3]) {
  const __m512 third = _mm512_set1_ps(1.0f / 3);
  const __m512 a = _mm512_mul_ps(third, _mm512_sub_ps(p[1], p[2])), b = _mm512_mul_ps(third, _mm512_add_ps(p[1], p[2]));
  e[0] = _mm512_fmadd_ps(_mm512_set1_ps(1.0f / 15), _mm512_fnmadd_ps(_mm512_set1_ps(16.0f), p[3], p[4]), _mm512_add_ps(p[0], a));
  e[1] = _mm512_fnmadd_ps(_mm512_set1_ps(2.0f / 15), _mm512_fmadd_ps(_mm512_set1_ps(4.0f), p[3], p[4]), b);
  e[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f / 15), _mm512_sub_ps(p[4], p[3]), _mm512_add_ps(a, p[5]));
}

/// V[ξ] = Bᵀ d B for blocks [first, first + count) of every channel, d the zero-padded 6×6 input
/// around each block, into panels of `width` columns: ξ's panel j row c at v + ξ·panel_values +
/// j·C·width + c·width.
template <class G>
void transform_inputs(const float* x, std::size_t first, std::size_t count, std::size_t width, float* v,
                      std::size_t panel_values) {
  constexpr int C = G::channels, H = G::height, W = G::width;
  constexpr std::size_t plane = std::size_t(H) * W;
  auto rows = winograd::WindowRows<G, 4>::chunk(first, count, 0);
  for (std::size_t done = 0; done < count; done += 16) {
    const winograd::Lanes lanes = winograd::lanes_of<G, 4>(first + done, count - done);
    const winograd::Windows<6> windows = winograd::windows_of<G, 4>(lanes);
    const auto next = winograd::WindowRows<G, 4>::chunk(first, count, done + 16);
    float* out = v + done / width * C * width + done % width;
    const float* image = x + lanes.first_image * G::image;
    for (int c = 0; c < C; ++c, image += plane, out += width) {
      rows.prefetch_ahead(x, c, next);
      __m512 t[6][6];
      for (int i = 0; i < 6; ++i) {  // t = d B, row by row
        __m512 d[6];
        for (int j = 0; j < 6; ++j)
          d[j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), windows.inside[i][j], windows.index[i][j], image, 4);
        input_column(d, t[i]);
      }
      for (int j = 0; j < 6; ++j) {  // V = Bᵀ t, column by column
        const __m512 column[6] = {t[0][j], t[1][j], t[2][j], t[3][j], t[4][j], t[5][j]};
        __m512 r[6];
        input_column(column, r);
        for (int i = 0; i < 6; ++i) _mm512_mask_storeu_ps(out + (6 * i + j) * panel_values, lanes.used, r[i]);
      }
    }
    rows = next;
  }
}

/// y = transform(Aᵀ P A) for output channels [m0, m0 + rows) of blocks [first, first + count),
/// P[ξ] read from products + ξ·rows·count + r·count + block. Each output row of a block is stored
/// as one 4-value piece: the 16 blocks' values at one column, transposed in registers (16
/// scatters per channel and 16 blocks had taken 40 % of the 16-channel 28×28 layer's time). With
/// `sums`, sums[r] takes Σ and Σ² of channel m0 + r's outputs before the transform, a block's 16 in
/// float first (about 1e-8 of the totals off), widened to double once per channel and 16 blocks.
template <class G, int M>
void transform_outputs(const float* products, std::size_t first, std::size_t count, std::size_t m0, std::size_t rows,
                       const ChannelTransform<float>& transform, float* y, LaneSums* sums) {
  using B = winograd::Blocks<G, 4>;
  constexpr int OH = G::out_height, OW = G::out_width;
  constexpr std::size_t positions = G::positions;
  for (std::size_t done = 0; done < count; done += 16) {
    const int used = int(std::min<std::size_t>(16, count - done));
    const __mmask16 used_lanes = first_lanes(used);
    // Per lane: where its block's first output lies (from first_image's channel m), the columns and
    // the rows of the block inside the output.
    const std::size_t first_image = (first + done) / B::per_image;
    std::size_t offset[16] = {};
    __mmask8 columns[16] = {};
    int inside_rows[16] = {};
    __mmask16 has_row[4] = {}, has_column[4] = {};  // lanes whose block has output row (column) i
    for (int l = 0; l < used; ++l) {
      const std::size_t q = first + done + l, block = q % B::per_image;
      const int block_row = int(block / B::columns), block_column = int(block % B::columns);
      offset[l] = (q / B::per_image - first_image) * M * positions + std::size_t(4 * block_row) * OW + 4 * block_column;
      columns[l] = __mmask8((1u << std::min(4, OW - 4 * block_column)) - 1);
      inside_rows[l] = std::min(4, OH - 4 * block_row);
      for (int i = 0; i < 4; ++i) {
        if (i < inside_rows[l]) has_row[i] |= __mmask16(1u << l);
        if (columns[l] >> i & 1) has_column[i] |= __mmask16(1u << l);
      }
    }
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t m = m0 + r;
      const float* p = products + r * count + done;
      __m512 s[4][6];
      for (int j = 0; j < 6; ++j) {  // s = Aᵀ P, column by column
        __m512 column[6], o[4];
        for (int i = 0; i < 6; ++i) column[i] = _mm512_maskz_loadu_ps(used_lanes, p + (6 * i + j) * rows * count);
        output_column(column, o);
        for (int i = 0; i < 4; ++i) s[i][j] = o[i];
      }
      float* out = y + (first_image * M + m) * positions;
      const float* add = transform.residual ? transform.residual + (first_image * M + m) * positions : nullptr;
      const __m512 scale = _mm512_set1_ps(transform.scale ? transform.scale[m] : 1.0f);
      const __m512 shift = _mm512_set1_ps(transform.shift ? transform.shift[m] : 0.0f);
      __m512 sum = _mm512_setzero_ps(), squares = _mm512_setzero_ps();
      for (int i = 0; i < 4; ++i) {  // Y = s A, row i; then the channel transform as ChannelTransform::store applies it
        __m512 v[4];
        output_column(s[i], v);
        if (sums)
          for (int j = 0; j < 4; ++j) {
            const __mmask16 inside = has_row[i] & has_column[j];
            sum = _mm512_mask_add_ps(sum, inside, sum, v[j]);
            squares = _mm512_mask3_fmadd_ps(v[j], v[j], squares, inside);
          }
        for (int j = 0; j < 4; ++j) {
          if (transform.scale) v[j] = _mm512_fmadd_ps(v[j], scale, shift);
          else if (transform.shift) v[j] = _mm512_add_ps(v[j], shift);
          if (transform.relu && !add) v[j] = _mm512_max_ps(_mm512_setzero_ps(), v[j]);
        }
        // Within each 128-bit lane L (blocks 4L … 4L + 3), a 4 × 4 transpose: row[b]'s lane L then
        // holds block 4L + b's row i.
        const __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
        const __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
        const __m512 row[4] = {_mm512_shuffle_ps(t0, t2, 0x44), _mm512_shuffle_ps(t0, t2, 0xEE),
                               _mm512_shuffle_ps(t1, t3, 0x44), _mm512_shuffle_ps(t1, t3, 0xEE)};
        const auto put = [&](int l, __m128 values) {
          if (i >= inside_rows[l]) return;  // also lanes past the count
          const std::size_t at = offset[l] + std::size_t(i) * OW;
          if (add) {
            values = _mm_add_ps(values, _mm_maskz_loadu_ps(columns[l], add + at));
            if (transform.relu) values = _mm_max_ps(_mm_setzero_ps(), values);
          }
          _mm_mask_storeu_ps(out + at, columns[l], values);
        };
        for (int b = 0; b < 4; ++b) {
          put(b, _mm512_castps512_ps128(row[b]));
          put(4 + b, _mm512_extractf32x4_ps(row[b], 1));
          put(8 + b, _mm512_extractf32x4_ps(row[b], 2));
          put(12 + b, _mm512_extractf32x4_ps(row[b], 3));
        }
      }
      if (sums) sums[r].add_lanes(sum, squares);
    }
  }
}

// F(4×4, 3×3) for winograd::forward and winograd::weight_gradient. Tasks keep 512 KiB in L2:
// twice that ran the 16-channel 28×28 forward 1.18× slower; half of it, no faster.
struct F4x4 {
  static constexpr int tile = 4, points = winograd_4x4::points;
  static constexpr std::size_t task_values = std::size_t(1) << 17;
  template <int C>
  static constexpr auto weights = &winograd::transform_weights<6, kernel_column, C>;
  template <class G>
  static constexpr auto inputs = &transform_inputs<G>;
  template <class G, int M>
  static constexpr auto outputs = &transform_outputs<G, M>;
  template <class G, int M>
  static constexpr auto gradients = &winograd::transform_gradients<G, M, 4, gradient_column>;
  template <int C, int M>
  static constexpr auto weight_gradient = &winograd::add_weight_gradient<6, kernel_gradient_column, C, M>;
};

}  // namespace winograd_4x4

/// Whether conv_backward takes the weight gradient of a uses_winograd_4x4 layer by F(4×4, 3×3)
/// (for batches with a panel of 4×4 blocks): 32+ channels on both sides, and each image group's
/// dUᵀ (36 × C × M) within 4 MiB.
template <class G, int M, class T>
constexpr bool winograd_4x4_weight_gradient = uses_winograd_4x4<G, M, T> && G::channels >= 32 && M >= 32 &&
                                              std::size_t(36) * G::channels * M * sizeof(float) <= (std::size_t(4) << 20);
#endif

}  // namespace ctnn::kernels
