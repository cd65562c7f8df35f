// What a module owns and exposes by name: trainable parameters, float buffers and counters.
#pragma once

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "ctnn/batch.hpp"

namespace ctnn {

/// A trainable tensor (PyTorch nn.Parameter) with its gradient. `dims` is PyTorch's shape
/// (OIHW for convolutions, out×in for Linear); values are row-major in that shape.
template <class T>
struct Parameter {
  std::vector<std::int64_t> dims;
  AlignedVector<T> value;
  AlignedVector<T> grad;

  explicit Parameter(std::vector<std::int64_t> shape)
      : dims(std::move(shape)), value(element_count(dims), T(0)), grad(value.size(), T(0)) {}
  std::size_t size() const { return value.size(); }
  void zero_grad() { std::fill(grad.begin(), grad.end(), T(0)); }

  static std::size_t element_count(const std::vector<std::int64_t>& d) {
    return std::accumulate(d.begin(), d.end(), std::size_t{1}, [](std::size_t a, std::int64_t b) { return a * std::size_t(b); });
  }
};

/// A non-trainable float tensor saved in the state dict (BatchNorm running_mean / running_var).
template <class T>
struct Buffer {
  std::vector<std::int64_t> dims;
  AlignedVector<T> value;

  Buffer(std::vector<std::int64_t> shape, T fill) : dims(std::move(shape)), value(Parameter<T>::element_count(dims), fill) {}
  std::size_t size() const { return value.size(); }
};

/// A 0-d int64 tensor (BatchNorm num_batches_tracked).
struct Counter {
  std::int64_t value = 0;
};

/// Module visitors are called as f(name, Parameter<T>&), f(name, Buffer<T>&) and f(name, Counter&)
/// in PyTorch state_dict() order. These adaptors let a caller handle only what it cares about.
template <class F>
struct OnParameters {
  F f;
  template <class T>
  void operator()(const std::string& name, Parameter<T>& p) { f(name, p); }
  template <class T>
  void operator()(const std::string&, Buffer<T>&) {}
  void operator()(const std::string&, Counter&) {}
};
template <class F>
OnParameters(F) -> OnParameters<F>;

/// Joins a module path the way PyTorch does: "layer1" + "0" -> "layer1.0"; "" + "conv1" -> "conv1".
inline std::string join_name(const std::string& prefix, std::string_view leaf) {
  if (prefix.empty()) return std::string(leaf);
  if (leaf.empty()) return prefix;
  std::string out;
  out.reserve(prefix.size() + 1 + leaf.size());
  out.append(prefix).push_back('.');
  out.append(leaf);
  return out;
}

}  // namespace ctnn
