// The input gradient of a strided convolution, phase by phase. Bordered input row S·a + py
// (py < S) is reached only by kernel rows ky = py + S·j, each from output row a − j; so each of the
// S×S phases of dx (rows ≡ py, columns ≡ px mod S) is a stride-1 correlation of dy with a
// sub-kernel of ⌈(K − py)/S⌉ × ⌈(K − px)/S⌉ taps, run as one GEMM that reads a zero-bordered dy
// in place. The im2col way (dcol = wᵀ · dy, then col2im adding up to ⌈K/S⌉² values into each input)
// wrote and reread a patch matrix of C·K² values per output position, K²/S² times the size of dx.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <utility>

#include "ctnn/kernels/gemm.hpp"
#include "ctnn/kernels/im2col.hpp"
#include "ctnn/kernels/scratch.hpp"
#include "ctnn/kernels/task_split.hpp"
#include "ctnn/threads.hpp"

namespace ctnn::kernels {

/// One axis (rows or columns) of a strided convolution's input gradient by phases: `extent`
/// inputs, `out_extent` outputs, kernel K, stride S, padding P.
template <int extent, int out_extent, int K, int S, int P>
struct PhaseAxis {
  /// Phase p's inputs are S·a + p − P for a in [first(p), first(p) + count(p)).
  static constexpr int first(int p) { return p >= P ? 0 : (P - p + S - 1) / S; }
  static constexpr int count(int p) {
    const int last = extent - 1 + P - p;
    return last < 0 ? 0 : std::max(0, last / S + 1 - first(p));
  }
  /// Phase p's kernel taps are p + S·j for j < taps(p); tap j reads output a − j.
  static constexpr int taps(int p) { return p >= K ? 0 : (K - p + S - 1) / S; }
  static constexpr bool used(int p) { return taps(p) > 0 && count(p) > 0; }
  /// Zeros before dy's first value, for the reads a − j < 0 ...
  static constexpr int border = [] {
    int b = 0;
    for (int p = 0; p < S; ++p)
      if (used(p)) b = std::max(b, taps(p) - 1 - first(p));
    return b;
  }();
  /// ... and the bordered length, zeros after dy for the reads a ≥ out_extent.
  static constexpr int bordered = [] {
    int end = out_extent;
    for (int p = 0; p < S; ++p)
      if (used(p)) end = std::max(end, first(p) + count(p));
    return border + end;
  }();
};

/// The phases of G's input gradient for M output channels. A task's dy is laid out channel by
/// channel, each channel holding its images' bordered planes one after another, so one GEMM spans
/// all of them; output column q = n·bordered_image + r·bordered_width + s is phase row r, column s
/// of image n (columns whose r or s lies past the phase's count are computed and dropped).
template <class G, int M>
struct InputPhases {
  using Rows = PhaseAxis<G::height, G::out_height, G::kernel, G::stride, G::padding>;
  using Columns = PhaseAxis<G::width, G::out_width, G::kernel, G::stride, G::padding>;
  static constexpr int S = G::stride;
  static constexpr std::size_t width = Columns::bordered, image = std::size_t(Rows::bordered) * width;
  /// Images per task at most: GEMMs of about 512 columns.
  static constexpr std::size_t images = std::max<std::size_t>(1, 512 / image);
  static constexpr std::size_t plane = images * image;  // a task's dy channel m starts at m·plane
  static constexpr std::size_t taps(int py, int px) { return std::size_t(M) * Rows::taps(py) * Columns::taps(px); }
  /// Where phase (py, px) starts in the packed weights (times C) and in the offset table.
  static constexpr std::size_t start(int py, int px) {
    std::size_t sum = 0;
    for (int p = 0; p < py * S + px; ++p) sum += taps(p / S, p % S);
    return sum;
  }
  /// Whether every input is reached by some tap (not so for a 1×1 stride-2 kernel).
  static constexpr bool covers_input = Rows::taps(S - 1) > 0 && Columns::taps(S - 1) > 0;

