#pragma once

#include <algorithm>
#include <cmath>
#include <span>
#include <stdexcept>
#include <string>

#include "ctnn/batch.hpp"

namespace ctnn {

/// Softmax over the K logits of each image, stable (the maximum is subtracted first).
/// PyTorch: F.softmax(logits, dim=1) — the seed's `probas`.
template <int K, class T>
void softmax(const Batch<Shape<K, 1, 1>, T>& logits, Batch<Shape<K, 1, 1>, T>& probabilities) {
  probabilities.resize(logits.batch_size());
  for (std::size_t n = 0; n < logits.batch_size(); ++n) {
    const T* z = logits.image(n);
    T* p = probabilities.image(n);
    const T top = *std::max_element(z, z + K);
    T sum = 0;
    for (int k = 0; k < K; ++k) sum += p[k] = std::exp(z[k] - top);
    for (int k = 0; k < K; ++k) p[k] /= sum;
  }
}

/// Mean softmax cross-entropy of logits [K, 1, 1] against class labels in [0, K), computed with
/// log-sum-exp. If `grad` is given it receives dLoss/dLogits = (softmax − onehot) / N.
/// PyTorch: nn.CrossEntropyLoss()(logits, labels) (reduction='mean').
template <int K, class T>
T cross_entropy(const Batch<Shape<K, 1, 1>, T>& logits, std::span<const int> labels,
                Batch<Shape<K, 1, 1>, T>* grad = nullptr) {
  const std::size_t batch = logits.batch_size();
  if (labels.size() != batch)
    throw std::invalid_argument("cross_entropy: " + std::to_string(labels.size()) + " labels for a batch of " +
                                std::to_string(batch) + " logits");
  if (batch == 0) throw std::invalid_argument("cross_entropy: empty batch");
  if (grad) grad->resize(batch);
  double total = 0;
  for (std::size_t n = 0; n < batch; ++n) {
    const int label = labels[n];
    if (label < 0 || label >= K)
      throw std::out_of_range("cross_entropy: label " + std::to_string(label) + " of sample " + std::to_string(n) +
                              " is outside [0, " + std::to_string(K) + ")");
    const T* z = logits.image(n);
    const T top = *std::max_element(z, z + K);
    double sum = 0;
    for (int k = 0; k < K; ++k) sum += std::exp(double(z[k] - top));
    const double log_sum = double(top) + std::log(sum);
    total += log_sum - double(z[label]);
    if (grad) {
      T* g = grad->image(n);
      for (int k = 0; k < K; ++k) g[k] = T((std::exp(double(z[k]) - log_sum) - (k == label ? 1.0 : 0.0)) / double(batch));
    }
  }
  return T(total / double(batch));
}

}  // namespace ctnn
