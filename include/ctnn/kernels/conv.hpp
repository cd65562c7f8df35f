// Convolution over a whole batch as GEMMs on tiles of output columns, in parallel.
// Forward: each task im2cols one tile of columns (which may span several small images or part of
// a large one) and multiplies it by the weights. Backward: a fixed number of image groups, each
// with its own partial weight gradient; the partials are summed in group order afterwards, so the
// result does not depend on the thread count. 3×3 stride-1 layers go by Winograd's transforms
// instead: by F(4×4, 3×3) (winograd_4x4.hpp) for 16–256 channels (the weight gradient for 32+ on
// both sides), by F(2×2, 3×3) (winograd.hpp) where a batch has too few 4×4 blocks.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <numeric>
#include <utility>

#include "ctnn/kernels/channel_transform.hpp"
#include "ctnn/kernels/elementwise.hpp"
#include "ctnn/kernels/gemm.hpp"
#include "ctnn/kernels/im2col.hpp"
#include "ctnn/kernels/phase_input_gradient.hpp"
#include "ctnn/kernels/scratch.hpp"
#include "ctnn/kernels/tap_correlation.hpp"
#include "ctnn/kernels/task_split.hpp"
#include "ctnn/kernels/winograd.hpp"
#include "ctnn/kernels/winograd_4x4.hpp"
#include "ctnn/threads.hpp"

