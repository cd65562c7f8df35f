// ctnn::set_num_threads: the MNIST net gives the same logits, loss, gradients and running
// statistics with 1, 2 and 3 threads. Kernels split work by problem size, never by thread count,
// and reduce partial results in a fixed order, so the results are bit-identical, not merely close.
#define BOOST_TEST_MODULE threads
#include <boost/test/unit_test.hpp>

#include <ctnn/ctnn.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <thread>
#include <vector>

using namespace ctnn;

namespace {

using Mnist = Model<MnistResNet18<>, Shape<1, 28, 28>>;

struct Outcome {
  std::vector<float> eval_logits, train_logits, gradients, state;
  float loss = 0;
};

// One eval forward, then two training steps (forward, cross-entropy, backward, SGD), on `threads`.
Outcome run(std::size_t threads, std::size_t batch) {
  set_num_threads(threads);
  auto net = std::make_unique<Mnist>(3);
  Mnist::Input x(batch);
  Rng rng(11);
  for (float& v : x.values()) v = float(rng.normal());
  std::vector<int> labels(batch);
  for (std::size_t n = 0; n < batch; ++n) labels[n] = int((n * 7) % 10);

  Outcome out;
  const auto& eval = net->forward(x, Mode::eval);
  out.eval_logits.assign(eval.values().begin(), eval.values().end());
  Mnist::Output grad;
  for (int step = 0; step < 2; ++step) {
    net->zero_grad();
    const auto& logits = net->forward(x, Mode::train);
    out.loss = cross_entropy(logits, labels, &grad);
    out.train_logits.assign(logits.values().begin(), logits.values().end());
    net->backward(grad);
    net->visit(OnParameters{[&](const std::string&, Parameter<float>& p) {
      for (std::size_t i = 0; i < p.size(); ++i) p.value[i] -= 0.05f * p.grad[i];
    }});
  }
  net->visit([&](const std::string&, auto& entry) {
    if constexpr (requires { entry.grad; }) out.gradients.insert(out.gradients.end(), entry.grad.begin(), entry.grad.end());
    if constexpr (requires { entry.dims; }) out.state.insert(out.state.end(), entry.value.begin(), entry.value.end());
  });
  set_num_threads(1);
  return out;
}

void check_identical(const Outcome& a, const Outcome& b) {
  BOOST_TEST(a.loss == b.loss);
  BOOST_TEST(a.eval_logits == b.eval_logits, boost::test_tools::per_element());
  BOOST_TEST(a.train_logits == b.train_logits, boost::test_tools::per_element());
  BOOST_REQUIRE_EQUAL(a.gradients.size(), b.gradients.size());
  std::size_t differing = 0;
  for (std::size_t i = 0; i < a.gradients.size(); ++i) differing += a.gradients[i] != b.gradients[i];
  BOOST_TEST(differing == 0u, differing << " of " << a.gradients.size() << " gradient values differ");
  differing = 0;
  for (std::size_t i = 0; i < a.state.size(); ++i) differing += a.state[i] != b.state[i];
  BOOST_TEST(differing == 0u, differing << " of " << a.state.size() << " parameter/buffer values differ");
}

}  // namespace

BOOST_AUTO_TEST_CASE(mnist_net_is_identical_on_one_and_two_threads) {
  const Outcome one = run(1, 32), two = run(2, 32);
  BOOST_TEST(std::isfinite(one.loss));
  check_identical(one, two);
}

BOOST_AUTO_TEST_CASE(odd_batch_on_three_threads) {
  // 13 images: partial tiles, uneven image groups, more threads than cores.
  check_identical(run(1, 13), run(3, 13));
}

BOOST_AUTO_TEST_CASE(set_num_threads_reports_the_count) {
  set_num_threads(2);
  BOOST_TEST(num_threads() == 2u);
  std::vector<int> hits(100, 0);
  std::vector<std::size_t> thread_of(100, 99);
  parallel_for(hits.size(), [&](std::size_t chunk, std::size_t thread) {  // Boost.Test is not thread-safe
    hits[chunk] += 1;
    thread_of[chunk] = thread;
  });
  BOOST_TEST(std::count(hits.begin(), hits.end(), 1) == 100);
  BOOST_TEST(*std::max_element(thread_of.begin(), thread_of.end()) < 2u);
  set_num_threads(1);
  BOOST_TEST(num_threads() == 1u);
}

BOOST_AUTO_TEST_CASE(parallel_for_runs_every_chunk_exactly_once) {
  for (std::size_t threads : {2, 3, 5}) {
    set_num_threads(threads);
    for (std::size_t chunks : {0, 1, 2, 3, 7, 64, 1000}) {
      std::vector<std::atomic<int>> runs(chunks);
      std::atomic<std::size_t> largest_thread{0};
      parallel_for(chunks, [&](std::size_t c, std::size_t t) {
        if (c % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));  // uneven work
        runs[c].fetch_add(1);
        for (std::size_t seen = largest_thread.load(); t > seen && !largest_thread.compare_exchange_weak(seen, t);) {
        }
      });
      std::size_t wrong = 0;
      for (const auto& r : runs) wrong += r.load() != 1;
      BOOST_TEST(wrong == 0u, wrong << " of " << chunks << " chunks did not run exactly once on " << threads << " threads");
      BOOST_TEST(largest_thread.load() < threads);
    }
  }
  set_num_threads(1);
}

BOOST_AUTO_TEST_CASE(idle_threads_take_chunks_from_a_busy_threads_range) {
  // Two threads own chunks [0, 4) and [4, 8); the first range is slow, so the second thread must
  // finish its own and then take chunks from the back of the first's.
  set_num_threads(2);
  std::vector<std::size_t> ran_on(8);
  parallel_for(8, [&](std::size_t c, std::size_t t) {
    if (c < 4) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ran_on[c] = t;
  });
  set_num_threads(1);
  const std::vector<std::size_t> owners{0, 0, 0, 0, 1, 1, 1, 1};
  BOOST_TEST(ran_on != owners, "every chunk ran on its owner: no thread took work from another");
  BOOST_TEST(ran_on[0] == 0u);  // the owner starts at the front
}
