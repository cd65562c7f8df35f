// Compile-cost probe: instantiates forward and backward of CTNN_NET (e.g. -DCTNN_NET=ResNet152)
// at 3×224×224, as a program using that network would.
#include <ctnn/ctnn.hpp>

#include <cstdio>

#ifndef CTNN_NET
#error "compile with -DCTNN_NET=ResNet50 (or another alias)"
#endif

using Net = ctnn::Model<ctnn::CTNN_NET<>, ctnn::Shape<3, 224, 224>>;

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
