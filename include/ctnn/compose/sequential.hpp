#pragma once

#include <tuple>
#include <utility>

#include "ctnn/compose/named.hpp"
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

    void forward(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode mode) {
      [&]<std::size_t... I>(std::index_sequence<I...>) {
        (std::get<I>(layers_).forward(input_of<I>(x), output_of<I>(y), mode), ...);
      }(Indices{});
    }

    void backward(const Batch<In, T>& x, const Batch<output_shape, T>& y, const Batch<output_shape, T>& dy,
                  Batch<In, T>* dx) {
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
    template <std::size_t I>
    void backward_layer(const Batch<In, T>& x, const Batch<output_shape, T>& y, const Batch<output_shape, T>& dy,
                        Batch<In, T>* dx) {
      const auto& grad_out = [&]() -> const auto& {
        if constexpr (I == count - 1) return dy;
        else return std::get<I>(grads_);
      }();
      auto* grad_in = [&] {
        if constexpr (I == 0) return dx;
        else return &std::get<I - 1>(grads_);
      }();
      std::get<I>(layers_).backward(input_of<I>(x), output_of<I>(y), grad_out, grad_in);
    }

    Modules layers_;
    // outputs_[I] / grads_[I]: layer I's output and its gradient; the last entries stay empty
    // because the caller's y and dy take their place.
    typename detail::OutputBatches<T, Modules>::type outputs_;
    typename detail::OutputBatches<T, Modules>::type grads_;
  };
};

}  // namespace ctnn
