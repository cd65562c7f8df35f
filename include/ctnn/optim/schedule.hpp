// Learning-rate schedules as pure functions of t, the number of scheduler.step() calls made so
// far (PyTorch's last_epoch): call them per epoch or per iteration, as you would step PyTorch's.
// Being pure, a resumed run only needs t to be back on the same curve. Each returns the lr
// PyTorch's scheduler would have set after t steps (its closed form; PyTorch's recursive updates
// agree to rounding).
//   optimizer.set_lr(schedule(t));  ...train...;  ++t;
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

namespace ctnn {

/// Any schedule, for choosing one at run time.
using LrSchedule = std::function<double(std::int64_t)>;

/// lr = base_lr · gamma^⌊t / step_size⌋. PyTorch: torch.optim.lr_scheduler.StepLR(opt, step_size, gamma).
struct StepLR {
  double base_lr;
  std::int64_t step_size;
  double gamma = 0.1;

  double operator()(std::int64_t t) const {
    if (step_size <= 0) throw std::invalid_argument("StepLR: step_size must be positive");
    return base_lr * std::pow(gamma, double(std::max<std::int64_t>(t, 0) / step_size));
  }
};

/// lr = base_lr · gamma^(number of milestones ≤ t); a repeated milestone counts twice, as in
/// PyTorch. PyTorch: torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma).
struct MultiStepLR {
  double base_lr;
  std::vector<std::int64_t> milestones;
  double gamma = 0.1;

  double operator()(std::int64_t t) const {
    const auto passed = std::count_if(milestones.begin(), milestones.end(), [t](std::int64_t m) { return m <= t; });
    return base_lr * std::pow(gamma, double(passed));
  }
};

/// lr = eta_min + (base_lr − eta_min)·(1 + cos(π·t / t_max))/2: from base_lr at t = 0 down to
/// eta_min at t = t_max (and, like PyTorch, back up after it; use t ≤ t_max).
/// PyTorch: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max, eta_min=eta_min).
struct CosineAnnealingLR {
  double base_lr;
  std::int64_t t_max;
  double eta_min = 0.0;

  double operator()(std::int64_t t) const {
    if (t_max <= 0) throw std::invalid_argument("CosineAnnealingLR: t_max must be positive");
    return eta_min + (base_lr - eta_min) * (1.0 + std::cos(std::numbers::pi * double(t) / double(t_max))) / 2.0;
  }
};

/// lr = base_lr · (start_factor + (end_factor − start_factor)·min(t, total_iters)/total_iters):
/// a linear warm-up (or decay) held at base_lr·end_factor afterwards.
/// PyTorch: torch.optim.lr_scheduler.LinearLR(opt, start_factor, end_factor, total_iters).
struct LinearLR {
  double base_lr;
  double start_factor = 1.0 / 3.0;
  double end_factor = 1.0;
  std::int64_t total_iters = 5;

  double operator()(std::int64_t t) const {
    if (!(start_factor > 0.0 && start_factor <= 1.0))
      throw std::invalid_argument("LinearLR: start_factor must be in (0, 1]");
    if (!(end_factor >= 0.0 && end_factor <= 1.0)) throw std::invalid_argument("LinearLR: end_factor must be in [0, 1]");
    if (total_iters <= 0) throw std::invalid_argument("LinearLR: total_iters must be positive");
    const double done = double(std::clamp<std::int64_t>(t, 0, total_iters));
    return base_lr * (start_factor + (end_factor - start_factor) * done / double(total_iters));
  }
};

/// Linear warm-up from base_lr·start_factor to base_lr over warmup_iters steps, then cosine
/// annealing to eta_min over t_max further steps.
/// PyTorch: SequentialLR(opt, [LinearLR(opt, start_factor, 1.0, warmup_iters),
///                             CosineAnnealingLR(opt, t_max, eta_min)], milestones=[warmup_iters]).
struct WarmupCosineLR {
  double base_lr;
  std::int64_t warmup_iters;
  std::int64_t t_max;
  double start_factor = 1.0 / 3.0;
  double eta_min = 0.0;

  double operator()(std::int64_t t) const {
    if (warmup_iters <= 0) throw std::invalid_argument("WarmupCosineLR: warmup_iters must be positive (else use CosineAnnealingLR)");
    if (t < warmup_iters) return LinearLR{base_lr, start_factor, 1.0, warmup_iters}(t);
    return CosineAnnealingLR{base_lr, t_max, eta_min}(t - warmup_iters);
  }
};

}  // namespace ctnn
