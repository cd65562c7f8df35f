#pragma once

#include <array>
#include <tuple>
#include <utility>
#include <vector>

#include "ctnn/compose/named.hpp"
#include "ctnn/buffer_pool.hpp"
#include "ctnn/kernels/channel_transform.hpp"
#include "ctnn/module.hpp"

namespace ctnn {

namespace detail {
// The modules of a chain of descriptions, each bound to its predecessor's output shape.
template <ShapeType In, class T, class... Layers>
struct Chain {
  using modules = std::tuple<>;
  using output_shape = In;
};
template <ShapeType In, class T, class First, class... Rest>
struct Chain<In, T, First, Rest...> {
  using head = Bind<First, In, T>;
  using tail = Chain<typename head::output_shape, T, Rest...>;
  using modules = decltype(std::tuple_cat(std::declval<std::tuple<head>>(), std::declval<typename tail::modules>()));
  using output_shape = typename tail::output_shape;
};
// Eval-mode folding: a bias-free convolution followed by BatchNorm (and ReLU) runs as the
// convolution alone, applying the BatchNorm's per-channel map (and the ReLU) as it stores.
template <class M>
concept FoldsChannelTransform = requires { requires M::folds_channel_transform; };
template <class M>
concept ProvidesEvalTransform = requires(M& m) { m.eval_transform(true); };
template <class M>
concept IsReLU = requires { requires M::is_relu; };
template <class M>
concept FusesFollowingReLU = requires { requires M::fuses_following_relu; };
// A layer (BatchNorm) or chain ending in one that adds Residual's shortcut as it stores its output.
template <class M>
concept AddsResidual = requires { requires M::adds_residual; };

// y = relu(layer(x) + residual) for an AddsResidual layer: a chain takes the residual as its
// fourth argument, a BatchNorm as its fifth, after relu, and then x's moments if the layer before
// took them (a chain's first layer never follows one that does).
template <class Layer, class X, class Y>
void forward_adding(Layer& layer, const X& x, Y& y, Mode mode, const Y& residual, const double* x_moments = nullptr) {
  if constexpr (requires { layer.forward(x, y, mode, residual); }) layer.forward(x, y, mode, residual);
  else layer.forward(x, y, mode, true, &residual, x_moments);
}

template <class T, class Tuple>
struct OutputBatches;
template <class T, class... Ms>
struct OutputBatches<T, std::tuple<Ms...>> {
  using type = std::tuple<Batch<typename Ms::output_shape, T>...>;
};
}  // namespace detail

/// Sequential<Layers...>: the layers applied in order; each one's input shape is the previous
/// one's output shape, checked at compile time. Children are named "0", "1", ... unless Named.
/// PyTorch: nn.Sequential(...), or a module whose forward calls its attributes in order.
template <class... Layers>
struct Sequential {
  static_assert(sizeof...(Layers) > 0, "Sequential: needs at least one layer");

  template <ShapeType In, class T>
  class Module {
    using Chain = detail::Chain<In, T, Layers...>;
    using Modules = typename Chain::modules;
    static constexpr std::size_t count = sizeof...(Layers);
    using Indices = std::make_index_sequence<count>;

   public:
    using input_shape = In;
    using output_shape = typename Chain::output_shape;
    static constexpr std::size_t parameter_count = [] {
      return []<std::size_t... I>(std::index_sequence<I...>) {
        return (std::size_t{0} + ... + std::tuple_element_t<I, Modules>::parameter_count);
      }(Indices{});
    }();
    static constexpr std::size_t multiply_adds = [] {
      return []<std::size_t... I>(std::index_sequence<I...>) {
        return (std::size_t{0} + ... + std::tuple_element_t<I, Modules>::multiply_adds);
      }(Indices{});
    }();

    /// In eval mode, conv → BatchNorm (→ ReLU) runs as one pass (see folded_length), and a
    /// network that has not trained keeps no intermediate output (see run_step); what backward()
    /// reads is recomputed only if it follows. In train mode, a convolution before a BatchNorm
    /// takes the BatchNorm's statistics as it stores (ChannelTransform::moments), and BatchNorm →
    /// ReLU runs as one pass (see fuses_relu).
    void forward(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode mode) {
      intermediates_skipped_ = false;
      forward_from<0>(x, y, mode, nullptr);
    }

    /// The last layer adds a residual as it stores (see forward below): a BatchNorm does.
    static constexpr bool adds_residual = detail::AddsResidual<std::tuple_element_t<count - 1, Modules>>;

