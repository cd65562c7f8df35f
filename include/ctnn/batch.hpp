// A batch of images of a compile-time shape: N × C × H × W values, contiguous, PyTorch's NCHW.
#pragma once

#include <Eigen/Core>
#include <cassert>
#include <cstddef>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ctnn/shape.hpp"

namespace ctnn {

template <class T>
using AlignedVector = std::vector<T, Eigen::aligned_allocator<T>>;

/// Batch<S, T>: N images of shape S, stored image after image (NCHW), aligned for SIMD.
/// resize() never shrinks the allocation, so buffers reused across steps stop allocating.
/// PyTorch equivalent: a contiguous tensor of shape [N, S::channels, S::height, S::width].
template <ShapeType S, class T = float>
class Batch {
 public:
  using shape = S;
  using scalar = T;
  using Matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>;

  Batch() = default;
  explicit Batch(std::size_t batch_size) { resize(batch_size); }

  void resize(std::size_t batch_size) {
    if (batch_size * S::size > values_.size()) values_.resize(batch_size * S::size);
    batch_size_ = batch_size;
  }

  std::size_t batch_size() const { return batch_size_; }
  std::size_t value_count() const { return batch_size_ * S::size; }
  /// Values the allocation holds (at least value_count()).
  std::size_t capacity() const { return values_.size(); }

  T* data() { return values_.data(); }
  const T* data() const { return values_.data(); }
  T* image(std::size_t n) { return values_.data() + n * S::size; }
  const T* image(std::size_t n) const { return values_.data() + n * S::size; }
  std::span<T> values() { return {values_.data(), value_count()}; }
  std::span<const T> values() const { return {values_.data(), value_count()}; }

  T& at(std::size_t n, int c, int h, int w) {
    return values_[n * S::size + (std::size_t(c) * S::height + h) * S::width + w];
  }
  T at(std::size_t n, int c, int h, int w) const {
    return values_[n * S::size + (std::size_t(c) * S::height + h) * S::width + w];
  }

  /// One column per image: a S::size × N column-major view.
  Eigen::Map<Matrix, Eigen::Aligned16> matrix() { return {data(), Eigen::Index(S::size), Eigen::Index(batch_size_)}; }
  Eigen::Map<const Matrix, Eigen::Aligned16> matrix() const {
    return {data(), Eigen::Index(S::size), Eigen::Index(batch_size_)};
  }

  void set_zero() { std::fill_n(values_.data(), value_count(), T(0)); }

  /// Hands the allocation over and leaves the batch empty; adopt_storage() takes one in. Lets
  /// batches of different shapes whose contents are never needed at once share memory (see
  /// buffer_pool.hpp).
  AlignedVector<T> release_storage() {
    batch_size_ = 0;
    return std::exchange(values_, {});
  }
  void adopt_storage(AlignedVector<T>&& storage) {
    values_ = std::move(storage);
    batch_size_ = 0;
  }

 private:
  AlignedVector<T> values_;
  std::size_t batch_size_ = 0;
};

}  // namespace ctnn
