// A per-channel affine map and ReLU that a kernel applies while it stores its output, so the
// layers after a convolution in eval mode (BatchNorm, ReLU) need no pass of their own.
#pragma once

#include <algorithm>
#include <cstddef>

namespace ctnn::kernels {

/// What conv_forward does to output channel m's values as it stores them: v · scale[m] + shift[m]
/// (a null scale means 1, a null shift 0), then max(·, 0) if relu.
template <class T>
struct ChannelTransform {
  const T* scale = nullptr;
  const T* shift = nullptr;
  bool relu = false;

  /// Applies the transform to rows [0, rows) of tile (row r is channel first_channel + r).
  void apply(T* tile, std::size_t ld, std::size_t rows, std::size_t columns, std::size_t first_channel) const {
    if (!scale && !shift && !relu) return;
    for (std::size_t r = 0; r < rows; ++r) {
      T* row = tile + r * ld;
      const T s = scale ? scale[first_channel + r] : T(1), b = shift ? shift[first_channel + r] : T(0);
      // The same expression as BatchNorm2d's own loop, so fused and separate layers agree.
      if (scale)
        for (std::size_t i = 0; i < columns; ++i) row[i] = row[i] * s + b;
      else if (shift)
        for (std::size_t i = 0; i < columns; ++i) row[i] += b;
      if (relu)
        for (std::size_t i = 0; i < columns; ++i) row[i] = std::max(row[i], T(0));
    }
  }
};

}  // namespace ctnn::kernels
