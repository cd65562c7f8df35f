// 3×3 stride-1 convolutions by Winograd's minimal filtering F(2×2, 3×3) (Lavin & Gray, 2015):
// each 2×2 block of outputs comes from a 4×4 block of inputs in 16 multiplies per channel pair
// instead of 36, as 16 GEMMs (one per point ξ of the 4×4 transform domain):
//   Y = Aᵀ [ (G w Gᵀ) ⊙ (Bᵀ d B) ] A.
// The transforms only add and halve, so float rounding stays at a few units of the direct sum's.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "ctnn/kernels/channel_transform.hpp"
#include "ctnn/kernels/elementwise.hpp"
#include "ctnn/kernels/gemm.hpp"
#include "ctnn/kernels/im2col.hpp"
#include "ctnn/kernels/scratch.hpp"
#include "ctnn/kernels/task_split.hpp"
#include "ctnn/threads.hpp"

namespace ctnn::kernels {

/// Whether geometry G with M outputs can run by F(2×2, 3×3): 3×3, stride 1, padding 1, float with
/// the AVX-512 kernels, and channels enough on both sides for 16 products of depth C to beat one
/// of depth 9·C. At 16 channels (MNIST's 28×28 layers) the transforms cost more than they save:
/// 1.21× the time of the direct kernel; at 32 (14×14) 0.78×. Used where F(4×4, 3×3)
/// (winograd_4x4.hpp) is not: too few 4×4 blocks, over 256 channels, or (weight gradient) its
/// per-group sums over 4 MiB.
template <class G, int M, class T>
constexpr bool uses_winograd = has_panel_kernel<T> && G::kernel == 3 && G::stride == 1 && G::padding == 1 &&
                               G::channels % 16 == 0 && G::channels >= 32 && M >= 32;

namespace winograd {
// The Tile × Tile output blocks of one image (Tile 2 or 4), ceil(H/Tile) × ceil(W/Tile): a block
// past the edge computes its outside rows or columns and drops them.
template <class G, int Tile = 2>
struct Blocks {
  static constexpr int rows = (G::out_height + Tile - 1) / Tile, columns = (G::out_width + Tile - 1) / Tile;
  static constexpr std::size_t per_image = std::size_t(rows) * columns;
};
}  // namespace winograd

/// ... and does when the batch has at least a panel of 2×2 blocks: with fewer, the 16 transformed
/// kernels (16/9 of the weights) are streamed for too few columns (ResNet50's 512-channel 7×7 layer
/// at batch 1, 16 blocks: 1.18× the direct kernel's time; 14×14 at batch 1, 49 blocks: 0.86×).
template <class G>
constexpr std::size_t winograd_blocks(std::size_t N) { return N * winograd::Blocks<G>::per_image; }

#if defined(__AVX512F__)
namespace winograd {

inline constexpr int points = 16;  // ξ = 4i + j of the 4×4 transform domain

// G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1] applied to (g0, g1, g2): a kernel column's way into the
// transform domain.
inline void kernel_column(const __m512 g[3], __m512 u[4]) {
  const __m512 half = _mm512_set1_ps(0.5f);
  u[0] = g[0];
  u[1] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_add_ps(g[0], g[1]), g[2]));
  u[2] = _mm512_mul_ps(half, _mm512_add_ps(_mm512_sub_ps(g[0], g[1]), g[2]));
  u[3] = g[2];
}

