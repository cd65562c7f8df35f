#pragma once

#include <algorithm>
#include <array>
#include <limits>
#include <string>

#include "ctnn/module.hpp"
#include "ctnn/threads.hpp"

namespace ctnn {

namespace detail {
template <int Kernel, int Stride, int Padding>
constexpr bool window_fits(int height, int width) {
  return Kernel <= height + 2 * Padding && Kernel <= width + 2 * Padding;
}
// The output shape of a K×K window with stride S and padding P over In.
template <ShapeType In, int Kernel, int Stride, int Padding>
using Pooled = Shape<In::channels, window_output_size(In::height, Kernel, Stride, Padding),
                     window_output_size(In::width, Kernel, Stride, Padding)>;
inline std::string pool_repr(const char* name, int k, int s, int p) {
  return std::string(name) + "(kernel_size=" + std::to_string(k) + ", stride=" + std::to_string(s) +
         ", padding=" + std::to_string(p) + ")";
}
}  // namespace detail

/// MaxPool2d<K, S = K, P = 0>: maximum over K×K windows, padding counts as −∞; channels preserved,
/// output [C, (H + 2P − K)/S + 1, ...]. The gradient goes to the first maximum of each window.
/// PyTorch: nn.MaxPool2d(kernel_size=K, stride=S, padding=P).
template <int Kernel, int Stride = Kernel, int Padding = 0>
struct MaxPool2d {
  static_assert(Kernel > 0, "MaxPool2d: kernel size must be positive");
  static_assert(Stride > 0, "MaxPool2d: zero stride (stride must be positive)");
  static_assert(Padding >= 0 && 2 * Padding <= Kernel, "MaxPool2d: padding must be at most half the kernel size");
  static std::string repr() { return detail::pool_repr("MaxPool2d", Kernel, Stride, Padding); }

  template <ShapeType In, class T>
  class Module : public StatelessModule<MaxPool2d, In, detail::Pooled<In, Kernel, Stride, Padding>> {
    static_assert(detail::window_fits<Kernel, Stride, Padding>(In::height, In::width),
                  "MaxPool2d: kernel larger than padded input");

   public:
    using output_shape = detail::Pooled<In, Kernel, Stride, Padding>;

    void forward(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode) {
      y.resize(x.batch_size());
      // One task per image and channel plane: the maximum over the window's rows, into a row
      // bordered with −∞, then over its columns one kernel column at a time, so both passes
      // vectorise (window by window, ResNet50's stem pooling took 12 ms at batch 8, now 1.9).
      // No argmax is kept; backward() finds it again.
      parallel_for(x.batch_size() * In::channels, [&](std::size_t plane, std::size_t) {
        const T* in = x.data() + plane * In::plane;
        T* out = y.data() + plane * output_shape::plane;
        std::array<T, padded_width> rows;
        rows.fill(-std::numeric_limits<T>::infinity());
        for (int oy = 0; oy < output_shape::height; ++oy) {
          T* row_max = rows.data() + Padding;
          const int y0 = first_inside(oy), y1 = end_inside(oy, In::height);
          for (int ix = 0; ix < In::width; ++ix) row_max[ix] = in[y0 * In::width + ix];
          for (int iy = y0 + 1; iy < y1; ++iy)
            for (int ix = 0; ix < In::width; ++ix) row_max[ix] = larger(row_max[ix], in[iy * In::width + ix]);
          T* o = out + oy * output_shape::width;
          for (int ox = 0; ox < output_shape::width; ++ox) o[ox] = rows[ox * Stride];
          for (int kx = 1; kx < Kernel; ++kx)
            for (int ox = 0; ox < output_shape::width; ++ox) o[ox] = larger(o[ox], rows[ox * Stride + kx]);
        }
      });
    }

    void backward(const Batch<In, T>& x, const Batch<output_shape, T>& y, const Batch<output_shape, T>& dy,
                  Batch<In, T>* dx) {
      if (!dx) return;
      dx->resize(x.batch_size());
      parallel_for(x.batch_size() * In::channels, [&](std::size_t plane, std::size_t) {
        const T* in = x.data() + plane * In::plane;
        const T* max = y.data() + plane * output_shape::plane;
        const T* g = dy.data() + plane * output_shape::plane;
        T* out = dx->data() + plane * In::plane;
        std::fill_n(out, In::plane, T(0));
        for (int oy = 0; oy < output_shape::height; ++oy)
          for (int ox = 0; ox < output_shape::width; ++ox) {
            const std::size_t o = std::size_t(oy) * output_shape::width + ox;
            out[winner(in, oy, ox, max[o])] += g[o];
          }
      });
    }