namespace ctnn::kernels {

namespace detail {
template <class T>
using RowMatrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class T>
using RowMap = Eigen::Map<RowMatrix<T>>;
template <class T>
using ConstRowMap = Eigen::Map<const RowMatrix<T>>;
template <class T>
using StridedRowMap = Eigen::Map<RowMatrix<T>, 0, Eigen::OuterStride<>>;
template <class T>
using ConstStridedRowMap = Eigen::Map<const RowMatrix<T>, 0, Eigen::OuterStride<>>;

// The patch matrix of tile columns [first, first + count) and its row stride. A 1×1, stride-1
// convolution's patch matrix is its input, so a tile inside one image is read in place.
template <class G, class T>
std::pair<const T*, std::size_t> columns(const T* x, std::size_t first, std::size_t count, std::size_t thread,
                                         PaddedImage<T>* padded) {
  if constexpr (G::pointwise) {
    const std::size_t n = first / G::positions, p = first % G::positions;
    if (p + count <= G::positions) return {x + n * G::image + p, G::positions};
  }
  T* col = scratch<T>(thread, Slot::columns, G::patch * count);
  im2col_tile<G>(x, first, count, col, count, padded);
  return {col, count};
}

// Padded convolutions whose output rows are long enough that computing a few dropped columns too
// costs less than im2col: B is read in place from a zero-bordered copy of the image (split into
// phase planes at stride > 1, see ConvGeometry), kernel tap (c, ky, kx) being that copy shifted by
// G::tap_offset(c, ky, kx), and output column q = oy·phase_width + ox (columns ox ≥ out_width are
// dropped: 2P of them at stride 1, one for 3×3 stride 2). At stride 1, only size-keeping ones; at
// larger strides, only images whose phase planes stay in L2 (256 KiB), as every task builds its
// own copy: ResNet50's 56×56 stride-2 layer, read in place from 1.7 MB of planes, was slower at
// batch 1 than through im2col.
template <class G, class T>
constexpr bool reads_image_in_place =
    has_panel_kernel<T> && G::padding > 0 &&
    (G::stride == 1 ? G::out_height == G::height && G::out_width == G::width && G::width >= 8 * G::padding
                    : G::out_width >= 8 && G::padded_image * sizeof(T) <= (std::size_t(256) << 10));

/// Columns of an in-place product: every output row as wide as a (phase) plane row.
template <class G>
inline constexpr std::size_t in_place_columns = std::size_t(G::out_height) * G::phase_width;

template <class G>
inline const std::array<std::uint32_t, G::patch> tap_offsets = [] {
  std::array<std::uint32_t, G::patch> offsets{};
  constexpr int K = G::kernel;
  for (int c = 0; c < G::channels; ++c)
    for (int ky = 0; ky < K; ++ky)
      for (int kx = 0; kx < K; ++kx) offsets[(std::size_t(c) * K + ky) * K + kx] = std::uint32_t(G::tap_offset(c, ky, kx));
  return offsets;
}();

// A zero-bordered image cache for the in-place kernels, with a zeroed tail: the dropped columns of
// the last rows (and the tap correlation's last vector) read a little past the copy.
inline constexpr std::size_t padded_slack_values = 64;
template <class G, class T>
PaddedImage<T> padded_with_slack(std::size_t thread) {
  static_assert(G::last_tap_offset() + in_place_columns<G> + tap_lanes <= G::padded_image + padded_slack_values);
  PaddedImage<T> padded{scratch<T>(thread, Slot::padded, G::padded_image + padded_slack_values)};
  std::fill_n(padded.values + G::padded_image, padded_slack_values, T(0));
  return padded;
}

// conv_forward for reads_image_in_place geometries: one task per image (and channel split).
template <class G, int M, class T>
void conv_forward_in_place(const T* x, std::size_t N, const T* w, const ChannelTransform<T>& transform, T* y) {
  constexpr std::size_t Wp = G::phase_width, W = G::out_width, wide = in_place_columns<G>;
  // Not a structured binding: the lambda captures these, which clang 14 (the fuzz build) rejects.
  const std::pair<std::size_t, std::size_t> split = channel_splits<M>(N);
  const std::size_t splits = split.first, rows = split.second;
  const OutputMoments moments(transform.moments, N * splits, M);
  parallel_for(N * splits, [&](std::size_t task, std::size_t thread) {
    const std::size_t n = task / splits, m0 = std::min<std::size_t>(M, task % splits * rows);
    const std::size_t m = std::min<std::size_t>(M, m0 + rows) - m0;
    if (m == 0) return;
    PaddedImage<T> padded = padded_with_slack<G, T>(thread);
    const T* image = padded_image<G>(x, n, padded);
    T* out = scratch<T>(thread, Slot::tile, m * wide);
    panel_gemm<T>(m, G::patch, Strided<T>{w + m0 * G::patch, G::patch, 1}, image, TableRows{tap_offsets<G>.data()},
                  panel_width, wide, out, wide);
    const std::size_t first_value = (n * M + m0) * G::positions;
    LaneSums* sums = moments.lanes(thread, m);
    for (std::size_t r = 0; r < m; ++r) {
      const std::size_t plane = first_value + r * G::positions;
      if (sums && !transform.maps()) {  // a train-mode BatchNorm follows: copy, taking its moments
        sums[r].add_squares(out + r * wide, W, G::out_height, Wp, y + plane, W);
        continue;
      }
      for (std::size_t oy = 0; oy < std::size_t(G::out_height); ++oy)
        transform.store(out + r * wide + oy * Wp, W, m0 + r, y, plane + oy * W);
      if (sums) sums[r].add_squares(out + r * wide, W, G::out_height, Wp);
    }
    moments.keep(task, m0, m, sums);
  });
  moments.finish(N * splits);
}

// The weight gradient for reads_image_in_place geometries: dwᵀ (patch × M, at pw) += col · gᵀ for
// images [n0, n1), col read in place from the zero-bordered image and g laid on the padded-width
// grid, zero in the dropped columns; dbias (if not null) += Σ g.
// Layers whose lane-wise partial sums (16 per weight) fit in L2 correlate g with the shifted image
// rows (vectors along the image); the others multiply with vectors along M, as panels of gᵀ. So do
// short images once M fills two vectors of a panel row: a correlation tile loads and stores its 24
// sums for every image, which at 14×14 (224 columns, 14 vectors) cost more than the product's one
// broadcast per two FMAs (MNIST's 32-channel 14×14 weight gradients: 15–30 % faster as products;
// 32 channels at 28×28 and 16 at 14×14 stay faster correlated).
template <class G, int M>
constexpr bool correlates_taps = (M < 32 || in_place_columns<G> >= 512) &&
                                 std::size_t(M) * G::patch * tap_lanes * sizeof(float) <= (std::size_t(1) << 20);

template <class G, int M, class T>
void weight_gradient_in_place(const T* x, const T* dy, std::size_t n0, std::size_t n1, std::size_t thread, T* pw,
                              T* dbias) {
  constexpr std::size_t Wp = G::phase_width, W = G::out_width, wide = in_place_columns<G>;
  PaddedImage<T> padded = padded_with_slack<G, T>(thread);
  if constexpr (correlates_taps<G, M>) {
    // Rows rounded up to whole vectors: the image is read up to tap_lanes − 1 values further.
    constexpr std::size_t ldg = (wide + tap_lanes - 1) / tap_lanes * tap_lanes;
    T* g_wide = scratch<T>(thread, Slot::transposed, M * ldg);
    T* sums = scratch<T>(thread, Slot::lane_sums, M * G::patch * tap_lanes);
    std::fill_n(sums, M * G::patch * tap_lanes, T(0));
    for (std::size_t n = n0; n < n1; ++n) {
      const T* image = padded_image<G>(x, n, padded);
      for (std::size_t m = 0; m < M; ++m) {
        const T* g = dy + (n * M + m) * G::positions;
        T* out = g_wide + m * ldg;
        for (std::size_t oy = 0; oy < std::size_t(G::out_height); ++oy) copy_row_then_zeros(g + oy * W, W, Wp, out + oy * Wp);
        std::fill(out + wide, out + ldg, T(0));
        if (dbias) dbias[m] += std::accumulate(g, g + G::positions, T(0));
      }
      correlate_taps(M, G::patch, g_wide, ldg, ldg, image, tap_offsets<G>.data(), sums);
    }
    for (std::size_t m = 0; m < M; ++m)
      for (std::size_t t = 0; t < G::patch; ++t)
        pw[t * M + m] += lane_total(_mm512_load_ps(sums + (m * G::patch + t) * tap_lanes));
  } else {
    constexpr std::size_t panel = panel_width_for(M);
    T* g_panels = scratch<T>(thread, Slot::transposed, wide * whole_panels(M));
    for (std::size_t n = n0; n < n1; ++n) {
      const T* image = padded_image<G>(x, n, padded);
      // gᵀ on the padded-width grid, zero in the dropped columns: panel j's row oy·Wp + ox holds
      // channels [j·panel, (j + 1)·panel) at output (oy, ox).
      for (std::size_t oy = 0; oy < std::size_t(G::out_height); ++oy) {
        pack_transposed(dy + n * M * G::positions + oy * W, M, W, G::positions, g_panels + oy * Wp * panel, panel,
                        wide * panel);
        for (std::size_t j = 0; j * panel < std::size_t(M); ++j)
          std::fill_n(g_panels + j * wide * panel + (oy * Wp + W) * panel, (Wp - W) * panel, T(0));
      }
      if (dbias) add_channel_sums(dy + n * M * G::positions, 1, M, G::positions, dbias);
      panel_gemm<T>(G::patch, wide, Tabled<T>{image, tap_offsets<G>.data()}, g_panels, EvenRows{panel}, wide * panel,
                    M, pw, M, true, panel);
    }
  }
}

// A task's zero-bordered image cache for im2col_tile, in the thread's scratch.
template <class G, class T>
PaddedImage<T> padded_cache(std::size_t thread) {
  constexpr bool used = G::padding > 0 && (G::stride == 1 || permutes_columns<G, T>);
  return {used ? scratch<T>(thread, Slot::padded, G::padded_image + padded_slack) : nullptr};
}

// Layers whose weight gradient outgrows L2 (see weights_outgrow_l2) and is not read in place
// split it by blocks of input channels, not by image groups: each task owns a block of dw over the
// whole batch, so there are no per-group partials to zero, reread and add up (ResNet50's
// 512-channel 3×3 layer wrote and reread a 9 MB partial per group of two images).
template <class G, int M, class T>
constexpr bool weight_gradient_by_channels = has_panel_kernel<T> && !reads_image_in_place<G, T> && weights_outgrow_l2<G, M>;

// Channels per block: the largest divisor of C whose block of dwᵀ (rows × M) stays within 512 KiB.
template <class G, int M>
constexpr int gradient_block_channels() {
  const std::size_t most = std::max<std::size_t>(1, (std::size_t(128) << 10) / M / (std::size_t(G::kernel) * G::kernel));
  for (int c = int(std::min<std::size_t>(most, G::channels)); c > 1; --c)
    if (G::channels % c == 0) return c;
  return 1;
}

// dw (M × patch) += Σ over the batch, dbias (if not null) += Σ dy, for weight_gradient_by_channels
// layers. gᵀ is packed once for the batch; each task im2cols its channels of a chunk of images and
// multiplies, summing over images in batch order (the same for any thread count).
template <class G, int M, class T>
void weight_gradient_by_channels_of(const T* x, const T* dy, std::size_t N, T* dw, T* dbias) {
  constexpr int block_channels = gradient_block_channels<G, M>();
  using Block = ConvGeometry<block_channels, G::height, G::width, G::kernel, G::stride, G::padding>;
  constexpr std::size_t rows = Block::patch, P = G::positions, panel = panel_width_for(M);
  // Images per product: up to 1,024 columns, so the patch block stays near 1 MiB for any batch.
  const std::size_t chunk = std::max<std::size_t>(1, 1024 / P), columns = N * P;
  T* g_panels = scratch<T>(0, Slot::transposed, columns * whole_panels(M));  // gᵀ: panel j row k at j·columns·panel + k·panel
  parallel_for(N, [&](std::size_t n, std::size_t) {
    pack_transposed(dy + n * M * P, M, P, P, g_panels + n * P * panel, panel, columns * panel);
  });
  if (dbias) add_channel_sums(dy, N, M, P, dbias);
  parallel_for(std::size_t(G::channels / block_channels), [&](std::size_t b, std::size_t thread) {
    const std::size_t c0 = b * block_channels;
    T* block = scratch<T>(thread, Slot::gradient, rows * M);  // dwᵀ rows [c0·K², ...) × M
    for (std::size_t n0 = 0; n0 < N; n0 += chunk) {
      const std::size_t n1 = std::min(N, n0 + chunk), ld = (n1 - n0) * P;
      T* col = scratch<T>(thread, Slot::columns, rows * ld);
      for (std::size_t n = n0; n < n1; ++n) {
        PaddedImage<T> padded = padded_cache<Block, T>(thread);  // channels c0.. of image n only
        im2col_tile<Block>(x + n * G::image + c0 * G::height * G::width, 0, P, col + (n - n0) * P, ld, &padded);
      }
      panel_gemm<T>(rows, ld, Strided<T>{col, ld, 1}, g_panels + n0 * P * panel, panel, columns * panel, M, block, M,
                    n0 > 0, panel);
    }
    for (std::size_t m = 0; m < std::size_t(M); ++m)
      for (std::size_t r = 0; r < rows; ++r) dw[m * G::patch + c0 * (rows / block_channels) + r] += block[r * M + m];
  });
}
}  // namespace detail

/// Output columns per GEMM tile: whole panels (a part-filled one runs at a third of the speed),
/// as many as keep the tile's patch matrix near 128 KiB, so it and the output tile live in L2
/// while the weights stream through.
template <class G>
constexpr std::size_t tile_columns() {
  return std::clamp<std::size_t>(32768 / G::patch / panel_width * panel_width, panel_width, 2016);
}

/// Columns per backward tile. Each tile's input-gradient product (dcol = wᵀ · g) streams all of
/// the weights, so where they outgrow L2 (over 1 MiB: ResNet50's 1×1 stride-2 shortcuts of 512 and
/// more channels) tiles are as wide as a 4 MiB patch or gradient tile allows, not the forward's 48
/// (the stride-2 512-channel 3×3 input gradient, before it went by phases: 77 → 45 ms at batch 8).
template <class G, int M>
constexpr std::size_t backward_tile_columns() {
  if constexpr (!detail::weights_outgrow_l2<G, M>) return tile_columns<G>();
  return std::max(tile_columns<G>(), (std::size_t(1) << 20) / std::max<std::size_t>(G::patch, M) / 16 * 16);
}

/// Image groups of the backward pass: a fixed number (not the thread count, which would change
/// the summation order), each owning a partial weight gradient.
constexpr std::size_t backward_groups(std::size_t batch) { return std::min<std::size_t>(batch, 4); }

/// y = transform(w ∗ x) for N images. x: N × G::image (NCHW); w: M × G::patch row-major (OIHW);
/// y: N × M × G::positions.
template <class G, int M, class T>
void conv_forward(const T* x, std::size_t N, const T* w, const ChannelTransform<T>& transform, T* y) {
#if defined(__AVX512F__)
  if constexpr (uses_winograd_4x4<G, M, T>)
    if (winograd_4x4_blocks<G>(N) >= panel_width)
      return winograd::forward<winograd_4x4::F4x4, G, M>(x, N, w, transform, y);
  if constexpr (uses_winograd<G, M, T>)
    if (winograd_blocks<G>(N) >= panel_width) return winograd::forward<winograd::F2x2, G, M>(x, N, w, transform, y);
#endif
  if constexpr (detail::reads_image_in_place<G, T>) return detail::conv_forward_in_place<G, M>(x, N, w, transform, y);
  // A remainder of one vector or less joins the last whole tile instead of making a tile of its
  // own, which would read all the weights again for 16 columns or fewer (ResNet50's 7×7 layers at
  // batch 1: 49 columns were a tile of 48 and one of 1).
  const std::size_t total = N * G::positions, tc = tile_columns<G>();
  const std::size_t tiles = total <= tc ? 1 : total / tc + (total % tc > 16 ? 1 : 0);
  // Few tiles (batch 1, deep layers): split the output channels as well so each thread has work.
  // Tasks run split by split, so a thread's share of them reads one part of the weights for every
  // tile (a part-filled last tile costs a full pass over its weights, so tile-major shares were
  // uneven: ResNet50 batch-1 latency 6 % slower).
  const std::pair<std::size_t, std::size_t> split = detail::channel_splits<M>(tiles);
  const std::size_t splits = split.first, rows = split.second;
  const OutputMoments moments(transform.moments, tiles * splits, M);
  parallel_for(tiles * splits, [&](std::size_t task, std::size_t thread) {
    const std::size_t first = task % tiles * tc, count = task % tiles + 1 == tiles ? total - first : tc;
    const std::size_t m0 = std::min<std::size_t>(M, task / tiles * rows), m = std::min<std::size_t>(M, m0 + rows) - m0;
    if (m == 0) return;
    T* out = scratch<T>(thread, Slot::tile, m * count);
    PaddedImage<T> padded = detail::padded_cache<G, T>(thread);
    if constexpr (has_panel_kernel<T>) {
      const std::size_t width = panel_width_for(count);
      T* panels = scratch<T>(thread, Slot::columns, G::patch * whole_panels(count));
      for (std::size_t j = 0; j * width < count; ++j)
        im2col_tile<G>(x, first + j * width, std::min(width, count - j * width), panels + j * G::patch * width, width,
                       &padded);
      panel_gemm<T>(m, G::patch, {w + m0 * G::patch, G::patch, 1}, panels, width, G::patch * width, count, out, count,
                    false, width);
    } else {
      const auto [col, ld] = detail::columns<G>(x, first, count, thread, &padded);
      detail::RowMap<T>(out, m, count).noalias() =
          detail::ConstRowMap<T>(w + m0 * G::patch, m, G::patch) *
          detail::ConstStridedRowMap<T>(col, G::patch, count, Eigen::OuterStride<>(ld));
    }
    LaneSums* sums = moments.lanes(thread, m);
    scatter_tile(out, count, M * G::positions, G::positions, m, first, count,
                 [&](std::size_t r, const T* run, std::size_t length, std::size_t offset) {
                   if (sums && !transform.maps())  // a train-mode BatchNorm follows: copy, taking its moments
                     return sums[r].add_squares(run, length, 1, 0, y + m0 * G::positions + offset);
                   transform.store(run, length, m0 + r, y, m0 * G::positions + offset);
                   if (sums) sums[r].add_squares(run, length);
                 });
    moments.keep(task, m0, m, sums);
  });
  moments.finish(tiles * splits);
}

namespace detail {
// dx = dL/dx of a stride-1, size-keeping convolution: the convolution of dy with the
// weights flipped and transposed, run by the forward kernel.
template <class G, int M, class T>
void flipped_input_gradient(const T* dy, std::size_t N, const T* w, T* dx) {
  constexpr int C = G::channels, K = G::kernel;
  constexpr std::size_t taps = std::size_t(K) * K, block = 16;
  T* flipped = scratch<T>(0, Slot::flipped, G::patch * M);  // C × M × K × K, each kernel reversed
  // In 16 × 16 blocks of (c, m), in parallel over c: row by row, one side was written (or read)
  // a value per cache line, so ResNet50's 2048 × 512 1×1 weights took 7 ms on one thread.
  parallel_for((C + block - 1) / block, [&](std::size_t cb, std::size_t) {
    const std::size_t c0 = cb * block, c1 = std::min<std::size_t>(C, c0 + block);
    for (std::size_t m0 = 0; m0 < std::size_t(M); m0 += block)
      for (std::size_t c = c0; c < c1; ++c)
        for (std::size_t m = m0; m < std::min<std::size_t>(M, m0 + block); ++m)
          for (std::size_t t = 0; t < taps; ++t) flipped[(c * M + m) * taps + t] = w[(m * C + c) * taps + taps - 1 - t];
  });
  using Transposed = ConvGeometry<M, G::out_height, G::out_width, K, 1, G::padding>;
  conv_forward<Transposed, C>(dy, N, flipped, ChannelTransform<T>{}, dx);
}

// Input gradients computed apart from the weight gradient's tiles: a stride-1 convolution that
// keeps the image size (K = 2P + 1) has as its input gradient the same kind of convolution of dy,
// with the weights flipped and transposed, which the forward kernel runs; a strided one, S×S
// stride-1 correlations (phase_input_gradient.hpp). Either is faster than a dcol product
// followed by col2im, which the other geometries (and builds without the panel kernel) keep. A
// 1×1 strided kernel's dcol holds just the inputs it reaches, which col2im only spreads: by
// phases, which first copy dy, ResNet50's 1×1 stride-2 input gradients were 5–30 % slower.
template <class G, class T>
constexpr bool input_gradient_by_convolution =
    has_panel_kernel<T> && G::stride == 1 && G::out_height == G::height && G::out_width == G::width;
template <class G, class T>
constexpr bool input_gradient_by_phases = has_panel_kernel<T> && G::stride > 1 && G::kernel > 1;

template <class G, int M, class T>
void input_gradient_apart(const T* dy, std::size_t N, const T* w, T* dx) {
  if (!dx) return;
  if constexpr (input_gradient_by_convolution<G, T>) flipped_input_gradient<G, M>(dy, N, w, dx);
  if constexpr (input_gradient_by_phases<G, T>) phase_input_gradient<G, M>(dy, N, w, dx);
}
}  // namespace detail

/// Gradients of conv_forward: dw (M × patch) and dbias (M, if not null) accumulate Σ over the
/// batch; dx (if not null) is overwritten with dL/dx. dy: N × M × G::positions.
template <class G, int M, class T>
void conv_backward(const T* x, const T* dy, std::size_t N, const T* w, T* dw, T* dbias, T* dx) {
#if defined(__AVX512F__)
  if constexpr (winograd_4x4_weight_gradient<G, M, T>)
    if (winograd_4x4_blocks<G>(N) >= panel_width) {
      winograd::weight_gradient<winograd_4x4::F4x4, G, M>(x, dy, N, backward_groups(N), dw, dbias);
      return detail::input_gradient_apart<G, M>(dy, N, w, dx);
    }
  if constexpr (winograd_weight_gradient<G, M, T>)
    if (winograd_blocks<G>(N) >= panel_width) {
      winograd::weight_gradient<winograd::F2x2, G, M>(x, dy, N, backward_groups(N), dw, dbias);
      return detail::input_gradient_apart<G, M>(dy, N, w, dx);
    }
#endif
  const std::size_t groups = backward_groups(N), per_group = (N + groups - 1) / groups;
  const std::size_t used_groups = (N + per_group - 1) / per_group, tc = backward_tile_columns<G, M>();
  constexpr bool dx_apart = detail::input_gradient_by_convolution<G, T> || detail::input_gradient_by_phases<G, T>;
  T* const group_dx = dx_apart ? nullptr : dx;
  constexpr bool in_place = detail::reads_image_in_place<G, T>;
  constexpr bool by_channels = detail::weight_gradient_by_channels<G, M, T>;
  // Otherwise each image group sums its own partial (weight gradient, then bias), added up below.
  const std::size_t stride = by_channels ? 0 : M * G::patch + M;
  T* partials = scratch<T>(0, Slot::partials, used_groups * stride);
  if constexpr (by_channels) {
    detail::weight_gradient_by_channels_of<G, M>(x, dy, N, dw, dbias);
    if constexpr (dx_apart) return detail::input_gradient_apart<G, M>(dy, N, w, dx);
    if (!dx) return;
  }
  parallel_for(used_groups, [&](std::size_t group, std::size_t thread) {
    T* pw = partials + group * stride;
    std::fill_n(pw, stride, T(0));
    detail::RowMap<T> grad_w(pw, by_channels ? 0 : M, G::patch);
    const std::size_t n0 = group * per_group, n1 = std::min(N, n0 + per_group);
    if constexpr (in_place) {
      detail::weight_gradient_in_place<G, M>(x, dy, n0, n1, thread, pw, dbias ? pw + M * G::patch : nullptr);
      if (!group_dx) return;  // dx is computed apart (below)
    }
    PaddedImage<T> padded = detail::padded_cache<G, T>(thread);
    if (group_dx) std::fill(group_dx + n0 * G::image, group_dx + n1 * G::image, T(0));
    for (std::size_t first = n0 * G::positions; first < n1 * G::positions; first += tc) {
      const std::size_t count = std::min(tc, n1 * G::positions - first);
      T* grad_out = scratch<T>(thread, Slot::tile, M * count);
      gather_tile(dy, M * G::positions, G::positions, M, first, count, grad_out, count);
      const detail::ConstRowMap<T> g(grad_out, M, count);
      if constexpr (!in_place && !by_channels) {
        const auto [col, ld] = detail::columns<G>(x, first, count, thread, &padded);
        if constexpr (has_panel_kernel<T>) {
          // The partial holds dwᵀ (patch × M) += col · gᵀ: col read in place, gᵀ packed into panels.
          constexpr std::size_t panel = panel_width_for(M);
          T* g_panels = scratch<T>(thread, Slot::transposed, count * whole_panels(M));
          pack_transposed(grad_out, M, count, count, g_panels, panel);
          panel_gemm<T>(G::patch, count, {col, ld, 1}, g_panels, panel, count * panel, M, pw, M, true, panel);
        } else {
          grad_w.noalias() += g * detail::ConstStridedRowMap<T>(col, G::patch, count, Eigen::OuterStride<>(ld)).transpose();
        }
        if (dbias) Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(pw + M * G::patch, M) += g.rowwise().sum();
      }
      if (!group_dx) continue;
      T* dcol = scratch<T>(thread, Slot::gradient, G::patch * count);
      if constexpr (has_panel_kernel<T>)  // wᵀ read in place; g's rows as panels
        panel_gemm<T>(G::patch, M, {w, 1, G::patch}, grad_out, count, panel_width, count, dcol, count);
      else
        detail::RowMap<T>(dcol, G::patch, count).noalias() = detail::ConstRowMap<T>(w, M, G::patch).transpose() * g;
      col2im_tile_add<G>(dcol, count, first, count, group_dx);
    }
  });
  if constexpr (by_channels) return;
  // Sum the partials into dw in group order (each value is added to in the same order for any
  // thread count), in parallel over slices of the gradient.
  if (dbias)
    for (std::size_t group = 0; group < used_groups; ++group)
      for (std::size_t m = 0; m < std::size_t(M); ++m) dbias[m] += partials[group * stride + M * G::patch + m];
  if constexpr (has_panel_kernel<T>) {
    // The partials hold dwᵀ (dw[m][q] at q·M + m): a slice of q is summed as it lies, in a copy of
    // dw's transposed block, so partials are read contiguously (read at stride M, each cache
    // line came from L3 or memory 16 times: 2 % of a training step).
    constexpr std::size_t rows = std::max<std::size_t>(1, 4096 / M), slices = (G::patch + rows - 1) / rows;
    parallel_for(slices, [&](std::size_t s, std::size_t thread) {
      const std::size_t q0 = s * rows, q = std::min<std::size_t>(G::patch - q0, rows);
      detail::RowMap<T> sums(scratch<T>(thread, Slot::gradient, q * M), q, M);
      detail::StridedRowMap<T> block(dw + q0, M, q, Eigen::OuterStride<>(G::patch));
      sums = block.transpose();
      for (std::size_t group = 0; group < used_groups; ++group)
        sums += detail::ConstRowMap<T>(partials + group * stride + q0 * M, q, M);
      block = sums.transpose();
    });
  } else {
    constexpr std::size_t slice = 4096, slices = (M * G::patch + slice - 1) / slice;
    parallel_for(slices, [&](std::size_t s, std::size_t) {
      const std::size_t begin = s * slice, end = std::min<std::size_t>(M * G::patch, begin + slice);
      for (std::size_t group = 0; group < used_groups; ++group)
        for (std::size_t i = begin; i < end; ++i) dw[i] += partials[group * stride + i];
    });
  }
  detail::input_gradient_apart<G, M>(dy, N, w, dx);
}

}  // namespace ctnn::kernels