/// U[ξ][m][c] = (G w[m][c] Gᵀ)[ξ] for M × C 3×3 kernels w (OIHW), 16 channels per vector, Column
/// the scheme's G applied to 3 values (Side values out).
template <int Side, auto Column, int C>
void transform_weights(const float* w, int M, float* u) {
  static_assert(C % 16 == 0);
  const __m512i nine = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                          _mm512_set1_epi32(9));
  parallel_for(std::size_t(M), [&](std::size_t m, std::size_t) {
    for (int c = 0; c < C; c += 16) {
      const float* kernels = w + (m * C + c) * 9;
      __m512 g[3][3], a[Side][3];
      for (int k = 0; k < 9; ++k)  // masked: GCC 12's unmasked gather warns of an uninitialised source under -Wall
        g[k / 3][k % 3] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), __mmask16(0xFFFF), nine, kernels + k, 4);
      for (int k = 0; k < 3; ++k) {  // a = G g, column by column
        const __m512 column[3] = {g[0][k], g[1][k], g[2][k]};
        __m512 out[Side];
        Column(column, out);
        for (int i = 0; i < Side; ++i) a[i][k] = out[i];
      }
      for (int i = 0; i < Side; ++i) {  // U = a Gᵀ, row by row
        __m512 row[Side];
        Column(a[i], row);
        for (int j = 0; j < Side; ++j) _mm512_storeu_ps(u + ((std::size_t(Side * i + j) * M + m) * C + c), row[j]);
      }
    }
  });
}

// Where 16 consecutive blocks (numbered image by image, row by row) lie: per lane, the block's
// image (counted from first_image), block row and block column; `used` masks lanes past the count.
struct Lanes {
  std::size_t first_image;
  __m512i image_offset, row, column;
  __mmask16 used;
};
template <class G, int Tile = 2>
Lanes lanes_of(std::size_t first, std::size_t count) {
  using B = Blocks<G, Tile>;
  alignas(64) std::int32_t image[16] = {}, row[16] = {}, column[16] = {};
  const std::size_t first_image = first / B::per_image;
  for (std::size_t l = 0; l < std::min<std::size_t>(16, count); ++l) {
    const std::size_t q = first + l, block = q % B::per_image;
    image[l] = std::int32_t(q / B::per_image - first_image);
    row[l] = std::int32_t(block / B::columns), column[l] = std::int32_t(block % B::columns);
  }
  return {first_image, _mm512_load_si512(image), _mm512_load_si512(row), _mm512_load_si512(column),
          first_lanes(int(std::min<std::size_t>(16, count)))};
}

// Offsets (in values, from the lane's image) of inputs at (Tile·row + dy, Tile·column + dx), and
// which of them lie inside the H × W plane.
struct Places {
  __m512i offset;
  __mmask16 inside;
};
template <int H, int W, int Tile = 2>
Places at(const __m512i& row, const __m512i& column, int dy, int dx, __mmask16 used) {
  static_assert(Tile == 2 || Tile == 4);
  constexpr unsigned shift = Tile == 2 ? 1 : 2;
  const __m512i y = _mm512_add_epi32(_mm512_slli_epi32(row, shift), _mm512_set1_epi32(dy));
  const __m512i x = _mm512_add_epi32(_mm512_slli_epi32(column, shift), _mm512_set1_epi32(dx));
  const __mmask16 inside = _mm512_mask_cmplt_epi32_mask(
      _mm512_mask_cmplt_epi32_mask(_mm512_mask_cmpge_epi32_mask(_mm512_cmpge_epi32_mask(y, _mm512_setzero_si512()), x,
                                                                _mm512_setzero_si512()),
                                   y, _mm512_set1_epi32(H)),
      x, _mm512_set1_epi32(W));
  return {_mm512_add_epi32(_mm512_mullo_epi32(y, _mm512_set1_epi32(W)), x), __mmask16(inside & used)};
}

// Gather offsets (from the first lane's image) and masks of the zero-padded (Tile + 2)² inputs
// around the lanes' Tile × Tile output blocks: what an input transform reads for every channel.
template <int Side>
struct Windows {
  __m512i index[Side][Side];
  __mmask16 inside[Side][Side];
};
template <class G, int Tile>
Windows<Tile + 2> windows_of(const Lanes& lanes) {
  Windows<Tile + 2> windows;
  const __m512i image_base = _mm512_mullo_epi32(lanes.image_offset, _mm512_set1_epi32(int(G::image)));
  for (int i = 0; i < Tile + 2; ++i)
    for (int j = 0; j < Tile + 2; ++j) {
      const Places places = at<G::height, G::width, Tile>(lanes.row, lanes.column, i - 1, j - 1, lanes.used);
      windows.index[i][j] = _mm512_add_epi32(image_base, places.offset), windows.inside[i][j] = places.inside;
    }
  return windows;
}

