// Uses ctnn as a library user would: declare a network, check its shape at compile time, run it.
#include <ctnn/ctnn.hpp>

#include <cmath>
#include <iostream>

using Net = ctnn::Sequential<ctnn::Conv2d<1, 4, 3, 1, 1>, ctnn::BatchNorm2d<4>, ctnn::ReLU, ctnn::GlobalAvgPool2d,
                             ctnn::Flatten, ctnn::Linear<4, 3>>;
using Model = ctnn::Model<Net, ctnn::Shape<1, 8, 8>>;
static_assert(std::is_same_v<Model::output_shape, ctnn::Shape<3, 1, 1>>);
static_assert(Model::parameter_count == 4 * 9 + 8 + 4 * 3 + 3);

int main() {
  Model model(42);
  Model::Input x(2);
  for (std::size_t i = 0; i < x.value_count(); ++i) x.data()[i] = float(i % 7) / 7.0f;
  const auto& logits = model.forward(x, ctnn::Mode::eval);
  for (float v : logits.values())
    if (!std::isfinite(v)) return 1;
  std::cout << "consumer: " << logits.batch_size() << " x " << Model::output_shape::channels << " logits\n";
  return logits.batch_size() == 2 ? 0 : 1;
}
