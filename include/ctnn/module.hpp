// The protocol between layer descriptions and the modules they become once bound to a shape.
//
// A description D (e.g. Conv2d<1, 16, 3, 1, 1>) is a stateless type. D::Module<In, T> is the
// module for input shape In and scalar T. Every module M provides:
//   using input_shape, output_shape;
//   static constexpr std::size_t parameter_count;   // trainable scalars (PyTorch's numel sum)
//   static constexpr std::size_t multiply_adds;     // per image, convolutions and Linear only
//   void forward(const Batch<In,T>& x, Batch<Out,T>& y, Mode mode);
//   void backward(const Batch<In,T>& x, const Batch<Out,T>& y, const Batch<Out,T>& dy, Batch<In,T>* dx);
//        // x, y: the arguments of the last forward; dx may be null when the input gradient is not
//        // needed; parameter gradients are accumulated (PyTorch's .grad semantics).
//   template <class F> void visit(F&& f, const std::string& prefix);   // state_dict() order
//   void initialize(Rng& rng);                                         // the seed's init
//   template <class F> static void describe(F&& f, const std::string& name); // one LayerRow per leaf
#pragma once

#include <cstddef>
#include <string>

#include "ctnn/batch.hpp"
#include "ctnn/mode.hpp"
#include "ctnn/parameter.hpp"
#include "ctnn/random.hpp"
#include "ctnn/shape.hpp"

namespace ctnn {

/// The module a description becomes for input shape In and scalar T.
template <class Description, ShapeType In, class T>
using Bind = typename Description::template Module<In, T>;

/// Output shape of a description applied to In, without naming the scalar type.
template <class Description, ShapeType In>
using OutputShape = typename Bind<Description, In, float>::output_shape;

/// One line of a model summary: a leaf layer as PyTorch would name and print it.
struct LayerRow {
  std::string name;         // state_dict prefix, e.g. "layer1.0.conv1"
  std::string description;  // PyTorch-style repr, e.g. "Conv2d(16, 16, kernel_size=3, ...)"
  std::string output_shape; // "[C, H, W]"
  std::size_t parameters;
  std::size_t multiply_adds;
};

/// Describe a leaf layer module M: calls f once with its row.
template <class M, class F>
void describe_leaf(F&& f, const std::string& name, std::string description) {
  f(LayerRow{name, std::move(description), shape_string<typename M::output_shape>(), M::parameter_count,
             M::multiply_adds});
}

/// Base of a layer module without parameters or buffers (ReLU, pooling, Flatten, ...): nothing to
/// visit, initialise or count, and one summary row showing Description::repr().
template <class Description, ShapeType In, ShapeType Out>
struct StatelessModule {
  using input_shape = In;
  using output_shape = Out;
  static constexpr std::size_t parameter_count = 0;
  static constexpr std::size_t multiply_adds = 0;

  template <class F>
  void visit(F&&, const std::string&) {}
  void initialize(Rng&) {}
  template <class F>
  static void describe(F&& f, const std::string& name) {
    f(LayerRow{name, Description::repr(), shape_string<Out>(), 0, 0});
  }
};

}  // namespace ctnn