// The input rows that the windows of up to 16 blocks [first, first + count) read in one channel:
// one range of offsets from channel 0 of image 0 per image the blocks lie in. The input
// transforms prefetch a chunk's rows a few channels ahead: its gathers had waited on L3 (an
// MNIST training step took 0.92–0.93 of its time with the prefetches on 2 threads, 0.88 on one,
// Zen 5 EPYC).
template <class G, int Tile>
class WindowRows {
 public:
  WindowRows() = default;
  /// The rows of the chunk of blocks [first + done, first + done + 16) within [first, first +
  /// count): none past the end.
  static WindowRows chunk(std::size_t first, std::size_t count, std::size_t done) {
    return done < count ? WindowRows(first + done, std::min<std::size_t>(16, count - done)) : WindowRows();
  }
  WindowRows(std::size_t first, std::size_t count) {
    using B = Blocks<G, Tile>;
    const std::size_t last = first + count - 1;
    for (std::size_t n = first / B::per_image; n <= last / B::per_image; ++n, ++ranges_) {
      const std::size_t first_block = n == first / B::per_image ? first % B::per_image : 0;
      const std::size_t last_block = n == last / B::per_image ? last % B::per_image : B::per_image - 1;
      const int top = std::max(0, int(first_block / B::columns) * Tile - 1);
      const int bottom = std::min(G::height, int(last_block / B::columns) * Tile + Tile + 1);
      begin_[ranges_] = n * G::image + std::size_t(top) * G::width;
      end_[ranges_] = n * G::image + std::size_t(bottom) * G::width;
    }
  }
  /// Prefetches the rows of channel `c` of the images from x (the batch) on. Always inlined: GCC
  /// takes a function that only prefetches for a pure one and drops the calls.
  [[gnu::always_inline]] void prefetch(const float* x, int c) const {
    for (int r = 0; r < ranges_; ++r)
      for (std::size_t at = begin_[r]; at < end_[r]; at += 16)
        _mm_prefetch(reinterpret_cast<const char*>(x + std::size_t(c) * G::height * G::width + at), _MM_HINT_T0);
  }

  /// Whether channel 0's offset `at` (n·G::image + row·W + column) lies in a range, and the
  /// values the ranges hold.
  bool covers(std::size_t at) const {
    for (int r = 0; r < ranges_; ++r)
      if (at >= begin_[r] && at < end_[r]) return true;
    return false;
  }
  std::size_t values() const {
    std::size_t total = 0;
    for (int r = 0; r < ranges_; ++r) total += end_[r] - begin_[r];
    return total;
  }

  static constexpr int channels_ahead = 2;
  /// For channel c of this chunk: prefetches channel c + channels_ahead, or past the last channel
  /// the next chunk's first ones.
  [[gnu::always_inline]] void prefetch_ahead(const float* x, int c, const WindowRows& next) const {
    if (c + channels_ahead < G::channels) prefetch(x, c + channels_ahead);
    else next.prefetch(x, c + channels_ahead - G::channels);
  }

 private:
  std::size_t begin_[16] = {}, end_[16] = {};
  int ranges_ = 0;
};

