// The MNIST net's convolutions one at a time, batch 128: where a training step's convolution time
// goes, layer by layer, next to PyTorch's (bench/compare_pytorch.sh --workloads mnist_conv_layers).
// Per layer: the forward pass, and the backward pass that training runs (weight and input
// gradients; the stem's input needs none). Prints
//   RESULT workload=mnist_conv_layers layer=16x28x28-3x3s1-16 uses=4 pass=forward threads=.. ms=.. gflops=..
// `uses` is how many layers of that shape one training step runs.
#include <ctnn/kernels/conv.hpp>
#include <ctnn/random.hpp>

#include <cstdio>
#include <vector>

#include "bench_common.hpp"

namespace {

template <int C, int H, int K, int S, int M>
void time_layer(const bench::Options& options, int uses, bool input_gradient) {
  using G = ctnn::kernels::ConvGeometry<C, H, H, K, S, (K - 1) / 2>;
  constexpr std::size_t batch = 128;
  ctnn::Rng rng(11);
  const auto filled = [&](std::size_t n) {
    std::vector<float> v(n);
    for (float& value : v) value = float(rng.normal());
    return v;
  };
  const std::vector<float> x = filled(batch * G::image), w = filled(M * G::patch),
                           dy = filled(batch * M * G::positions);
  std::vector<float> y(dy.size()), dw(w.size()), dx(input_gradient ? x.size() : 0);
  const ctnn::kernels::ChannelTransform<float> none{};
  const double flop = 2.0 * double(M) * double(G::patch) * double(G::positions) * double(batch);
  char layer[64];
  std::snprintf(layer, sizeof layer, "%dx%dx%d-%dx%ds%d-%d", C, H, H, K, K, S, M);
  const auto print = [&](const char* pass, const bench::Timing& t, double pass_flop) {
    std::printf("RESULT workload=mnist_conv_layers layer=%s uses=%d pass=%s threads=%zu ms=%.3f best_ms=%.3f gflops=%.1f\n",
                layer, uses, pass, options.threads, t.seconds * 1e3, t.best * 1e3, pass_flop / t.seconds * 1e-9);
  };
  print("forward", bench::measure(options, [&] {
          ctnn::kernels::conv_forward<G, M>(x.data(), batch, w.data(), none, y.data());
        }), flop);
  print("backward", bench::measure(options, [&] {
          ctnn::kernels::conv_backward<G, M, float>(x.data(), dy.data(), batch, w.data(), dw.data(), nullptr,
                                                    input_gradient ? dx.data() : nullptr);
        }), input_gradient ? 2 * flop : flop);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Options options = bench::parse(argc, argv, "mnist_conv_layers");
  if (!bench::selected(options, "mnist_conv_layers")) return 0;
  //         C   H   K  S    M     uses  input gradient
  time_layer<1, 28, 3, 1, 16>(options, 1, false);  // stem
  time_layer<16, 28, 3, 1, 16>(options, 4, true);  // layer1
  time_layer<16, 28, 3, 2, 32>(options, 1, true);  // layer2: first conv, shortcut, the rest
  time_layer<16, 28, 1, 2, 32>(options, 1, true);
  time_layer<32, 14, 3, 1, 32>(options, 3, true);
  time_layer<32, 14, 3, 2, 64>(options, 1, true);  // layer3
  time_layer<32, 14, 1, 2, 64>(options, 1, true);
  time_layer<64, 7, 3, 1, 64>(options, 3, true);
  time_layer<64, 7, 3, 2, 128>(options, 1, true);  // layer4
  time_layer<64, 7, 1, 2, 128>(options, 1, true);
  time_layer<128, 4, 3, 1, 128>(options, 3, true);
}
