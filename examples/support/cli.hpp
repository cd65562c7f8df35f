// Number checks for the example programs' flags, with messages a user can act on: CLI11's own
// range validators print the limits of double and accept "nan" and "inf".
#pragma once

#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdlib>
#include <sstream>
#include <string>

namespace examples {

/// A flag value that must be a finite number in [low, high] (low excluded when `open_low`).
inline CLI::Validator number_in(double low, double high, bool open_low, std::string description) {
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        char* end = nullptr;
        const double value = std::strtod(text.c_str(), &end);
        if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(value))
          return "expected a number, got '" + text + "'";
        if (value < low || (open_low && value == low) || value > high) return "must be " + description + ", got " + text;
        return {};
      },
      description);
}

/// 0 (a feature switched off) or a number in [low, high].
inline CLI::Validator zero_or_between(double low, double high) {
  const std::string description = "0 or between " + std::to_string(long(low)) + " and " + std::to_string(long(high));
  const CLI::Validator range = number_in(low, high, false, description);
  return CLI::Validator(
      [=](std::string& text) -> std::string { return text == "0" ? std::string() : range(text); },
      description);
}

inline const CLI::Validator positive = number_in(0, HUGE_VAL, true, "positive");
inline const CLI::Validator non_negative = number_in(0, HUGE_VAL, false, "zero or positive");
inline CLI::Validator between(double low, double high) {
  auto shortest = [](double v) { return (std::ostringstream() << v).str(); };
  return number_in(low, high, false, "between " + shortest(low) + " and " + shortest(high));
}

}  // namespace examples
