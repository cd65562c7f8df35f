// The machine's peak: independent FMA chains that never touch memory, on 1..N threads at once.
// AVX-512 when compiled for it, otherwise 256-bit or 128-bit GCC vectors (whatever -march gives).
// `peak_flops --threads 2` prints `RESULT workload=peak threads=2 gflops=...` (median of runs).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "bench_common.hpp"

namespace {

#if defined(__AVX512F__)
constexpr int lanes = 16;
#elif defined(__AVX__)
constexpr int lanes = 8;
#else
constexpr int lanes = 4;
#endif
typedef float Vec __attribute__((vector_size(lanes * sizeof(float))));

// 12 chains hide the FMA latency (4 cycles) on two FMA pipes; named variables (not an array) keep
// every chain in a register.
constexpr int chains = 12;
constexpr long iterations = 20'000'000;

__attribute__((noinline)) float fma_loop(float seed) {
  const Vec a = Vec{} + 0.999999f, b = Vec{} + 1e-7f;
  Vec c0 = Vec{} + seed, c1 = c0 + 1, c2 = c0 + 2, c3 = c0 + 3, c4 = c0 + 4, c5 = c0 + 5;
  Vec c6 = c0 + 6, c7 = c0 + 7, c8 = c0 + 8, c9 = c0 + 9, c10 = c0 + 10, c11 = c0 + 11;
  for (long i = 0; i < iterations; ++i) {
    c0 = c0 * a + b; c1 = c1 * a + b; c2 = c2 * a + b; c3 = c3 * a + b;    // one FMA each under
    c4 = c4 * a + b; c5 = c5 * a + b; c6 = c6 * a + b; c7 = c7 * a + b;    // -ffp-contract=fast,
    c8 = c8 * a + b; c9 = c9 * a + b; c10 = c10 * a + b; c11 = c11 * a + b;  // GCC's default
  }
  const Vec sum = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
  float total = 0;
  for (int l = 0; l < lanes; ++l) total += sum[l];
  return total;
}

double gflops(std::size_t threads) {
  std::vector<std::thread> pool;
  std::vector<float> sink(threads);
  const auto start = std::chrono::steady_clock::now();
  for (std::size_t t = 0; t < threads; ++t) pool.emplace_back([&, t] { sink[t] = fma_loop(float(t + 1)); });
  for (auto& t : pool) t.join();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return 2.0 * lanes * chains * double(iterations) * double(threads) / seconds * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  const bench::Options options = bench::parse(argc, argv, "peak");
  std::vector<double> runs;
  for (int i = 0; i < options.warmup; ++i) gflops(options.threads);
  for (int i = 0; i < options.runs; ++i) runs.push_back(gflops(options.threads));
  std::sort(runs.begin(), runs.end());
  std::printf("RESULT workload=peak threads=%zu lanes=%d gflops=%.1f best=%.1f\n", options.threads, lanes,
              runs[runs.size() / 2], runs.back());
}
