// A seedable random source whose streams are identical on every platform and compiler
// (std::normal_distribution is implementation-defined, so ctnn draws its own).
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>

namespace ctnn {

/// Rng: mt19937_64 (its output is fixed by the C++ standard) plus portable uniform and normal draws.
class Rng {
 public:
  explicit Rng(std::uint64_t seed = 0) : engine_(seed) {}

  /// Uniform in [0, 1) with 53 random bits.
  double uniform() { return double(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  /// Normal by Box–Muller; each pair of uniforms yields two draws (cosine, then sine branch).
  double normal(double mean = 0.0, double stddev = 1.0) {
    if (has_spare_) {
      has_spare_ = false;
      return mean + stddev * spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double radius = std::sqrt(-2.0 * std::log(u1)), angle = 2.0 * std::numbers::pi * uniform();
    spare_ = radius * std::sin(angle);
    has_spare_ = true;
    return mean + stddev * radius * std::cos(angle);
  }

  /// Uniform integer in [0, n) without modulo bias.
  std::uint64_t below(std::uint64_t n) {
    const std::uint64_t limit = ~std::uint64_t{0} - (~std::uint64_t{0} % n);
    std::uint64_t r;
    do r = engine_(); while (r >= limit);
    return r % n;
  }

  /// The full generator state as text (for resuming training exactly) and its inverse.
  std::string state() const {
    std::ostringstream out;
    out << engine_ << ' ' << has_spare_ << ' ' << std::hexfloat << spare_;
    return out.str();
  }
  void restore(const std::string& text) {
    std::istringstream in(text);
    std::mt19937_64 engine;
    bool has_spare = false;
    std::string spare;
    if (!(in >> engine >> has_spare >> spare)) throw std::invalid_argument("Rng::restore: malformed generator state");
    engine_ = engine;
    has_spare_ = has_spare;
    spare_ = std::strtod(spare.c_str(), nullptr);
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

}  // namespace ctnn