  /// Phase (py, px)'s tap (m, j, i), at start(py, px) + (m·taps_y + j)·taps_x + i, reads the
  /// bordered dy at this offset from output column q.
  static inline const std::array<std::uint32_t, std::size_t(M) * G::kernel * G::kernel> offsets = [] {
    std::array<std::uint32_t, std::size_t(M) * G::kernel * G::kernel> table{};
    for (int py = 0; py < S; ++py)
      for (int px = 0; px < S; ++px) {
        const int ty = Rows::taps(py), tx = Columns::taps(px);
        std::size_t k = start(py, px);
        for (int m = 0; m < M; ++m)
          for (int j = 0; j < ty; ++j)
            for (int i = 0; i < tx; ++i, ++k)
              table[k] = std::uint32_t(m * plane + (Rows::border + Rows::first(py) - j) * width + Columns::border +
                                       Columns::first(px) - i);
      }
    return table;
  }();
};

/// dx = dL/dx of the stride > 1 convolution G with M output channels (w: M × G::patch, dy:
/// N × M × G::positions), by phases; each value is one GEMM sum in a fixed order.
template <class G, int M, class T>
void phase_input_gradient(const T* dy, std::size_t N, const T* w, T* dx) {
  using Phases = InputPhases<G, M>;
  using Rows = typename Phases::Rows;
  using Columns = typename Phases::Columns;
  constexpr int S = G::stride, K = G::kernel, C = G::channels, P = G::padding, H = G::height, W = G::width;
  constexpr std::size_t width = Phases::width, image = Phases::image;
  // Weights by phase: phase (py, px) is C × taps(py, px), row c's tap (m, j, i) being
  // w[m][c][py + S·j][px + S·i].
  T* packed = scratch<T>(0, Slot::flipped, G::patch * M);
  parallel_for(std::size_t(C), [&](std::size_t c, std::size_t) {
    for (int py = 0; py < S; ++py)
      for (int px = 0; px < S; ++px) {
        const int ty = Rows::taps(py), tx = Columns::taps(px);
        T* row = packed + C * Phases::start(py, px) + c * Phases::taps(py, px);
        for (int m = 0; m < M; ++m)
          for (int j = 0; j < ty; ++j)
            for (int i = 0; i < tx; ++i)
              *row++ = w[((std::size_t(m) * C + c) * K + py + S * j) * K + px + S * i];
      }
  });
  // Chunks of images, each laid out as Phases describes: at most a quarter of the batch per chunk,
  // so two threads share even a small batch, unless the weights outgrow L2 (over 1 MiB), where
  // every task streams its share of them once per chunk: then chunks as large as Phases allows,
  // and tasks split the input channels instead.
  const std::size_t quarter = std::max<std::size_t>(1, (N + 3) / 4);
  const std::size_t per_chunk = detail::weights_outgrow_l2<G, M> ? Phases::images : std::min(Phases::images, quarter);
  const std::size_t chunks = (N + per_chunk - 1) / per_chunk;
  T* bordered = scratch<T>(0, Slot::padded, chunks * M * Phases::plane);
  parallel_for(chunks * M, [&](std::size_t task, std::size_t) {
    const std::size_t chunk = task / M, m = task % M, n0 = chunk * per_chunk, n1 = std::min(N, n0 + per_chunk);
    for (std::size_t n = n0; n < n1; ++n) {
      const T* g = dy + (n * M + m) * G::positions;
      T* out = bordered + (chunk * M + m) * Phases::plane + (n - n0) * image;
      zero_row(int(Rows::border * width), out);
      out += Rows::border * width;
      for (int oy = 0; oy < G::out_height; ++oy, out += width) {
        zero_row(Columns::border, out);
        copy_row(g + oy * G::out_width, G::out_width, out + Columns::border);
        zero_row(int(width) - Columns::border - G::out_width, out + Columns::border + G::out_width);
      }
      zero_row(int((Rows::bordered - Rows::border - G::out_height) * width), out);
    }
  });
  if constexpr (!Phases::covers_input) std::fill_n(dx, N * G::image, T(0));
  // Not a structured binding: the lambda captures these, which clang 14 (the fuzz build) rejects.
  const std::pair<std::size_t, std::size_t> split = detail::channel_splits<C>(chunks);
  const std::size_t splits = split.first, split_rows = split.second;
  parallel_for(chunks * splits, [&](std::size_t task, std::size_t thread) {
    const std::size_t chunk = task / splits, c0 = std::min<std::size_t>(C, task % splits * split_rows);
    const std::size_t c1 = std::min<std::size_t>(C, c0 + split_rows), n0 = chunk * per_chunk, n1 = std::min(N, n0 + per_chunk);
    if (c1 == c0) return;
    const std::size_t most_columns = (n1 - n0) * image;
    T* out = scratch<T>(thread, Slot::tile, (c1 - c0) * most_columns);
    for (int py = 0; py < S; ++py)
      for (int px = 0; px < S; ++px) {
        if (!Rows::used(py) || !Columns::used(px)) continue;
        const int rows = Rows::count(py), length = Columns::count(px);
        const std::size_t k = Phases::taps(py, px), columns = most_columns - image + (rows - 1) * width + length;
        panel_gemm<T>(c1 - c0, k, Strided<T>{packed + C * Phases::start(py, px) + c0 * k, k, 1},
                      bordered + chunk * M * Phases::plane, TableRows{Phases::offsets.data() + Phases::start(py, px)},
                      panel_width, columns, out, columns);
        const int y0 = S * Rows::first(py) + py - P, x0 = S * Columns::first(px) + px - P;
        for (std::size_t n = n0; n < n1; ++n)
          for (std::size_t c = c0; c < c1; ++c) {
            const T* in = out + (c - c0) * columns + (n - n0) * image;
            T* plane = dx + n * G::image + c * H * W + x0;
            for (int r = 0; r < rows; ++r) spread_strided_row<S, false>(in + r * width, length, plane + (y0 + S * r) * W);
          }
      }
  });
}

}  // namespace ctnn::kernels
