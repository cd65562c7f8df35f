// Progress of a long loop: a redrawn bar on a terminal, plain log lines otherwise.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace examples {

class Progress {
 public:
  explicit Progress(bool enabled = true) : terminal_(enabled && ::isatty(STDOUT_FILENO)) {}

  /// Starts a phase of `total` steps (e.g. one epoch's batches) of `items_per_step` images each.
  void start(std::string label, std::size_t total, std::size_t first = 0) {
    label_ = std::move(label);
    total_ = total;
    done_at_start_ = first;
    begin_ = std::chrono::steady_clock::now();
    last_line_ = begin_;
  }

  /// Reports that `done` steps are finished, with `images` processed since start() and the latest loss.
  void update(std::size_t done, std::size_t images, double loss) {
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - begin_).count();
    const double rate = elapsed > 0 ? double(images) / elapsed : 0.0;
    const double per_step = done > done_at_start_ ? elapsed / double(done - done_at_start_) : 0.0;
    const double eta = per_step * double(total_ - done);
    if (terminal_) {
      constexpr int width = 30;
      const int filled = total_ ? int(width * done / total_) : width;
      std::printf("\r%s [%s%s] %zu/%zu loss %.4f %6.0f img/s ETA %s ", label_.c_str(), std::string(filled, '#').c_str(),
                  std::string(width - filled, '.').c_str(), done, total_, loss, rate, clock(eta).c_str());
      std::fflush(stdout);
      dirty_ = true;
    } else if (std::chrono::duration<double>(now - last_line_).count() >= 10.0 || done == total_) {
      std::printf("%s %zu/%zu loss %.4f %.0f img/s ETA %s\n", label_.c_str(), done, total_, loss, rate, clock(eta).c_str());
      std::fflush(stdout);
      last_line_ = now;
    }
  }

  /// Prints a line without tearing the bar.
  template <class... Args>
  void log(const char* format, Args... args) {
    if (dirty_) std::printf("\r\033[K");
    dirty_ = false;
    std::printf(format, args...);
    std::fflush(stdout);
  }

  void finish() {
    if (dirty_) std::printf("\n");
    dirty_ = false;
  }

  static std::string clock(double seconds) {
    const long s = long(seconds + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", s / 3600, s / 60 % 60, s % 60);
    return buf;
  }

 private:
  bool terminal_;
  bool dirty_ = false;
  std::string label_;
  std::size_t total_ = 0, done_at_start_ = 0;
  std::chrono::steady_clock::time_point begin_, last_line_;
};

}  // namespace examples
