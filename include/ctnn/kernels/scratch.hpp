// Temporary buffers for kernels: one grow-only set per thread, shared by every layer, so the
// steady state allocates nothing and a deep network does not keep a patch matrix per layer.
#pragma once

#include <array>
#include <cstddef>

#include "ctnn/batch.hpp"
#include "ctnn/threads.hpp"

namespace ctnn::kernels {

/// What a kernel uses a scratch buffer for; one buffer per (thread, slot).
enum class Slot : std::size_t { columns, tile, gradient, partials, transposed, padded, flipped, lane_sums, winograd_weights, moment_lanes, moment_partials, count_ };

/// At least `count` values of thread `thread`'s buffer for `slot`, 64-byte aligned, contents
/// unspecified. Valid until the same (thread, slot) is requested again with a larger count.
/// Each thread may touch only its own buffers inside parallel_for.
template <class T>
T* scratch(std::size_t thread, Slot slot, std::size_t count) {
  static std::array<std::array<AlignedVector<T>, std::size_t(Slot::count_)>, max_threads> buffers;
  auto& buffer = buffers[thread][std::size_t(slot)];
  if (buffer.size() < count) {
    buffer.clear();
    buffer.shrink_to_fit();
    buffer.resize(count);
  }
  return buffer.data();
}

}  // namespace ctnn::kernels