/// V[ξ] = Bᵀ d B for blocks [first, first + count) of every channel, d the zero-padded 4×4 input
/// around each block, into panels of `width` columns: ξ's panel j row c at v + ξ·panel_values +
/// j·C·width + c·width. Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1].
template <class G>
void transform_inputs(const float* x, std::size_t first, std::size_t count, std::size_t width, float* v,
                      std::size_t panel_values) {
  constexpr int C = G::channels, H = G::height, W = G::width;
  constexpr std::size_t plane = std::size_t(H) * W;
  auto rows = WindowRows<G, 2>::chunk(first, count, 0);
  for (std::size_t done = 0; done < count; done += 16) {
    const Lanes lanes = lanes_of<G>(first + done, count - done);
    const Windows<4> windows = windows_of<G, 2>(lanes);
    const auto next = WindowRows<G, 2>::chunk(first, count, done + 16);
    float* out = v + done / width * C * width + done % width;
    const float* image = x + lanes.first_image * G::image;
    for (int c = 0; c < C; ++c, image += plane, out += width) {
      rows.prefetch_ahead(x, c, next);
      __m512 d[4][4], t[4][4];
      for (int i = 0; i < 4; ++i)
        for (int j = 0; j < 4; ++j)
          d[i][j] = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), windows.inside[i][j], windows.index[i][j], image, 4);
      for (int j = 0; j < 4; ++j) {  // t = Bᵀ d
        t[0][j] = _mm512_sub_ps(d[0][j], d[2][j]);
        t[1][j] = _mm512_add_ps(d[1][j], d[2][j]);
        t[2][j] = _mm512_sub_ps(d[2][j], d[1][j]);
        t[3][j] = _mm512_sub_ps(d[1][j], d[3][j]);
      }
      for (int i = 0; i < 4; ++i) {  // V = t B
        const __m512 row[4] = {_mm512_sub_ps(t[i][0], t[i][2]), _mm512_add_ps(t[i][1], t[i][2]),
                               _mm512_sub_ps(t[i][2], t[i][1]), _mm512_sub_ps(t[i][1], t[i][3])};
        for (int j = 0; j < 4; ++j) _mm512_mask_storeu_ps(out + (4 * i + j) * panel_values, lanes.used, row[j]);
      }
    }
    rows = next;
  }
}

/// y = transform(Aᵀ P A) for output channels [m0, m0 + rows) of blocks [first, first + count),
/// P[ξ] read from products + ξ·rows·count + r·count + block; Aᵀ = [1 1 1 0; 0 1 −1 −1]. With
/// `sums`, sums[r] takes Σ and Σ² of channel m0 + r's outputs before the transform, a block's four
/// in float first.
template <class G, int M>
void transform_outputs(const float* products, std::size_t first, std::size_t count, std::size_t m0, std::size_t rows,
                       const ChannelTransform<float>& transform, float* y, LaneSums* sums) {
  constexpr int OH = G::out_height, OW = G::out_width;
  constexpr std::size_t positions = G::positions;
  for (std::size_t done = 0; done < count; done += 16) {
    const Lanes lanes = lanes_of<G>(first + done, count - done);
    const __m512i image_base = _mm512_mullo_epi32(lanes.image_offset, _mm512_set1_epi32(int(M * positions)));
    __m512i index[2][2];
    __mmask16 inside[2][2];
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        const Places places = at<OH, OW>(lanes.row, lanes.column, i, j, lanes.used);
        index[i][j] = _mm512_add_epi32(image_base, places.offset), inside[i][j] = places.inside;
      }
    for (std::size_t r = 0; r < rows; ++r) {
      const std::size_t m = m0 + r;
      const float* p = products + r * count + done;
      __m512 s[2][4];
      for (int j = 0; j < 4; ++j) {  // s = Aᵀ P
        const auto point = [&](int i) { return _mm512_maskz_loadu_ps(lanes.used, p + (4 * i + j) * rows * count); };
        const __m512 p1 = point(1), p2 = point(2);
        s[0][j] = _mm512_add_ps(_mm512_add_ps(point(0), p1), p2);
        s[1][j] = _mm512_sub_ps(_mm512_sub_ps(p1, p2), point(3));
      }
      float* out = y + (lanes.first_image * M + m) * positions;
      const float* add = transform.residual ? transform.residual + (lanes.first_image * M + m) * positions : nullptr;
      const __m512 scale = _mm512_set1_ps(transform.scale ? transform.scale[m] : 1.0f);
      const __m512 shift = _mm512_set1_ps(transform.shift ? transform.shift[m] : 0.0f);
      __m512 sum = _mm512_setzero_ps(), squares = _mm512_setzero_ps();
      for (int i = 0; i < 2; ++i) {  // Y = s A, then the channel transform as ChannelTransform::store applies it
        const __m512 value[2] = {_mm512_add_ps(_mm512_add_ps(s[i][0], s[i][1]), s[i][2]),
                                 _mm512_sub_ps(_mm512_sub_ps(s[i][1], s[i][2]), s[i][3])};
        for (int j = 0; j < 2; ++j) {
          __m512 result = value[j];
          if (sums) {
            sum = _mm512_mask_add_ps(sum, inside[i][j], sum, result);
            squares = _mm512_mask3_fmadd_ps(result, result, squares, inside[i][j]);
          }
          if (transform.scale) result = _mm512_fmadd_ps(result, scale, shift);
          else if (transform.shift) result = _mm512_add_ps(result, shift);
          if (add) result = _mm512_add_ps(result, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), inside[i][j], index[i][j], add, 4));
          if (transform.relu) result = _mm512_max_ps(_mm512_setzero_ps(), result);
          _mm512_mask_i32scatter_ps(out, inside[i][j], index[i][j], result, 4);
        }
      }
      if (sums) sums[r].add_lanes(sum, squares);
    }
  }
}

