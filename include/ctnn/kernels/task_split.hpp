// How the convolution kernels share a layer's work among tasks.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>

namespace ctnn::kernels::detail {

// Batches of 1–3 images (or other units of work): tasks also split the output channels, in whole
// 8-row register tiles, so every thread has work. Returns {splits, rows per split}.
template <int M>
std::pair<std::size_t, std::size_t> channel_splits(std::size_t units) {
  const std::size_t splits = units >= 4 ? 1 : std::max<std::size_t>(1, std::min<std::size_t>((4 + units - 1) / units, M / 16));
  return {splits, ((M + splits - 1) / splits + 7) / 8 * 8};
}

// Whether a layer's weights (M × G::patch floats) outgrow L2 (over 1 MiB): tasks then split
// them, so that each streams only its share from L3, instead of the images.
template <class G, int M>
constexpr bool weights_outgrow_l2 = std::size_t(M) * G::patch * sizeof(float) > (std::size_t(1) << 20);

}  // namespace ctnn::kernels::detail
