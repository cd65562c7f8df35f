#pragma once

#include <type_traits>

#include "ctnn/compose/named.hpp"
#include "ctnn/compose/sequential.hpp"
#include "ctnn/buffer_pool.hpp"
#include "ctnn/kernels/elementwise.hpp"
#include "ctnn/layers/identity.hpp"
#include "ctnn/module.hpp"

namespace ctnn {

/// Residual<Main, Shortcut = Identity>: y = relu(main(x) + shortcut(x)), the residual unit that
/// learns F(x) = H(x) − x. Both branches must produce the same shape. Branches add no name of
/// their own (wrap them in Named to give one). PyTorch: torchvision's BasicBlock/Bottleneck forward.
template <class Main, class Shortcut = Identity>
struct Residual {
  template <ShapeType In, class T>
  class Module {
    using MainModule = Bind<Main, In, T>;
    using ShortcutModule = Bind<Shortcut, In, T>;
    using MainShape = typename MainModule::output_shape;
    using ShortcutShape = typename ShortcutModule::output_shape;
    static_assert(std::is_same_v<MainShape, ShortcutShape>,
                  "Residual: residual branches differ in shape (main and shortcut outputs must match to be added)");
    static constexpr bool identity_shortcut = std::is_same_v<Shortcut, Identity>;
    static constexpr bool main_adds_shortcut = detail::AddsResidual<MainModule>;

   public:
    using input_shape = In;
    using output_shape = MainShape;
    static constexpr std::size_t parameter_count = MainModule::parameter_count + ShortcutModule::parameter_count;
    static constexpr std::size_t multiply_adds = MainModule::multiply_adds + ShortcutModule::multiply_adds;

    /// A main branch that ends in a BatchNorm adds the shortcut and applies the ReLU as it stores
    /// (Sequential's forward with a residual), so its own output is never stored. Otherwise, in
    /// eval mode, a block that has not trained holds its branch outputs only until they are added
    /// (pooled buffers); backward() recomputes them.
    void forward(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode mode) {
      if constexpr (main_adds_shortcut) {
        y.resize(x.batch_size());
        if constexpr (identity_shortcut) {
          detail::forward_adding(main_, x, y, mode, x);
        } else {
          branches_pooled_ = mode == Mode::eval && detail::borrow_if_unallocated(shortcut_out_);
          shortcut_.forward(x, shortcut_out_, mode);
          detail::forward_adding(main_, x, y, mode, shortcut_out_);
          if (branches_pooled_) return_buffer(shortcut_out_);
        }
        return;
      }
      branches_pooled_ = mode == Mode::eval && detail::borrow_if_unallocated(main_out_);
      if constexpr (!identity_shortcut)
        if (branches_pooled_) borrow_buffer(shortcut_out_);
      main_.forward(x, main_out_, mode);
      y.resize(x.batch_size());
      if constexpr (!identity_shortcut) shortcut_.forward(x, shortcut_out_, mode);
      const auto& shortcut = [&]() -> const auto& {
        if constexpr (identity_shortcut) return x;
        else return shortcut_out_;
      }();
      kernels::parallel_slices(y.value_count(), [&](std::size_t begin, std::size_t end) {
        kernels::array(y, begin, end) = (kernels::array(main_out_, begin, end) + kernels::array(shortcut, begin, end)).max(T(0));
      });
      if (branches_pooled_) {
        return_buffer(main_out_);
        return_buffer(shortcut_out_);
      }
    }

    void backward(const Batch<In, T>& x, const Batch<output_shape, T>& y, const Batch<output_shape, T>& dy,
                  Batch<In, T>* dx) {
      if (branches_pooled_) {  // eval mode (no state changes): the branch outputs again
        if constexpr (!main_adds_shortcut) main_.forward(x, main_out_, Mode::eval);
        if constexpr (!identity_shortcut) shortcut_.forward(x, shortcut_out_, Mode::eval);
        branches_pooled_ = false;
      }
      // main_out_ stays empty where the main branch added the shortcut: its last layer, a
      // BatchNorm, reads only its input.
      borrow_buffer(sum_grad_);
      sum_grad_.resize(y.batch_size());
      kernels::parallel_slices(y.value_count(), [&](std::size_t begin, std::size_t end) {
        kernels::array(sum_grad_, begin, end) = (kernels::array(y, begin, end) > T(0)).select(kernels::array(dy, begin, end), T(0));
      });
      main_.backward(x, main_out_, sum_grad_, dx);
      if constexpr (!identity_shortcut) {
        if (dx) borrow_buffer(shortcut_dx_);
        shortcut_.backward(x, shortcut_out_, sum_grad_, dx ? &shortcut_dx_ : nullptr);
      }
      if (dx) {
        const auto& shortcut_grad = [&]() -> const auto& {
          if constexpr (identity_shortcut) return sum_grad_;
          else return shortcut_dx_;
        }();
        kernels::parallel_slices(dx->value_count(), [&](std::size_t begin, std::size_t end) {
          kernels::array(*dx, begin, end) += kernels::array(shortcut_grad, begin, end);
        });
      }
      return_buffer(sum_grad_);
      return_buffer(shortcut_dx_);
    }

    template <class F>
    void visit(F&& f, const std::string& prefix) {
      main_.visit(f, prefix);
      shortcut_.visit(f, prefix);
    }

    void initialize(Rng& rng) {
      main_.initialize(rng);
      shortcut_.initialize(rng);
    }

    template <class F>
    static void describe(F&& f, const std::string& prefix) {
      MainModule::describe(f, prefix);
      ShortcutModule::describe(f, prefix);
    }

    MainModule& main_branch() { return main_; }
    ShortcutModule& shortcut_branch() { return shortcut_; }

   private:
    MainModule main_;
    ShortcutModule shortcut_;
    Batch<output_shape, T> main_out_, shortcut_out_;
    Batch<output_shape, T> sum_grad_;  // gradients: pooled buffers, held only during backward()
    Batch<In, T> shortcut_dx_;
    bool branches_pooled_ = false;  // the last forward gave main_out_ and shortcut_out_ back
  };
};

}  // namespace ctnn
