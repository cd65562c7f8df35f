// What every ctnn benchmark shares: flags, warm-up then the median of several timed runs, and one
// machine-readable RESULT line per workload (bench/compare_pytorch.sh parses it).
#pragma once

#include <sys/resource.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <ctnn/threads.hpp>

namespace bench {

struct Options {
  std::size_t threads = 1;
  int runs = 5;           // timed runs; the median is reported
  int warmup = 2;         // untimed runs first (allocation, caches, pool start-up)
  std::string workload;   // empty: every workload of the program
};

inline void usage(const char* program, const char* workloads) {
  std::fprintf(stderr, "usage: %s [--threads N] [--runs R] [--warmup W] [--workload NAME]\n  workloads: %s\n",
               program, workloads);
  std::exit(2);
}

/// Parses --threads, --runs, --warmup and --workload; sets ctnn's thread count.
inline Options parse(int argc, char** argv, const char* workloads) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h" || i + 1 >= argc) usage(argv[0], workloads);
    const char* value = argv[++i];
    if (flag == "--threads") o.threads = std::strtoul(value, nullptr, 10);
    else if (flag == "--runs") o.runs = std::max(1, std::atoi(value));
    else if (flag == "--warmup") o.warmup = std::max(0, std::atoi(value));
    else if (flag == "--workload") o.workload = value;
    else usage(argv[0], workloads);
  }
  ctnn::set_num_threads(o.threads);
  o.threads = ctnn::num_threads();
  return o;
}

inline bool selected(const Options& o, const char* name) { return o.workload.empty() || o.workload == name; }

struct Timing {
  double seconds;      // median wall time of the timed runs
  double best;         // fastest run: on a shared machine the least disturbed one
  double cpu_seconds;  // median CPU time of the process per run, all threads (spinning included)
};

inline double cpu_now() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

/// Runs f() o.warmup times untimed, then o.runs times timed.
template <class F>
Timing measure(const Options& o, F&& f) {
  for (int i = 0; i < o.warmup; ++i) f();
  std::vector<double> wall, cpu;
  for (int i = 0; i < o.runs; ++i) {
    const double cpu_start = cpu_now();
    const auto start = std::chrono::steady_clock::now();
    f();
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    cpu.push_back(cpu_now() - cpu_start);
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], wall.front(), cpu[cpu.size() / 2]};
}

inline double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return double(usage.ru_maxrss) / 1024.0;  // Linux reports KiB
}

/// One line per workload: `RESULT workload=... threads=... batch=... ms=... images_per_s=... gflops=...`
/// (ms, images_per_s and gflops from the median run). flop_per_image: 2 × multiply-adds for
/// inference, 6 × for a training step.
inline void report(const Options& o, const char* workload, std::size_t batch, const Timing& t, double flop_per_image) {
  const double images_per_s = double(batch) / t.seconds;
  std::printf("RESULT workload=%s threads=%zu batch=%zu ms=%.3f best_ms=%.3f cpu_ms=%.3f images_per_s=%.1f "
              "gflops=%.1f rss_mib=%.0f\n",
              workload, o.threads, batch, t.seconds * 1e3, t.best * 1e3, t.cpu_seconds * 1e3, images_per_s,
              images_per_s * flop_per_image * 1e-9, peak_rss_mib());
  std::fflush(stdout);
}

}  // namespace bench
