// The seed's MNIST ResNet18 at batch 128: a training step (forward in train mode, cross-entropy,
// backward, plain SGD update) and eval-mode inference. Random inputs: speed does not depend on
// the values. `bench_mnist --threads 2 --workload mnist_train`
#include <ctnn/ctnn.hpp>

#include <vector>

#include "bench_common.hpp"

using Net = ctnn::Model<ctnn::MnistResNet18<>, ctnn::Shape<1, 28, 28>>;

int main(int argc, char** argv) {
  const bench::Options options = bench::parse(argc, argv, "mnist_train mnist_infer");
  constexpr std::size_t batch = 128;
  auto net = std::make_unique<Net>(1);
  Net::Input x(batch);
  ctnn::Rng rng(7);
  for (float& v : x.values()) v = float(rng.normal());
  std::vector<int> labels(batch);
  for (std::size_t n = 0; n < batch; ++n) labels[n] = int(n % 10);
  Net::Output grad;

  if (bench::selected(options, "mnist_train")) {
    std::vector<ctnn::Parameter<float>*> params;
    net->visit(ctnn::OnParameters{[&](const std::string&, ctnn::Parameter<float>& p) { params.push_back(&p); }});
    const bench::Timing timing = bench::measure(options, [&] {
      net->zero_grad();
      const auto& logits = net->forward(x, ctnn::Mode::train);
      ctnn::cross_entropy(logits, labels, &grad);
      net->backward(grad);
      for (auto* p : params)  // plain SGD, lr 0.01: what every optimizer at least does
        for (std::size_t i = 0; i < p->size(); ++i) p->value[i] -= 0.01f * p->grad[i];
    });
    bench::report(options, "mnist_train", batch, timing, 6.0 * double(Net::multiply_adds));
  }
  if (bench::selected(options, "mnist_infer")) {
    const bench::Timing timing = bench::measure(options, [&] { net->forward(x, ctnn::Mode::eval); });
    bench::report(options, "mnist_infer", batch, timing, 2.0 * double(Net::multiply_adds));
  }
}
