// A per-channel affine map and ReLU that a kernel applies while it stores its output, so the
// layers after a convolution in eval mode (BatchNorm, ReLU) need no pass of their own.
#pragma once

#include <algorithm>
#include <cstddef>

namespace ctnn::kernels {

/// What conv_forward does to output channel m's values as it stores them: v · scale[m] + shift[m]
/// (a null scale means 1, a null shift 0), plus the value at the same place of `residual` (laid out
/// as the output; null: none), then max(·, 0) if relu. The residual is Residual's shortcut, added
/// as the main branch's last convolution stores its output.
template <class T>
struct ChannelTransform {
  const T* scale = nullptr;
  const T* shift = nullptr;
  bool relu = false;
  const T* residual = nullptr;

  /// Applies the affine map (and the ReLU if there is no residual: store_with_residual adds it first) to
  /// rows [0, rows) of tile (row r is channel first_channel + r).
  void apply(T* tile, std::size_t ld, std::size_t rows, std::size_t columns, std::size_t first_channel) const {
    const bool relu_now = relu && !residual;
    if (!scale && !shift && !relu_now) return;
    for (std::size_t r = 0; r < rows; ++r) {
      T* row = tile + r * ld;
      const T s = scale ? scale[first_channel + r] : T(1), b = shift ? shift[first_channel + r] : T(0);
      // The same expression as BatchNorm2d's own loop, so fused and separate layers agree.
      if (scale)
        for (std::size_t i = 0; i < columns; ++i) row[i] = row[i] * s + b;
      else if (shift)
        for (std::size_t i = 0; i < columns; ++i) row[i] += b;
      if (relu_now)
        for (std::size_t i = 0; i < columns; ++i) row[i] = std::max(row[i], T(0));
    }
  }

  /// Stores `length` values of an applied row at output + offset, adding the residual at the same
  /// offset and then applying the ReLU. Only for a transform with a residual.
  void store_with_residual(const T* row, std::size_t length, T* output, std::size_t offset) const {
    const T* add = residual + offset;
    T* out = output + offset;
    // The same expressions as Residual's own pass and BatchNorm2d's, so fused and separate agree.
    if (relu)
      for (std::size_t i = 0; i < length; ++i) out[i] = std::max(row[i] + add[i], T(0));
    else
      for (std::size_t i = 0; i < length; ++i) out[i] = row[i] + add[i];
  }
};

}  // namespace ctnn::kernels