// A = [1 0; 1 1; 1 −1; 0 −1] applied to (g0, g1): the output gradient's way back into the
// transform domain.
inline void gradient_column(const __m512 g[2], __m512 h[4]) {
  h[0] = g[0];
  h[1] = _mm512_add_ps(g[0], g[1]);
  h[2] = _mm512_sub_ps(g[0], g[1]);
  h[3] = _mm512_sub_ps(_mm512_setzero_ps(), g[1]);
}

/// dZ[ξ] = A g Aᵀ for the Tile × Tile output gradients g of blocks [first, first + count), 16
/// output channels per vector, Column the scheme's A applied to Tile values, as panels of gradient
/// rows for the weight-gradient product: ξ's panel j row t (block first + t) at dz + ξ·panel_values
/// + j·count·width + t·width holds channels [j·width, (j + 1)·width). Outputs past the edge do not
/// exist: their gradient is 0.
template <class G, int M, int Tile, auto Column>
void transform_gradients(const float* dy, std::size_t first, std::size_t count, std::size_t width, float* dz,
                         std::size_t panel_values) {
  using B = Blocks<G, Tile>;
  constexpr int OH = G::out_height, OW = G::out_width, Side = Tile + 2;
  constexpr std::size_t positions = G::positions;
  const __m512i channel_offsets =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(int(positions)));
  for (std::size_t t = 0; t < count; ++t) {
    const std::size_t n = (first + t) / B::per_image, block = (first + t) % B::per_image;
    const int oy = int(block / B::columns) * Tile, ox = int(block % B::columns) * Tile;
    for (int m0 = 0; m0 < M; m0 += 16) {
      const __mmask16 used = first_lanes(M - m0);
      const float* g = dy + (n * M + m0) * positions + std::size_t(oy) * OW + ox;
      __m512 h[Side][Tile];
      for (int b = 0; b < Tile; ++b) {  // h = A g, column by column
        __m512 column[Tile], out[Side];
        for (int a = 0; a < Tile; ++a)
          column[a] = oy + a < OH && ox + b < OW
                          ? _mm512_mask_i32gather_ps(_mm512_setzero_ps(), used, channel_offsets, g + a * OW + b, 4)
                          : _mm512_setzero_ps();
        Column(column, out);
        for (int k = 0; k < Side; ++k) h[k][b] = out[k];
      }
      float* out = dz + std::size_t(m0) / width * count * width + t * width + std::size_t(m0) % width;
      for (int k = 0; k < Side; ++k) {  // dZ = h Aᵀ, row by row
        __m512 row[Side];
        Column(h[k], row);
        for (int l = 0; l < Side; ++l) _mm512_mask_storeu_ps(out + (Side * k + l) * panel_values, used, row[l]);
      }
    }
  }
}

// Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1] applied to (p0 … p3): the transform-domain weight gradient's
// way back to 3 taps.
inline void kernel_gradient_column(const __m512 p[4], __m512 e[3]) {
  const __m512 half = _mm512_set1_ps(0.5f);
  const __m512 sum = _mm512_mul_ps(half, _mm512_add_ps(p[1], p[2]));
  e[0] = _mm512_add_ps(p[0], sum);
  e[1] = _mm512_mul_ps(half, _mm512_sub_ps(p[1], p[2]));
  e[2] = _mm512_add_ps(sum, p[3]);
}

