// Loops over whole activations: split into fixed slices for the thread pool, and per-plane sums
// that vectorise (independent lanes, so no reassociation of a single sum is needed).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstddef>
#include <type_traits>
#include <utility>

#include "ctnn/threads.hpp"

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

/// Values [begin, end) of a batch as an Eigen array, for vectorised expressions on one slice.
template <class B>
auto array(B& batch, std::size_t begin, std::size_t end) {
  using T = std::remove_const_t<std::remove_pointer_t<decltype(batch.data())>>;
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  using Mapped = std::conditional_t<std::is_const_v<B>, const Array, Array>;
  return Eigen::Map<Mapped>(batch.data() + begin, Eigen::Index(end - begin));
}

/// {Σ f(i), Σ g(i)} for i in [0, n) in one pass, each accumulated in 16 double lanes: the compiler
/// vectorises it, float terms lose nothing to the running sums (BatchNorm's gradient sums cancel
/// heavily), and the order (hence the result) is fixed by n alone.
template <class F, class G>
std::pair<double, double> lane_sums(std::size_t n, F&& f, G&& g) {
  double f_lanes[16] = {}, g_lanes[16] = {};
  std::size_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) f_lanes[l] += f(i + l), g_lanes[l] += g(i + l);
  for (int l = 0; i < n && l < 16; ++i, ++l) f_lanes[l] += f(i), g_lanes[l] += g(i);
  double f_total = 0, g_total = 0;
  for (int l = 0; l < 16; ++l) f_total += f_lanes[l], g_total += g_lanes[l];
  return {f_total, g_total};
}

}  // namespace ctnn::kernels