    /// y = relu(forward(x) + residual), as Residual computes from a main branch that ends in a
    /// BatchNorm; the sum is formed as that BatchNorm (or, folded, the convolution before it)
    /// stores, so the branch's own output is never stored. backward() is the chain's, unchanged.
    void forward(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode mode, const Batch<output_shape, T>& residual)
      requires adds_residual
    {
      intermediates_skipped_ = false;
      forward_from<0>(x, y, mode, &residual);
    }

    void backward(const Batch<In, T>& x, const Batch<output_shape, T>& y, const Batch<output_shape, T>& dy,
                  Batch<In, T>* dx) {
      if (intermediates_skipped_) recompute_intermediates(x);
      [&]<std::size_t... J>(std::index_sequence<J...>) {
        (backward_layer<count - 1 - J>(x, y, dy, dx), ...);
      }(Indices{});
    }

    template <class F>
    void visit(F&& f, const std::string& prefix) {
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (std::get<I>(layers_).visit(f, child_prefix<Layers>(prefix, I)), ...);
      }(Indices{});
    }

    void initialize(Rng& rng) {
      std::apply([&](auto&... layer) { (layer.initialize(rng), ...); }, layers_);
    }

    template <class F>
    static void describe(F&& f, const std::string& prefix) {
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (std::tuple_element_t<I, Modules>::describe(f, child_prefix<Layers>(prefix, I)), ...);
      }(Indices{});
    }

    template <std::size_t I>
    auto& layer() { return std::get<I>(layers_); }

   private:
    // How many layers from I on run as one in eval mode: 3 for conv, BatchNorm, ReLU; 2 for conv,
    // BatchNorm; 1 otherwise.
    template <std::size_t I>
    static constexpr std::size_t folded_length() {
      if constexpr (I + 1 < count) {
        using Conv = std::tuple_element_t<I, Modules>;
        using Norm = std::tuple_element_t<I + 1, Modules>;
        if constexpr (detail::FoldsChannelTransform<Conv> && detail::ProvidesEvalTransform<Norm>) {
          if constexpr (I + 2 < count) {
            if constexpr (detail::IsReLU<std::tuple_element_t<I + 2, Modules>>) return 3;
          }
          return 2;
        }
      }
      return 1;
    }

    // Layer I applies the ReLU at I + 1 as it stores (BatchNorm does), and its backward takes the
    // ReLU's too; BatchNorm's backward reads only its input, so nothing needs the skipped output.
    template <std::size_t I>
    static constexpr bool fuses_relu() {
      if constexpr (I + 1 < count)
        return detail::FusesFollowingReLU<std::tuple_element_t<I, Modules>> &&
               detail::IsReLU<std::tuple_element_t<I + 1, Modules>>;
      else
        return false;
    }

    // Layers I … as forward(); `residual` (if not null) is added by the last layer. `x_moments`:
    // the moments of layer I's input (a BatchNorm's), taken by the convolution before it.
    template <std::size_t I>
    void forward_from(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode mode,
                      const Batch<output_shape, T>* residual, const double* x_moments = nullptr) {
      if constexpr (I < count) {
        constexpr std::size_t folded = folded_length<I>();
        if constexpr (folded > 1) {
          if (mode == Mode::train) {  // the convolution takes the BatchNorm's statistics as it stores
            using Norm = std::tuple_element_t<I + 1, Modules>;
            moments_.resize(2 * Norm::input_shape::channels);
            kernels::ChannelTransform<T> transform;
            transform.moments = moments_.data();
            run_step<I, I>(mode, [&] { std::get<I>(layers_).forward_transformed(input_of<I>(x), output_of<I>(y), transform); });
            return forward_from<I + 1>(x, y, mode, residual, moments_.data());
          }
          if (mode == Mode::eval) {
            auto& norm = std::get<I + 1>(layers_);
            const auto transform = [&] {
              if constexpr (I + folded == count && adds_residual)
                if (residual) return norm.eval_transform(true, residual);
              return norm.eval_transform(folded == 3);
            }();
            run_step<I, I + folded - 1>(mode, [&] {
              std::get<I>(layers_).forward_transformed(input_of<I>(x), output_of<I + folded - 1>(y), transform);
            });
            intermediates_skipped_ = true;
            return forward_from<I + folded>(x, y, mode, residual);
          }
        }
        if constexpr (fuses_relu<I>()) {  // BatchNorm → ReLU: the BatchNorm output is never stored
          run_step<I, I + 1>(mode, [&] {
            std::get<I>(layers_).forward(input_of<I>(x), output_of<I + 1>(y), mode, true, nullptr, x_moments);
          });
          return forward_from<I + 2>(x, y, mode, residual);
        }
        if constexpr (I + 1 == count && adds_residual)
          if (residual)
            return run_step<I, I>(mode, [&] {
              detail::forward_adding(std::get<I>(layers_), input_of<I>(x), y, mode, *residual, x_moments);
            });
        run_step<I, I>(mode, [&] {
          auto& layer = std::get<I>(layers_);
          if constexpr (detail::ProvidesEvalTransform<std::tuple_element_t<I, Modules>>)
            layer.forward(input_of<I>(x), output_of<I>(y), mode, false, nullptr, x_moments);
          else
            layer.forward(input_of<I>(x), output_of<I>(y), mode);
        });
        forward_from<I + 1>(x, y, mode, residual);
      }
    }

