// ctnn's own threads: a small persistent pool that runs the chunks of one parallel loop at a time.
// Kernels split work into chunks whose boundaries depend on the problem, never on the thread
// count, and write each chunk's partial results to its own place; reductions then run in chunk
// order. That makes every result bit-identical for any number of threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace ctnn {

namespace detail {

// Workers sleep on a condition variable between loops but spin briefly first: a network runs
// hundreds of short parallel loops per step and a futex wake-up costs tens of microseconds.
// Each thread owns a contiguous range of the chunks and runs it from the front, so consecutive
// layers, whose chunks cover the batch in order, find their images on the core that wrote them
// (on this machine that alone made MNIST training about 15 % faster than handing chunks out in
// turn); a thread that runs out takes single chunks from the back of the others' ranges.
class ThreadPool {
 public:
  explicit ThreadPool(std::size_t workers) {
    ranges_ = std::make_unique<Range[]>(workers + 1);
    for (std::size_t i = 0; i < workers; ++i) threads_.emplace_back([this, i] { work(i + 1); });
  }
  ~ThreadPool() {
    {
      std::lock_guard lock(mutex_);
      stop_ = true;
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (auto& t : threads_) t.join();
  }
  std::size_t size() const { return threads_.size() + 1; }

  // Runs task(chunk, thread) for chunk in [0, chunks), chunks < 2³²; the caller is thread 0 and
  // takes part.
  void run(std::size_t chunks, const std::function<void(std::size_t, std::size_t)>& task) {
    task_ = &task;
    for (std::size_t t = 0, threads = size(); t < threads; ++t)
      ranges_[t].bounds.store(Range::pack(t * chunks / threads, (t + 1) * chunks / threads), std::memory_order_relaxed);
    busy_.store(threads_.size(), std::memory_order_relaxed);
    {
      std::lock_guard lock(mutex_);
      generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    drain(0);
    while (busy_.load(std::memory_order_acquire) != 0) std::this_thread::yield();
    task_ = nullptr;
  }

 private:
  // Packs a range [begin, end) into one word, so the owner (taking from the front) and thieves
  // (taking from the back) claim chunks with one compare-exchange each.
  struct alignas(64) Range {
    std::atomic<std::uint64_t> bounds{0};
    static std::uint64_t pack(std::uint64_t begin, std::uint64_t end) { return begin << 32 | end; }
    // Claims the front (or back) chunk; false when the range is empty.
    bool take(bool front, std::size_t& chunk) {
      for (std::uint64_t v = bounds.load(std::memory_order_relaxed);;) {
        const std::uint64_t begin = v >> 32, end = v & 0xffffffffu;
        if (begin >= end) return false;
        chunk = front ? begin : end - 1;
        if (bounds.compare_exchange_weak(v, front ? pack(begin + 1, end) : pack(begin, end - 1), std::memory_order_relaxed))
          return true;
      }
    }
  };

  void drain(std::size_t thread) {
    std::size_t chunk;
    while (ranges_[thread].take(true, chunk)) (*task_)(chunk, thread);
    for (std::size_t k = 1; k < size(); ++k)
      while (ranges_[(thread + k) % size()].take(false, chunk)) (*task_)(chunk, thread);
  }
  void work(std::size_t thread) {
    std::size_t seen = 0;
    for (;;) {
      for (int spin = 0; spin < 20000 && generation_.load(std::memory_order_acquire) == seen; ++spin) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (generation_.load(std::memory_order_acquire) == seen) {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
      }
      seen = generation_.load(std::memory_order_acquire);
      if (stop_) return;
      drain(thread);
      busy_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  std::unique_ptr<Range[]> ranges_;  // one per thread, the caller's first
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<std::size_t> generation_{0}, busy_{0};
  const std::function<void(std::size_t, std::size_t)>* task_ = nullptr;
  bool stop_ = false;
};

struct ThreadState {
  std::unique_ptr<ThreadPool> pool;
  std::size_t threads = 1;
  bool in_parallel = false;
};
inline ThreadState& thread_state() {
  static ThreadState state;
  return state;
}

}  // namespace detail

/// The most threads set_num_threads() grants (kernels keep per-thread scratch for each).
inline constexpr std::size_t max_threads = 64;

/// Number of threads ctnn's kernels use (including the caller); 1 until set_num_threads().
inline std::size_t num_threads() { return detail::thread_state().threads; }

/// Uses n threads (0 means std::thread::hardware_concurrency(); at most max_threads) for every
/// later kernel.
/// Results do not depend on n. Not to be called while a model is running.
inline void set_num_threads(std::size_t n) {
  if (n == 0) n = std::max(1u, std::thread::hardware_concurrency());
  n = std::min(n, max_threads);
  auto& state = detail::thread_state();
  if (n == state.threads) return;
  state.pool.reset();
  if (n > 1) state.pool = std::make_unique<detail::ThreadPool>(n - 1);
  state.threads = n;
}

/// Calls f(chunk, thread) once for every chunk in [0, chunks), spread over num_threads() threads;
/// thread < num_threads() indexes per-thread scratch. Thread t starts on the t-th contiguous share
/// of the chunks, but chunks run in no fixed order, so each must write only its own outputs.
/// Nested calls run serially on the calling thread.
template <class F>
void parallel_for(std::size_t chunks, F&& f) {
  auto& state = detail::thread_state();
  if (chunks == 0) return;
  if (chunks == 1 || !state.pool || state.in_parallel) {
    for (std::size_t c = 0; c < chunks; ++c) f(c, std::size_t(0));
    return;
  }
  state.in_parallel = true;
  constexpr std::size_t most = 0xffffffffu;  // per pool run: its ranges hold 32-bit bounds
  for (std::size_t first = 0; first < chunks; first += most) {
    const std::function<void(std::size_t, std::size_t)> task = [&f, first](std::size_t c, std::size_t t) { f(first + c, t); };
    state.pool->run(std::min(most, chunks - first), task);
  }
  state.in_parallel = false;
}

}  // namespace ctnn
