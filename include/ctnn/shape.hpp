// Compile-time tensor shapes. The batch size is the only runtime dimension in ctnn.
#pragma once

#include <cstddef>
#include <string>

namespace ctnn {

/// Shape<C, H, W>: one image of C channels, H rows and W columns (NCHW without the N).
/// PyTorch equivalent: tensor.shape[1:] of a 4-d activation.
template <int C, int H, int W>
struct Shape {
  static_assert(C > 0, "Shape: channel count must be positive");
  static_assert(H > 0 && W > 0, "Shape: spatial size must be positive (a layer shrank its input to nothing)");
  static constexpr int channels = C;
  static constexpr int height = H;
  static constexpr int width = W;
  static constexpr std::size_t plane = std::size_t(H) * W;
  static constexpr std::size_t size = std::size_t(C) * H * W;
};

template <class S>
concept ShapeType = requires {
  { S::channels } -> std::convertible_to<int>;
  { S::height } -> std::convertible_to<int>;
  { S::width } -> std::convertible_to<int>;
};

/// Same number of values as S, laid out as a C×1×1 vector (what Flatten produces).
template <ShapeType S>
using Flattened = Shape<int(S::size), 1, 1>;

/// "[C, H, W]" for messages and summaries.
template <ShapeType S>
std::string shape_string() {
  return "[" + std::to_string(S::channels) + ", " + std::to_string(S::height) + ", " +
         std::to_string(S::width) + "]";
}

/// Output length of a sliding window along one axis, as PyTorch computes it (floor mode).
constexpr int window_output_size(int input, int kernel, int stride, int padding) {
  return (input + 2 * padding - kernel) / stride + 1;
}

}  // namespace ctnn
