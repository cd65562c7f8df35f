// Unfolding an image into convolution patches (im2col) and folding patch gradients back (col2im).
// Layout: col is (C·K·K) × (Ho·Wo), row-major; row (c, ky, kx) holds input[c][oy·S + ky − P][ox·S + kx − P]
// for every output position, zero where the window hangs over the padding.
#pragma once

#include <algorithm>
#include <cstring>

namespace ctnn::kernels {

template <int C, int H, int W, int K, int S, int P, class T>
void im2col(const T* image, T* col) {
  constexpr int Ho = (H + 2 * P - K) / S + 1;
  constexpr int Wo = (W + 2 * P - K) / S + 1;
  for (int c = 0; c < C; ++c) {
    const T* plane = image + c * H * W;
    for (int ky = 0; ky < K; ++ky) {
      for (int kx = 0; kx < K; ++kx) {
        T* row = col + ((c * K + ky) * K + kx) * Ho * Wo;
        for (int oy = 0; oy < Ho; ++oy) {
          const int iy = oy * S + ky - P;
          T* out = row + oy * Wo;
          if (iy < 0 || iy >= H) {
            std::fill_n(out, Wo, T(0));
            continue;
          }
          const T* in = plane + iy * W;
          for (int ox = 0; ox < Wo; ++ox) {
            const int ix = ox * S + kx - P;
            out[ox] = (ix >= 0 && ix < W) ? in[ix] : T(0);
          }
        }
      }
    }
  }
}

/// Adds every patch entry of col back onto the pixel it came from; image must be zeroed first.
template <int C, int H, int W, int K, int S, int P, class T>
void col2im_add(const T* col, T* image) {
  constexpr int Ho = (H + 2 * P - K) / S + 1;
  constexpr int Wo = (W + 2 * P - K) / S + 1;
  for (int c = 0; c < C; ++c) {
    T* plane = image + c * H * W;
    for (int ky = 0; ky < K; ++ky) {
      for (int kx = 0; kx < K; ++kx) {
        const T* row = col + ((c * K + ky) * K + kx) * Ho * Wo;
        for (int oy = 0; oy < Ho; ++oy) {
          const int iy = oy * S + ky - P;
          if (iy < 0 || iy >= H) continue;
          T* out = plane + iy * W;
          const T* in = row + oy * Wo;
          for (int ox = 0; ox < Wo; ++ox) {
            const int ix = ox * S + kx - P;
            if (ix >= 0 && ix < W) out[ix] += in[ox];
          }
        }
      }
    }
  }
}

}  // namespace ctnn::kernels
