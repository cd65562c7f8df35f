#pragma once

#include <algorithm>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "ctnn/module.hpp"

namespace ctnn {

/// How Model initialises convolution weights (BatchNorm is always weight 1, bias 0; Linear always
/// PyTorch's default U(±1/√in)).
enum class Init {
  he_normal,        // N(0, √(2 / (k·k·out))): the seed's ResNet init loop (and torchvision's)
  pytorch_default,  // U(±1/√(in·k·k)): nn.Conv2d's own default, kept by the seed's MNIST network
};

/// A description chooses its scheme with `static constexpr Init init = ...;` (He by default).
template <class Description>
constexpr Init init_scheme = [] {
  if constexpr (requires { Description::init; }) return Description::init;
  else return Init::he_normal;
}();

/// Model<Description, InputShape, T = float>: a network description bound to an input shape.
/// Every intermediate shape and the counts below are compile-time constants; only the batch
/// size varies at run time. Owns the network's parameters, buffers and activations.
/// PyTorch: an nn.Module instance (forward = __call__, visit ≈ state_dict()).
template <class Description, ShapeType InputShape, class T = float>
class Model {
 public:
  using description = Description;
  using network_type = Bind<Description, InputShape, T>;
  using input_shape = InputShape;
  using output_shape = typename network_type::output_shape;
  using scalar = T;
  using Input = Batch<input_shape, T>;
  using Output = Batch<output_shape, T>;
  static constexpr std::size_t parameter_count = network_type::parameter_count;
  static constexpr std::size_t multiply_adds = network_type::multiply_adds;  // per image

  /// Parameters initialised from `seed` (the same seed gives the same weights on every run and
  /// platform) by the description's scheme: the seed article's He init by default, see Init.
  explicit Model(std::uint64_t seed = 0) : network_(std::make_unique<network_type>()) { initialize(seed); }
  Model(const Model& other) : network_(std::make_unique<network_type>(*other.network_)) {}
  Model& operator=(const Model& other) {
    *network_ = *other.network_;
    input_ = nullptr;
    return *this;
  }
  Model(Model&&) noexcept = default;
  Model& operator=(Model&&) noexcept = default;

  void initialize(std::uint64_t seed) {
    Rng rng(seed);
    network_->initialize(rng);
    if constexpr (init_scheme<Description> == Init::pytorch_default) {
      // PyTorch's Conv2d default, kaiming_uniform(a=√5): U(−1/√fan_in, 1/√fan_in), fan_in = I·kh·kw.
      visit(OnParameters{[&](const std::string&, Parameter<T>& p) {
        if (p.dims.size() != 4) return;
        const double bound = 1.0 / std::sqrt(double(p.dims[1] * p.dims[2] * p.dims[3]));
        for (auto& v : p.value) v = T(rng.uniform(-bound, bound));
      }});
    }
  }

  /// Runs the network; the result stays valid until the next forward. `x` must stay alive and
  /// unchanged until backward() when training. Throws std::invalid_argument on an empty batch or
  /// an input holding NaN or Inf (naming the image, channel, row and column).
  const Output& forward(const Input& x, Mode mode = Mode::eval) {
    if (x.batch_size() == 0) throw std::invalid_argument("Model::forward: empty batch");
    reject_non_finite(x);
    network_->forward(x, output_, mode);
    input_ = &x;
    return output_;
  }

  /// Back-propagates dL/d(output) of the last forward; accumulates parameter gradients and, if
  /// `input_grad` is given, writes dL/d(input) into it.
  void backward(const Output& output_grad, Input* input_grad = nullptr) {
    if (!input_) throw std::logic_error("Model::backward called without a preceding forward");
    if (output_grad.batch_size() != output_.batch_size())
      throw std::invalid_argument("Model::backward: gradient batch size " + std::to_string(output_grad.batch_size()) +
                                  " differs from the forward batch size " + std::to_string(output_.batch_size()));
    network_->backward(*input_, output_, output_grad, input_grad);
  }

  const Output& output() const { return output_; }

  void zero_grad() {
    visit(OnParameters{[](const std::string&, Parameter<T>& p) { p.zero_grad(); }});
  }

  /// Calls f(name, Parameter<T>&), f(name, Buffer<T>&) or f(name, Counter&) for every entry of
  /// PyTorch's state_dict(), in its order and under its names.
  template <class F>
  void visit(F&& f) {
    network_->visit(f, std::string());
  }

  /// The state_dict() keys, in order.
  std::vector<std::string> state_names() {
    std::vector<std::string> names;
    visit([&](const std::string& name, auto&) { names.push_back(name); });
    return names;
  }

  /// One LayerRow per leaf layer (from the types alone; no instance needed).
  template <class F>
  static void describe(F&& f) {
    network_type::describe(f, std::string());
  }

  network_type& network() { return *network_; }
  const network_type& network() const { return *network_; }

 private:
  // NaN or Inf in an input would silently poison every activation (and, in training, every weight);
  // one pass over the input costs nothing next to the first convolution.
  static void reject_non_finite(const Input& x) {
    const auto values = x.values();
    const auto bad = std::find_if(values.begin(), values.end(), [](T v) { return !std::isfinite(v); });
    if (bad == values.end()) return;
    const std::size_t at = std::size_t(bad - values.begin()), plane = std::size_t(InputShape::height) * InputShape::width;
    const std::size_t image = at / InputShape::size, channel = at % InputShape::size / plane, pixel = at % plane;
    throw std::invalid_argument("Model::forward: input image " + std::to_string(image) + " holds " +
                                (std::isnan(*bad) ? "NaN" : "an infinite value") + " at channel " +
                                std::to_string(channel) + ", row " + std::to_string(pixel / InputShape::width) + ", column " +
                                std::to_string(pixel % InputShape::width));
  }

  std::unique_ptr<network_type> network_;
  Output output_;
  const Input* input_ = nullptr;
};

}  // namespace ctnn
