// Compile-cost probe: instantiates forward and backward of ResNet50 at 3×224×224.
#include <ctnn/ctnn.hpp>

#include <cstdio>

using Net = ctnn::Model<ctnn::ResNet50<>, ctnn::Shape<3, 224, 224>>;

int main() {
  Net model(1);
  Net::Input x(1);
  x.set_zero();
  const auto& y = model.forward(x, ctnn::Mode::train);
  Net::Output grad(1);
  grad.set_zero();
  model.backward(grad);
  std::printf("%zu parameters, %zu logits\n", Net::parameter_count, y.value_count());
}
