// What every ctnn optimizer shares: the parameters it updates (by state_dict() name), the learning
// rate, the step count, and named state tensors that a checkpoint can save and restore exactly.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ctnn/parameter.hpp"

namespace ctnn {

/// A parameter an optimizer updates, with its state_dict() name.
template <class T>
struct NamedParameter {
  std::string name;
  Parameter<T>* parameter;
};

/// A model whose parameters an optimizer can collect: a ctnn::Model (anything with a `scalar`
/// type and visit(f) in the style of Model::visit).
template <class M>
concept ParameterOwner = requires(M& m) {
  typename M::scalar;
  m.visit(OnParameters{[](const std::string&, Parameter<typename M::scalar>&) {}});
};

/// Every trainable parameter of `model` (anything with visit(f) in the style of Model::visit), in
/// state_dict() order. The model must outlive the result. PyTorch: model.named_parameters().
template <ParameterOwner M>
auto named_parameters(M& model) {
  using T = typename M::scalar;
  std::vector<NamedParameter<T>> out;
  model.visit(OnParameters{[&](const std::string& name, Parameter<T>& p) { out.push_back({name, &p}); }});
  return out;
}

/// Optimizer<T>: the interface of SGD, Adam and AdamW, so a trainer can pick one at run time.
/// All parameters form one group with one learning rate. State is allocated at construction (not
/// lazily at the first step, as PyTorch does), so a checkpoint can restore it before any step.
/// PyTorch: torch.optim.Optimizer with a single param_group.
template <class T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  /// Applies one update from the parameters' current gradients. PyTorch: optimizer.step().
  virtual void step() = 0;

  /// "SGD", "Adam" or "AdamW": recorded in checkpoints so state is not restored into the wrong kind.
  virtual std::string kind() const = 0;

  /// Sets every gradient to zero. PyTorch: optimizer.zero_grad(set_to_none=False).
  void zero_grad() {
    for (auto& p : params_) p.parameter->zero_grad();
  }

  /// The learning rate the next step() uses. PyTorch: optimizer.param_groups[0]["lr"].
  double lr() const { return lr_; }
  void set_lr(double lr) {
    check_lr(lr);
    lr_ = lr;
  }

  /// Number of step() calls so far (PyTorch keeps it per parameter as state["step"]).
  std::int64_t step_count() const { return steps_.value; }

  const std::vector<NamedParameter<T>>& parameters() const { return params_; }

  /// Calls f(name, Buffer<T>&) for every state tensor, named "<parameter>.<PyTorch state key>"
  /// (e.g. "fc.weight.momentum_buffer", "conv1.weight.exp_avg_sq"), then f("step", Counter&).
  /// Writing through the references restores a saved state exactly; the hyperparameters
  /// (lr, momentum, ...) are the caller's to save. The Buffer/Counter types are those of
  /// Model::visit, so checkpoint code handles model and optimizer state alike.
  template <class F>
  void visit_state(F&& f) {
    for_each_state([&](const std::string& name, Buffer<T>& b) { f(name, b); });
    f(std::string("step"), steps_);
  }

 protected:
  Optimizer(std::vector<NamedParameter<T>> params, double lr) : params_(std::move(params)), lr_(lr) {
    check_lr(lr);
    for (const auto& p : params_)
      if (p.parameter == nullptr) throw std::invalid_argument("optimizer: null parameter '" + p.name + "'");
  }

  using StateVisitor = std::function<void(const std::string&, Buffer<T>&)>;
  virtual void for_each_state(const StateVisitor& f) = 0;

  /// One zero-filled state tensor per parameter, shaped like it. PyTorch: torch.zeros_like(p).
  std::vector<Buffer<T>> zeros_like_parameters() const {
    std::vector<Buffer<T>> out;
    out.reserve(params_.size());
    for (const auto& p : params_) out.emplace_back(p.parameter->dims, T(0));
    return out;
  }

  void visit_buffers(std::vector<Buffer<T>>& buffers, const char* key, const StateVisitor& f) {
    for (std::size_t i = 0; i < buffers.size(); ++i) f(params_[i].name + "." + key, buffers[i]);
  }

  static void check_lr(double lr) {
    if (!(lr >= 0.0) || !std::isfinite(lr))
      throw std::invalid_argument("optimizer: invalid learning rate " + std::to_string(lr) + " (must be finite and >= 0)");
  }

  std::vector<NamedParameter<T>> params_;
  double lr_;
  Counter steps_;
};

}  // namespace ctnn