/// dw[m][c] += Gᵀ dU[m][c] G for dUᵀ[ξ] (C × M, row stride M, Side × Side points ξ), 16 output
/// channels per vector, Column the scheme's Gᵀ applied to Side values.
template <int Side, auto Column, int C, int M>
void add_weight_gradient(const float* du, float* dw) {
  const __m512i kernel_offsets =
      _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), _mm512_set1_epi32(C * 9));
  parallel_for(std::size_t(C), [&](std::size_t c, std::size_t) {
    for (int m0 = 0; m0 < M; m0 += 16) {
      const __mmask16 used = first_lanes(M - m0);
      __m512 e[3][Side];
      for (int j = 0; j < Side; ++j) {  // e = Gᵀ dU, column by column
        __m512 column[Side], out[3];
        for (int i = 0; i < Side; ++i) column[i] = _mm512_maskz_loadu_ps(used, du + (std::size_t(Side * i + j) * C + c) * M + m0);
        Column(column, out);
        for (int k = 0; k < 3; ++k) e[k][j] = out[k];
      }
      float* kernels = dw + (std::size_t(m0) * C + c) * 9;
      for (int k = 0; k < 3; ++k) {  // dw = e G, row by row
        __m512 row[3];
        Column(e[k], row);
        for (int l = 0; l < 3; ++l) {
          float* at = kernels + 3 * k + l;
          _mm512_mask_i32scatter_ps(at, used, kernel_offsets,
                                    _mm512_add_ps(_mm512_mask_i32gather_ps(_mm512_setzero_ps(), used, kernel_offsets, at, 4), row[l]), 4);
        }
      }
    }
  });
}

// A scheme for the drivers below: F(2×2, 3×3)'s blocks, points and transforms, and the values a
// task keeps in L2 (its transformed inputs and products or gradients, points·(C + M) per column):
// 1 MiB.
struct F2x2 {
  static constexpr int tile = 2, points = winograd::points;
  static constexpr std::size_t task_values = std::size_t(1) << 18;
  template <int C>
  static constexpr auto weights = &transform_weights<4, kernel_column, C>;
  template <class G>
  static constexpr auto inputs = &transform_inputs<G>;
  template <class G, int M>
  static constexpr auto outputs = &transform_outputs<G, M>;
  template <class G, int M>
  static constexpr auto gradients = &transform_gradients<G, M, 2, gradient_column>;
  template <int C, int M>
  static constexpr auto weight_gradient = &add_weight_gradient<4, kernel_gradient_column, C, M>;
};

/// conv_forward by scheme S: tasks of whole panels of S::tile × S::tile blocks (spanning images),
/// each transforming its inputs, running the S::points products and transforming them back.
template <class S, class G, int M>
void forward(const float* x, std::size_t N, const float* w, const ChannelTransform<float>& transform, float* y) {
  constexpr int C = G::channels, points = S::points;
  float* u = scratch<float>(0, Slot::winograd_weights, std::size_t(points) * M * C);
  S::template weights<C>(w, M, u);
  constexpr std::size_t tc =
      std::max<std::size_t>(panel_width, S::task_values / (points * std::size_t(C + M)) / panel_width * panel_width);
  const std::size_t total = N * Blocks<G, S::tile>::per_image, tiles = (total + tc - 1) / tc;
  const std::pair<std::size_t, std::size_t> split = detail::channel_splits<M>(tiles);
  const std::size_t splits = split.first, rows = split.second;
  const OutputMoments moments(transform.moments, tiles * splits, M);
  parallel_for(tiles * splits, [&](std::size_t task, std::size_t thread) {
    const std::size_t first = task % tiles * tc, count = std::min(tc, total - first);
    const std::size_t m0 = std::min<std::size_t>(M, task / tiles * rows), m = std::min<std::size_t>(M, m0 + rows) - m0;
    if (m == 0) return;
    const std::size_t width = panel_width_for(count), panel_values = C * whole_panels(count);
    float* v = scratch<float>(thread, Slot::columns, points * panel_values);
    float* products = scratch<float>(thread, Slot::tile, points * m * count);
    S::template inputs<G>(x, first, count, width, v, panel_values);
    for (int xi = 0; xi < points; ++xi)
      panel_gemm<float>(m, C, Strided<float>{u + (std::size_t(xi) * M + m0) * C, C, 1}, v + xi * panel_values, width,
                        C * width, count, products + xi * m * count, count, false, width);
    LaneSums* sums = moments.lanes(thread, m);
    S::template outputs<G, M>(products, first, count, m0, m, transform, y, sums);
    moments.keep(task, m0, m, sums);
  });
  moments.finish(tiles * splits);
}

