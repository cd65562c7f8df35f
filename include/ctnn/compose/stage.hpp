#pragma once

#include <array>
#include <type_traits>

#include "ctnn/buffer_pool.hpp"
#include "ctnn/module.hpp"

namespace ctnn {

/// Stage<First, Repeated, Count>: First, then Count − 1 copies of Repeated, named "0" … "Count−1".
/// Repeated must keep its input shape (stride 1, in = out channels) and its in_channels must equal
/// First's out_channels. The copies share one module type, which keeps deep ResNets cheap to
/// compile. PyTorch: the seed's _make_layer / make_layer (an nn.Sequential of blocks).
template <class First, class Repeated, int Count>
struct Stage {
  static_assert(Count >= 1, "Stage: needs at least one block");
  static_assert(Repeated::in_channels == First::out_channels,
                "Stage: channel mismatch between blocks (a block's in_channels differ from the previous block's "
                "out_channels)");
  static_assert(Repeated::in_channels == Repeated::out_channels,
                "Stage: repeated blocks must keep their channel count");
  static constexpr int in_channels = First::in_channels;
  static constexpr int out_channels = First::out_channels;

  template <ShapeType In, class T>
  class Module {
    using FirstModule = Bind<First, In, T>;
    using Mid = typename FirstModule::output_shape;
    using RepeatedModule = Bind<Repeated, Mid, T>;
    static_assert(std::is_same_v<typename RepeatedModule::output_shape, Mid>,
                  "Stage: repeated blocks must keep their input shape (stride 1)");
    static constexpr std::size_t copies = std::size_t(Count) - 1;

   public:
    using input_shape = In;
    using output_shape = Mid;
    static constexpr std::size_t parameter_count =
        FirstModule::parameter_count + copies * RepeatedModule::parameter_count;
    static constexpr std::size_t multiply_adds = FirstModule::multiply_adds + copies * RepeatedModule::multiply_adds;

    void forward(const Batch<In, T>& x, Batch<Mid, T>& y, Mode mode) {
      if constexpr (copies == 0) {
        first_.forward(x, y, mode);
      } else {
        // Eval mode, blocks that have not trained: each output between blocks is a pooled buffer,
        // given back once the next block has read it; backward() recomputes them.
        outputs_pooled_ = mode == Mode::eval && detail::borrow_if_unallocated(outputs_[0]);
        first_.forward(x, outputs_[0], mode);
        for (std::size_t i = 0; i < copies; ++i) {
          if (outputs_pooled_ && i + 1 < copies) borrow_buffer(outputs_[i + 1]);
          repeated_[i].forward(outputs_[i], output_of(i, y), mode);
          if (outputs_pooled_) return_buffer(outputs_[i]);
        }
      }
    }

    void backward(const Batch<In, T>& x, const Batch<Mid, T>& y, const Batch<Mid, T>& dy, Batch<In, T>* dx) {
      if constexpr (copies == 0) {
        first_.backward(x, y, dy, dx);
      } else {
        if (outputs_pooled_) {  // eval mode (no state changes): the outputs between blocks again
          first_.forward(x, outputs_[0], Mode::eval);
          for (std::size_t i = 0; i + 1 < copies; ++i) repeated_[i].forward(outputs_[i], outputs_[i + 1], Mode::eval);
          outputs_pooled_ = false;
        }
        for (std::size_t i = copies; i-- > 0;) {
          const Batch<Mid, T>& grad_out = i + 1 == copies ? dy : grads_[i + 1];
          borrow_buffer(grads_[i]);
          repeated_[i].backward(outputs_[i], i + 1 == copies ? y : outputs_[i + 1], grad_out, &grads_[i]);
          if (i + 1 < copies) return_buffer(grads_[i + 1]);
        }
        first_.backward(x, outputs_[0], grads_[0], dx);
        return_buffer(grads_[0]);
      }
    }

    template <class F>
    void visit(F&& f, const std::string& prefix) {
      first_.visit(f, join_name(prefix, "0"));
      for (std::size_t i = 0; i < copies; ++i) repeated_[i].visit(f, join_name(prefix, std::to_string(i + 1)));
    }

    void initialize(Rng& rng) {
      first_.initialize(rng);
      for (auto& block : repeated_) block.initialize(rng);
    }

    template <class F>
    static void describe(F&& f, const std::string& prefix) {
      FirstModule::describe(f, join_name(prefix, "0"));
      for (std::size_t i = 0; i < copies; ++i) RepeatedModule::describe(f, join_name(prefix, std::to_string(i + 1)));
    }

   private:
    Batch<Mid, T>& output_of(std::size_t i, Batch<Mid, T>& y) { return i + 1 == copies ? y : outputs_[i + 1]; }

    FirstModule first_;
    std::array<RepeatedModule, copies> repeated_;
    // outputs_[i]: input of repeated block i (output of the block before it); grads_[i]: its
    // gradient, holding a pooled buffer only while backward() needs it.
    std::array<Batch<Mid, T>, copies> outputs_;
    std::array<Batch<Mid, T>, copies> grads_;
    bool outputs_pooled_ = false;  // the last forward gave outputs_ back
  };
};

}  // namespace ctnn
