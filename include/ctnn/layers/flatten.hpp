#pragma once

#include <string>

#include "ctnn/module.hpp"

namespace ctnn {

/// Flatten: [C, H, W] -> [C·H·W, 1, 1], values unchanged (NCHW order, as torch.flatten(x, 1)).
/// PyTorch: nn.Flatten() / x.view(x.size(0), -1).
struct Flatten {
  static std::string repr() { return "Flatten(start_dim=1, end_dim=-1)"; }

  template <ShapeType In, class T>
  class Module : public StatelessModule<Flatten, In, Flattened<In>> {
   public:
    using output_shape = Flattened<In>;

    void forward(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode) {
      y.resize(x.batch_size());
      y.matrix() = x.matrix();
    }
    void backward(const Batch<In, T>&, const Batch<output_shape, T>&, const Batch<output_shape, T>& dy,
                  Batch<In, T>* dx) {
      if (!dx) return;
      dx->resize(dy.batch_size());
      dx->matrix() = dy.matrix();
    }

  };
};

}  // namespace ctnn