/// dw (M × C × 3 × 3) += Σ over the batch by scheme S: dU[ξ] = Σ_blocks dZ[ξ] · V[ξ]ᵀ, then
/// dw = Gᵀ dU G; dbias (if not null) += Σ dy. A fixed number of image groups (backward_groups)
/// sum their own dUᵀ, added up in group order, so the result does not depend on the thread count.
template <class S, class G, int M>
void weight_gradient(const float* x, const float* dy, std::size_t N, std::size_t groups, float* dw, float* dbias) {
  constexpr int C = G::channels, points = S::points;
  constexpr std::size_t du_values = std::size_t(points) * C * M, per_image = Blocks<G, S::tile>::per_image;
  constexpr std::size_t chunk = std::max<std::size_t>(panel_width, S::task_values / (points * std::size_t(C + M)) / 16 * 16);
  constexpr std::size_t width = panel_width_for(M);
  const std::size_t per_group = (N + groups - 1) / groups, used_groups = (N + per_group - 1) / per_group;
  float* partials = scratch<float>(0, Slot::partials, used_groups * du_values);
  parallel_for(used_groups, [&](std::size_t group, std::size_t thread) {
    float* du = partials + group * du_values;  // written by the first chunk's products, not zeroed first
    const std::size_t begin = group * per_group * per_image, end = std::min(N, (group + 1) * per_group) * per_image;
    for (std::size_t first = begin; first < end; first += chunk) {
      const std::size_t count = std::min(chunk, end - first);
      const std::size_t v_values = C * count, dz_values = count * whole_panels(M);
      float* v = scratch<float>(thread, Slot::columns, points * v_values);
      float* dz = scratch<float>(thread, Slot::transposed, points * dz_values);
      S::template inputs<G>(x, first, count, count, v, v_values);  // V[ξ]: C × count
      S::template gradients<G, M>(dy, first, count, width, dz, dz_values);
      for (int xi = 0; xi < points; ++xi)  // dUᵀ[ξ] (C × M) += V[ξ] · dZ[ξ]ᵀ
        panel_gemm<float>(C, count, Strided<float>{v + xi * v_values, count, 1}, dz + xi * dz_values, width,
                          count * width, M, du + std::size_t(xi) * C * M, M, first > begin, width);
    }
  });
  parallel_slices(du_values, [&](std::size_t begin, std::size_t end) {  // in group order
    // As Eigen arrays: GCC left the plain loop over one buffer scalar (a quarter of a 128@4 layer's
    // weight gradient on one thread).
    Eigen::Map<Eigen::ArrayXf> sums(partials + begin, Eigen::Index(end - begin));
    for (std::size_t group = 1; group < used_groups; ++group)
      sums += Eigen::Map<const Eigen::ArrayXf>(partials + group * du_values + begin, Eigen::Index(end - begin));
  });
  S::template weight_gradient<C, M>(partials, dw);
  if (dbias) add_channel_sums(dy, N, M, G::positions, dbias);
}

}  // namespace winograd

/// Whether conv_backward takes the weight gradient of a uses_winograd layer in the transform
/// domain too (for batches with a panel of blocks): each image group sums its dUᵀ (16 × C × M)
/// apart, so only where that stays within 4 MiB.
template <class G, int M, class T>
constexpr bool winograd_weight_gradient =
    uses_winograd<G, M, T> && std::size_t(16) * G::channels * M * sizeof(float) <= (std::size_t(4) << 20);
#endif

}  // namespace ctnn::kernels
