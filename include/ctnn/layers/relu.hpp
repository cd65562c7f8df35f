#pragma once

#include <string>

#include "ctnn/kernels/elementwise.hpp"
#include "ctnn/module.hpp"

namespace ctnn {

/// ReLU: y = max(x, 0), any shape, shape preserved. Backward passes dy where y > 0.
/// PyTorch: nn.ReLU() (the gradient at exactly 0 is 0, as PyTorch's).
struct ReLU {
  static std::string repr() { return "ReLU()"; }

  template <ShapeType In, class T>
  class Module : public StatelessModule<ReLU, In, In> {
   public:
    using output_shape = In;
    static constexpr bool is_relu = true;  // lets Sequential fold it into the layer before

    void forward(const Batch<In, T>& x, Batch<In, T>& y, Mode) {
      y.resize(x.batch_size());
      kernels::parallel_slices(x.value_count(), [&](std::size_t begin, std::size_t end) {
        kernels::array(y, begin, end) = kernels::array(x, begin, end).max(T(0));
      });
    }

    void backward(const Batch<In, T>&, const Batch<In, T>& y, const Batch<In, T>& dy, Batch<In, T>* dx) {
      if (!dx) return;
      dx->resize(y.batch_size());
      kernels::parallel_slices(y.value_count(), [&](std::size_t begin, std::size_t end) {
        kernels::array(*dx, begin, end) = (kernels::array(y, begin, end) > T(0)).select(kernels::array(dy, begin, end), T(0));
      });
    }

  };
};

}  // namespace ctnn
