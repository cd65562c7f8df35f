#pragma once

#include <string>

#include "ctnn/module.hpp"

namespace ctnn {

/// Identity: y = x, any shape. The shortcut of a residual block whose shape does not change.
/// PyTorch: nn.Identity() (or the seed's empty nn.Sequential()).
struct Identity {
  static std::string repr() { return "Identity()"; }

  template <ShapeType In, class T>
  class Module : public StatelessModule<Identity, In, In> {
   public:
    using output_shape = In;

    void forward(const Batch<In, T>& x, Batch<In, T>& y, Mode) {
      y.resize(x.batch_size());
      y.matrix() = x.matrix();
    }
    void backward(const Batch<In, T>&, const Batch<In, T>&, const Batch<In, T>& dy, Batch<In, T>* dx) {
      if (!dx) return;
      dx->resize(dy.batch_size());
      dx->matrix() = dy.matrix();
    }

    // A shortcut that does nothing gets no summary row (PyTorch's empty nn.Sequential() has none).
    template <class F>
    static void describe(F&&, const std::string&) {}
  };
};

}  // namespace ctnn
