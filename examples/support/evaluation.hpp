// Test-set evaluation shared by the trainer and evaluate: loss, accuracy, confusion matrix.
#pragma once

#include <ctnn/ctnn.hpp>
#include <ctnn/io/idx.hpp>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <string>
#include <vector>

namespace examples {

struct Evaluation {
  double loss = 0;      // mean cross-entropy
  double accuracy = 0;  // fraction correct
  std::vector<std::vector<std::size_t>> confusion;  // [true][predicted]
  std::vector<int> predictions;                      // per test image, in dataset order

  double class_accuracy(int c) const {
    const std::size_t total = std::accumulate(confusion[c].begin(), confusion[c].end(), std::size_t{0});
    return total ? double(confusion[c][c]) / double(total) : 0.0;
  }
};

/// Runs `model` in eval mode over the first `limit` images of `data` (all if 0), `batch` at a time.
template <class M>
Evaluation evaluate(M& model, const ctnn::ImageDataset<typename M::input_shape>& data, std::size_t batch,
                    std::size_t limit = 0) {
  constexpr int classes = M::output_shape::channels;
  const std::size_t count = limit ? std::min(limit, data.size()) : data.size();
  Evaluation result;
  result.confusion.assign(classes, std::vector<std::size_t>(classes, 0));
  result.predictions.reserve(count);
  typename M::Input images;
  std::vector<int> labels;
  std::vector<std::size_t> indices;
  double loss_sum = 0;
  std::size_t correct = 0;
  for (std::size_t start = 0; start < count; start += batch) {
    const std::size_t n = std::min(batch, count - start);
    indices.resize(n);
    std::iota(indices.begin(), indices.end(), start);
    data.fill_batch(std::span<const std::size_t>(indices), images, labels);
    const auto& logits = model.forward(images, ctnn::Mode::eval);
    loss_sum += double(ctnn::cross_entropy(logits, std::span<const int>(labels))) * double(n);
    for (std::size_t i = 0; i < n; ++i) {
      const float* z = logits.image(i);
      const int predicted = int(std::max_element(z, z + classes) - z);
      result.predictions.push_back(predicted);
      ++result.confusion[labels[i]][predicted];
      correct += predicted == labels[i];
    }
  }
  result.loss = loss_sum / double(count);
  result.accuracy = double(correct) / double(count);
  return result;
}

inline void print_confusion(const Evaluation& e) {
  const std::size_t classes = e.confusion.size();
  std::printf("confusion matrix (rows: true class, columns: predicted)\n      ");
  for (std::size_t c = 0; c < classes; ++c) std::printf("%6zu", c);
  std::printf("\n");
  for (std::size_t t = 0; t < classes; ++t) {
    std::printf("%6zu", t);
    for (std::size_t p = 0; p < classes; ++p) std::printf("%6zu", e.confusion[t][p]);
    std::printf("\n");
  }
}

inline void print_class_accuracy(const Evaluation& e) {
  std::printf("per-class accuracy:");
  for (std::size_t c = 0; c < e.confusion.size(); ++c) std::printf(" %zu:%.4f", c, e.class_accuracy(int(c)));
  std::printf("\n");
}

}  // namespace examples
