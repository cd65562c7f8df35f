// Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay,
// computing exactly what torch.optim.SGD computes (PyTorch 1.13, foreach=False).
#pragma once

#include <string>
#include <vector>

#include "ctnn/optim/optimizer.hpp"

namespace ctnn {

/// SGD hyperparameters, defaulting to PyTorch's (its lr has no default; ctnn uses the seed's 0.1).
struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;  // L2 penalty added to the gradient
  bool nesterov = false;      // needs momentum > 0 and dampening == 0
  bool maximize = false;      // ascend instead of descend
};

/// SGD<T>: for each parameter p with gradient g,
///   g ← g + weight_decay·p;  b ← g at the first step, else momentum·b + (1 − dampening)·g;
///   g ← g + momentum·b (Nesterov) or b;  p ← p − lr·g.
/// With momentum == 0 there is no state beyond the step count.
/// PyTorch: torch.optim.SGD(params, lr, momentum, dampening, weight_decay, nesterov, maximize=maximize).
template <class T = float>
class SGD final : public Optimizer<T> {
 public:
  SGD(std::vector<NamedParameter<T>> params, SgdOptions options)
      : Optimizer<T>(std::move(params), options.lr), options_(options) {
    if (!(options.momentum >= 0.0)) throw std::invalid_argument("SGD: invalid momentum " + std::to_string(options.momentum));
    if (!(options.weight_decay >= 0.0))
      throw std::invalid_argument("SGD: invalid weight_decay " + std::to_string(options.weight_decay));
    if (options.nesterov && (options.momentum <= 0.0 || options.dampening != 0.0))
      throw std::invalid_argument("SGD: Nesterov momentum requires a momentum and zero dampening");
    if (options.momentum != 0.0) momentum_buffers_ = this->zeros_like_parameters();
  }

  /// Optimizes every parameter of `model` (see named_parameters()).
  template <ParameterOwner M>
  SGD(M& model, SgdOptions options) : SGD(named_parameters(model), options) {}

  void step() override {
    // Scalars become T exactly where PyTorch turns a Python float into the tensor's dtype.
    const T weight_decay = T(options_.weight_decay);
    const T momentum = T(options_.momentum);
    const T keep = T(1.0 - options_.dampening);
    const T minus_lr = T(-this->lr_);
    const bool first = this->steps_.value == 0;  // PyTorch: momentum_buffer is None
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
      Parameter<T>& p = *this->params_[i].parameter;
      T* value = p.value.data();
      const T* grad = p.grad.data();
      T* buffer = options_.momentum != 0.0 ? momentum_buffers_[i].value.data() : nullptr;
      for (std::size_t k = 0; k < p.size(); ++k) {
        T d = options_.maximize ? -grad[k] : grad[k];
        if (options_.weight_decay != 0.0) d = d + weight_decay * value[k];
        if (buffer) {
          buffer[k] = first ? d : buffer[k] * momentum + keep * d;
          d = options_.nesterov ? d + momentum * buffer[k] : buffer[k];
        }
        value[k] = value[k] + minus_lr * d;
      }
    }
    ++this->steps_.value;
  }

  std::string kind() const override { return "SGD"; }
  const SgdOptions& options() const { return options_; }

 protected:
  void for_each_state(const typename Optimizer<T>::StateVisitor& f) override {
    this->visit_buffers(momentum_buffers_, "momentum_buffer", f);
  }

 private:
  SgdOptions options_;
  std::vector<Buffer<T>> momentum_buffers_;
};

template <ParameterOwner M>
SGD(M&, SgdOptions) -> SGD<typename M::scalar>;

}  // namespace ctnn
