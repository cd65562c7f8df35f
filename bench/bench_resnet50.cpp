// torchvision's ResNet50 at 3×224×224: eval-mode latency at batch 1, throughput at batch 8, and a
// training step at batch 8 (forward, cross-entropy, backward, plain SGD update).
// `bench_resnet50 --threads 2 --workload resnet50_latency`
#include <ctnn/ctnn.hpp>

#include <vector>

#include "bench_common.hpp"

using Net = ctnn::Model<ctnn::ResNet50<>, ctnn::Shape<3, 224, 224>>;

int main(int argc, char** argv) {
  const bench::Options options = bench::parse(argc, argv, "resnet50_latency resnet50_infer resnet50_train");
  auto net = std::make_unique<Net>(1);
  ctnn::Rng rng(7);
  auto random_batch = [&](std::size_t batch) {
    Net::Input x(batch);
    for (float& v : x.values()) v = float(rng.normal());
    return x;
  };
  const double flop = 2.0 * double(Net::multiply_adds);

  if (bench::selected(options, "resnet50_latency")) {
    const Net::Input x = random_batch(1);
    bench::report(options, "resnet50_latency", 1, bench::measure(options, [&] { net->forward(x); }), flop);
  }
  if (bench::selected(options, "resnet50_infer")) {
    const Net::Input x = random_batch(8);
    bench::report(options, "resnet50_infer", 8, bench::measure(options, [&] { net->forward(x); }), flop);
  }
  if (bench::selected(options, "resnet50_train")) {
    const Net::Input x = random_batch(8);
    std::vector<int> labels{1, 2, 3, 4, 5, 6, 7, 8};
    Net::Output grad;
    std::vector<ctnn::Parameter<float>*> params;
    net->visit(ctnn::OnParameters{[&](const std::string&, ctnn::Parameter<float>& p) { params.push_back(&p); }});
    const bench::Timing timing = bench::measure(options, [&] {
      net->zero_grad();
      ctnn::cross_entropy(net->forward(x, ctnn::Mode::train), labels, &grad);
      net->backward(grad);
      for (auto* p : params)
        for (std::size_t i = 0; i < p->size(); ++i) p->value[i] -= 0.01f * p->grad[i];
    });
    bench::report(options, "resnet50_train", 8, timing, 3.0 * flop);
  }
}