   private:
    // Every window column, and every input column at offset Padding (floor mode may leave the last
    // ones out of all windows).
    static constexpr int padded_width = std::max((output_shape::width - 1) * Stride + Kernel, Padding + In::width);
    // PyTorch's comparison: a NaN wins over everything, later NaNs over earlier ones.
    static T larger(T best, T v) { return v > best || v != v ? v : best; }
    // The input rows (or columns) [first_inside, end_inside) of output row (column) o's window.
    static constexpr int first_inside(int o) { return std::max(0, o * Stride - Padding); }
    static constexpr int end_inside(int o, int size) { return std::min(size, o * Stride - Padding + Kernel); }
    // The input that forward() took as the maximum `best` of window (oy, ox), in PyTorch's choice:
    // the first one equal to it in row-major order, or the last NaN when it is NaN.
    static std::size_t winner(const T* in, int oy, int ox, T best) {
      std::size_t found = 0;
      bool seen = false;
      for (int iy = first_inside(oy); iy < end_inside(oy, In::height); ++iy)
        for (int ix = first_inside(ox); ix < end_inside(ox, In::width); ++ix) {
          const T v = in[iy * In::width + ix];
          if (best != best ? v != v : (!seen && v == best)) {
            found = std::size_t(iy) * In::width + ix;
            seen = true;
          }
        }
      return found;
    }
  };
};

/// AvgPool2d<K, S = K, P = 0>: mean over K×K windows, zero padding counted in the divisor
/// (PyTorch's count_include_pad=True); output [C, (H + 2P − K)/S + 1, ...].
/// PyTorch: nn.AvgPool2d(kernel_size=K, stride=S, padding=P) or F.avg_pool2d(x, K).
template <int Kernel, int Stride = Kernel, int Padding = 0>
struct AvgPool2d {
  static_assert(Kernel > 0, "AvgPool2d: kernel size must be positive");
  static_assert(Stride > 0, "AvgPool2d: zero stride (stride must be positive)");
  static_assert(Padding >= 0 && 2 * Padding <= Kernel, "AvgPool2d: padding must be at most half the kernel size");
  static std::string repr() { return detail::pool_repr("AvgPool2d", Kernel, Stride, Padding); }

  template <ShapeType In, class T>
  class Module : public StatelessModule<AvgPool2d, In, detail::Pooled<In, Kernel, Stride, Padding>> {
    static_assert(detail::window_fits<Kernel, Stride, Padding>(In::height, In::width),
                  "AvgPool2d: kernel larger than padded input");
    // Floor mode keeps every window inside the padded input, so each divides by K·K.
    static constexpr T divisor = T(Kernel * Kernel);

   public:
    using output_shape = detail::Pooled<In, Kernel, Stride, Padding>;

    void forward(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode) {
      y.resize(x.batch_size());
      parallel_for(x.batch_size() * In::channels, [&](std::size_t plane, std::size_t) {
        const T* in = x.data() + plane * In::plane;
        T* out = y.data() + plane * output_shape::plane;
        for_each_window([&](int o, int i) { out[o] += in[i]; }, [&](int o) { out[o] = T(0); },
                        [&](int o) { out[o] /= divisor; });
      });
    }

    void backward(const Batch<In, T>& x, const Batch<output_shape, T>&, const Batch<output_shape, T>& dy,
                  Batch<In, T>* dx) {
      if (!dx) return;
      dx->resize(x.batch_size());
      parallel_for(x.batch_size() * In::channels, [&](std::size_t plane, std::size_t) {
        T* out = dx->data() + plane * In::plane;
        const T* g = dy.data() + plane * output_shape::plane;
        std::fill_n(out, In::plane, T(0));
        for_each_window([&](int o, int i) { out[i] += g[o] / divisor; }, [](int) {}, [](int) {});
      });
    }


   private:
    // Calls start(o), then pair(o, i) for every in-bounds input i of output o's window, then finish(o).
    template <class Pair, class Start, class Finish>
    static void for_each_window(Pair&& pair, Start&& start, Finish&& finish) {
      for (int oy = 0; oy < output_shape::height; ++oy) {
        for (int ox = 0; ox < output_shape::width; ++ox) {
          const int o = oy * output_shape::width + ox;
          start(o);
          for (int ky = 0; ky < Kernel; ++ky) {
            const int iy = oy * Stride + ky - Padding;
            if (iy < 0 || iy >= In::height) continue;
            for (int kx = 0; kx < Kernel; ++kx) {
              const int ix = ox * Stride + kx - Padding;
              if (ix >= 0 && ix < In::width) pair(o, iy * In::width + ix);
            }
          }
          finish(o);
        }
      }
    }
  };
};

/// GlobalAvgPool2d: mean over each channel's H×W plane, [C, H, W] -> [C, 1, 1].
/// PyTorch: nn.AdaptiveAvgPool2d((1, 1)) (torchvision ResNet's avgpool).
struct GlobalAvgPool2d {
  static std::string repr() { return "AdaptiveAvgPool2d(output_size=(1, 1))"; }

  template <ShapeType In, class T>
  class Module : public StatelessModule<GlobalAvgPool2d, In, Shape<In::channels, 1, 1>> {
   public:
    using output_shape = Shape<In::channels, 1, 1>;

    void forward(const Batch<In, T>& x, Batch<output_shape, T>& y, Mode) {
      y.resize(x.batch_size());
      using Planes = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic>>;
      for (std::size_t n = 0; n < x.batch_size(); ++n) {
        Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, 1>>(y.image(n), In::channels) =
            Planes(x.image(n), In::plane, In::channels).colwise().mean().transpose();
      }
    }

    void backward(const Batch<In, T>& x, const Batch<output_shape, T>&, const Batch<output_shape, T>& dy,
                  Batch<In, T>* dx) {
      if (!dx) return;
      dx->resize(x.batch_size());
      for (std::size_t n = 0; n < x.batch_size(); ++n) {
        for (int c = 0; c < In::channels; ++c) {
          std::fill_n(dx->image(n) + c * In::plane, In::plane, dy.image(n)[c] / T(In::plane));
        }
      }
    }

  };
};

}  // namespace ctnn