    // Runs layers [I, Last] as one step writing output_of<Last>. In eval mode an intermediate
    // output with no buffer of its own borrows a pooled one, given back once the next step has
    // read it: inference holds a few activations, not one per layer (backward recomputes them).
    template <std::size_t I, std::size_t Last, class Run>
    void run_step(Mode mode, Run&& run) {
      if constexpr (Last + 1 < count)
        borrowed_[Last] = mode == Mode::eval && detail::borrow_if_unallocated(std::get<Last>(outputs_));
      run();
      if constexpr (I > 0)
        if (borrowed_[I - 1]) {
          return_buffer(std::get<I - 1>(outputs_));
          borrowed_[I - 1] = false;
          intermediates_skipped_ = true;
        }
    }

    // Backward after a folded or pooled forward: every layer but the last runs again, unfolded,
    // in eval mode (which changes no state), to refill the outputs the backward pass reads.
    void recompute_intermediates(const Batch<In, T>& x) {
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        ((I + 1 < count ? std::get<I>(layers_).forward(input_of<I>(x), std::get<I>(outputs_), Mode::eval) : void()),
         ...);
      }(std::make_index_sequence<count>{});
      intermediates_skipped_ = false;
    }

    template <std::size_t I>
    const auto& input_of(const Batch<In, T>& x) const {
      if constexpr (I == 0) return x;
      else return std::get<I - 1>(outputs_);
    }
    template <std::size_t I>
    auto& output_of(Batch<output_shape, T>& y) {
      if constexpr (I == count - 1) return y;
      else return std::get<I>(outputs_);
    }
    template <std::size_t I>
    const auto& output_of(const Batch<output_shape, T>& y) const {
      if constexpr (I == count - 1) return y;
      else return std::get<I>(outputs_);
    }
    // Layer I's backward. A ReLU whose BatchNorm fuses it (fuses_relu) runs inside that
    // BatchNorm's backward, which takes the ReLU's output gradient.
    template <std::size_t I>
    void backward_layer(const Batch<In, T>& x, const Batch<output_shape, T>& y, const Batch<output_shape, T>& dy,
                        Batch<In, T>* dx) {
      if constexpr (I > 0) {
        if constexpr (fuses_relu<I - 1>()) return;
      }
      constexpr bool with_relu = fuses_relu<I>();
      constexpr std::size_t last = with_relu ? I + 1 : I;  // whose output gradient comes in
      const auto& grad_out = [&]() -> const auto& {
        if constexpr (last == count - 1) return dy;
        else return std::get<last>(grads_);
      }();
      auto* grad_in = [&] {
        if constexpr (I == 0) return dx;
        else return &std::get<I - 1>(grads_);
      }();
      if constexpr (I > 0) borrow_buffer(*grad_in);
      if constexpr (with_relu) std::get<I>(layers_).backward(input_of<I>(x), output_of<I>(y), grad_out, grad_in, true);
      else std::get<I>(layers_).backward(input_of<I>(x), output_of<I>(y), grad_out, grad_in);
      if constexpr (last < count - 1) return_buffer(std::get<last>(grads_));  // consumed
    }

    Modules layers_;
    // outputs_[I] / grads_[I]: layer I's output and its gradient; the last entries stay empty
    // because the caller's y and dy take their place. A gradient holds a pooled buffer only
    // while backward() needs it.
    typename detail::OutputBatches<T, Modules>::type outputs_;
    typename detail::OutputBatches<T, Modules>::type grads_;
    bool intermediates_skipped_ = false;  // the last forward was folded or pooled (eval mode)
    std::vector<double> moments_;  // a train-mode BatchNorm's input moments, from the convolution before
    std::array<bool, count> borrowed_{};  // outputs_[I] holds a pooled buffer to give back
  };
};

}  // namespace ctnn
