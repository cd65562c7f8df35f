// A seedable random source whose streams are identical on every platform and compiler
// (std::normal_distribution is implementation-defined, so ctnn draws its own).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>

namespace ctnn {

/// Rng: mt19937_64 (its output is fixed by the C++ standard) plus portable uniform and normal draws.
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) : engine_(seed) {}

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  /// Standard normal by Box–Muller; one draw per call (the pair's second value is discarded so
  /// the stream position only depends on the number of draws).
  double normal(double mean = 0.0, double stddev = 1.0) {
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    return mean + stddev * std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

  /// Uniform integer in [0, n) without modulo bias.
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
    std::uint64_t r;
    do r = engine_(); while (r >= limit);
    return r % n;
  }

  std::mt19937_64& engine() { return engine_; }
  const std::mt19937_64& engine() const { return engine_; }

 private:
  std::mt19937_64 engine_;
};

}  // namespace ctnn
