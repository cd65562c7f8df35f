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

/// Two sums, Σ f(i) and Σ g(i), over any number of add() calls, each accumulated in 16 double
/// lanes: the compiler vectorises them, float terms lose nothing to the running sums (BatchNorm's
/// gradient sums cancel heavily), and the order (hence the result) is fixed by the calls' lengths.
/// The lanes are added up once, in totals(): done per call, the two chains of 16 dependent adds
/// took longer than the sums of a 16- or 49-value plane themselves.
struct LaneSums {
  alignas(64) double first[16] = {}, second[16] = {};

  /// Adds f(i) and g(i) for i in [0, n), i to lane i mod 16.
  template <class F, class G>
  void add(std::size_t n, F&& f, G&& g) {
    std::size_t i = 0;
    for (; i + 16 <= n; i += 16)
      for (int l = 0; l < 16; ++l) first[l] += f(i + l), second[l] += g(i + l);
    for (int l = 0; i < n && l < 16; ++i, ++l) first[l] += f(i), second[l] += g(i);
  }

  /// {Σ f, Σ g}: the lanes summed pairwise, in a fixed order.
  std::pair<double, double> totals() const {
    double a[16], b[16];
    std::copy_n(first, 16, a), std::copy_n(second, 16, b);
    for (int width = 8; width > 0; width /= 2)
      for (int l = 0; l < width; ++l) a[l] += a[l + width], b[l] += b[l + width];
    return {a[0], b[0]};
  }
};

}  // namespace ctnn::kernels
