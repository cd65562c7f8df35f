// Adam (L2 weight decay added to the gradient) and AdamW (decoupled weight decay), computing
// exactly what torch.optim.Adam / torch.optim.AdamW compute (PyTorch 1.13, foreach=False).
#pragma once

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "ctnn/optim/optimizer.hpp"

namespace ctnn {

/// Adam / AdamW hyperparameters. weight_decay defaults to PyTorch's: 0 for Adam, 0.01 for AdamW.
struct AdamOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  std::optional<double> weight_decay = std::nullopt;  // unset: the optimizer's PyTorch default
  bool amsgrad = false;      // keep the running maximum of exp_avg_sq (Reddi et al.)
  bool maximize = false;
};

namespace detail {

/// The Adam family's shared update; Decoupled selects AdamW's form of weight decay.
template <class T, bool Decoupled>
class AdamBase : public Optimizer<T> {
 public:
  AdamBase(std::vector<NamedParameter<T>> params, AdamOptions options)
      : Optimizer<T>(std::move(params), options.lr), options_(options) {
    weight_decay_ = options_.weight_decay.value_or(Decoupled ? 1e-2 : 0.0);
    options_.weight_decay = weight_decay_;
    if (!(weight_decay_ >= 0.0))
      throw std::invalid_argument(kind_name() + ": invalid weight_decay " + std::to_string(weight_decay_));
    if (!(options_.eps >= 0.0)) throw std::invalid_argument(kind_name() + ": invalid epsilon " + std::to_string(options_.eps));
    if (!(options_.beta1 >= 0.0 && options_.beta1 < 1.0))
      throw std::invalid_argument(kind_name() + ": invalid beta1 " + std::to_string(options_.beta1) + " (must be in [0, 1))");
    if (!(options_.beta2 >= 0.0 && options_.beta2 < 1.0))
      throw std::invalid_argument(kind_name() + ": invalid beta2 " + std::to_string(options_.beta2) + " (must be in [0, 1))");
    exp_avg_ = this->zeros_like_parameters();
    exp_avg_sq_ = this->zeros_like_parameters();
    if (options_.amsgrad) max_exp_avg_sq_ = this->zeros_like_parameters();
  }

  void step() override {
    const std::int64_t step = ++this->steps_.value;
    const double lr = this->lr_;
    // PyTorch computes these in double (Python floats) and converts each at its tensor op.
    const double bias_correction1 = 1.0 - std::pow(options_.beta1, double(step));
    const double bias_correction2 = 1.0 - std::pow(options_.beta2, double(step));
    const T minus_step_size = T(-(lr / bias_correction1));
    const T bias_correction2_sqrt = T(std::sqrt(bias_correction2));
    const T decay = T(Decoupled ? 1.0 - lr * weight_decay_ : weight_decay_);
    const T beta1 = T(options_.beta1), one_minus_beta1 = T(1.0 - options_.beta1);
    const T beta2 = T(options_.beta2), one_minus_beta2 = T(1.0 - options_.beta2);
    const T eps = T(options_.eps);
    for (std::size_t i = 0; i < this->params_.size(); ++i) {
      Parameter<T>& p = *this->params_[i].parameter;
      T* value = p.value.data();
      const T* grad = p.grad.data();
      T* m = exp_avg_[i].value.data();
      T* v = exp_avg_sq_[i].value.data();
      T* v_max = options_.amsgrad ? max_exp_avg_sq_[i].value.data() : nullptr;
      for (std::size_t k = 0; k < p.size(); ++k) {
        T g = options_.maximize ? -grad[k] : grad[k];
        if constexpr (Decoupled) {
          value[k] = value[k] * decay;
        } else {
          if (weight_decay_ != 0.0) g = g + decay * value[k];
        }
        m[k] = m[k] * beta1 + one_minus_beta1 * g;
        v[k] = v[k] * beta2 + one_minus_beta2 * g * g;
        T second = v[k];
        if (v_max) second = v_max[k] = std::max(v_max[k], v[k]);
        const T denom = std::sqrt(second) / bias_correction2_sqrt + eps;
        value[k] = value[k] + minus_step_size * m[k] / denom;
      }
    }
  }

  std::string kind() const override { return kind_name(); }
  const AdamOptions& options() const { return options_; }

 protected:
  void for_each_state(const typename Optimizer<T>::StateVisitor& f) override {
    this->visit_buffers(exp_avg_, "exp_avg", f);
    this->visit_buffers(exp_avg_sq_, "exp_avg_sq", f);
    if (options_.amsgrad) this->visit_buffers(max_exp_avg_sq_, "max_exp_avg_sq", f);
  }

 private:
  static std::string kind_name() { return Decoupled ? "AdamW" : "Adam"; }

  AdamOptions options_;
  double weight_decay_;
  std::vector<Buffer<T>> exp_avg_, exp_avg_sq_, max_exp_avg_sq_;
};

}  // namespace detail

/// Adam<T>: g ← g + weight_decay·p;  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²;
///   p ← p − lr/(1−β1^t) · m / (√(v or max v) / √(1−β2^t) + eps).
/// PyTorch: torch.optim.Adam(params, lr, betas=(beta1, beta2), eps, weight_decay, amsgrad, maximize=maximize).
template <class T = float>
class Adam final : public detail::AdamBase<T, false> {
 public:
  Adam(std::vector<NamedParameter<T>> params, AdamOptions options = {})
      : detail::AdamBase<T, false>(std::move(params), options) {}
  template <ParameterOwner M>
  explicit Adam(M& model, AdamOptions options = {}) : Adam(named_parameters(model), options) {}
};

/// AdamW<T>: Adam with decoupled weight decay, p ← p·(1 − lr·weight_decay) before the Adam update
/// (weight_decay defaults to 0.01). PyTorch: torch.optim.AdamW(params, lr, betas, eps, weight_decay, amsgrad).
template <class T = float>
class AdamW final : public detail::AdamBase<T, true> {
 public:
  AdamW(std::vector<NamedParameter<T>> params, AdamOptions options = {})
      : detail::AdamBase<T, true>(std::move(params), options) {}
  template <ParameterOwner M>
  explicit AdamW(M& model, AdamOptions options = {}) : AdamW(named_parameters(model), options) {}
};

template <ParameterOwner M>
Adam(M&, AdamOptions) -> Adam<typename M::scalar>;
template <ParameterOwner M>
AdamW(M&, AdamOptions) -> AdamW<typename M::scalar>;

}  // namespace ctnn
