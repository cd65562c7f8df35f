// Convolution geometry, and moving a tile of columns between NCHW batches and column matrices.
// The column matrix of a batch has one row per patch entry (c, ky, kx) and one column per output
// position (n, oy, ox), image after image; a tile is a contiguous range of those columns, so one
// GEMM can span several small images (MNIST's 7×7 and 4×4 maps) or part of one large image.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace ctnn::kernels {

#if defined(__AVX512F__)
/// The first min(n, 16) lanes of a vector.
inline __mmask16 first_lanes(int n) { return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1); }
#endif

// Rows of a patch matrix are short (one output row: 4..112 values), too short for memcpy and
// memset calls to pay off; masked AVX-512 moves handle any length without a scalar tail.
template <class T>
inline void copy_row(const T* in, int length, T* out) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    for (int i = 0; i < length; i += 16) {
      const __mmask16 m = first_lanes(length - i);
      _mm512_mask_storeu_ps(out + i, m, _mm512_maskz_loadu_ps(m, in + i));
    }
    return;
  }
#endif
  for (int i = 0; i < length; ++i) out[i] = in[i];
}
/// out[0, length) = in[0, length), out[length, total) = 0: a row and the zeros after it in one
/// pass (as std::copy_n and std::fill, a memmove call per 28-value row).
template <class T>
inline void copy_row_then_zeros(const T* in, int length, int total, T* out) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    for (int i = 0; i < total; i += 16)
      _mm512_mask_storeu_ps(out + i, first_lanes(total - i), _mm512_maskz_loadu_ps(first_lanes(length - i), in + std::min(i, length)));
    return;
  }
#endif
  std::copy_n(in, length, out);
  std::fill(out + length, out + total, T(0));
}
template <class T>
inline void zero_row(int length, T* out) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    for (int i = 0; i < length; i += 16) {
      const __mmask16 m = first_lanes(length - i);
      _mm512_mask_storeu_ps(out + i, m, _mm512_setzero_ps());
    }
    return;
  }
#endif
  for (int i = 0; i < length; ++i) out[i] = T(0);
}
/// out[0, P) = 0, out[P, P + length) = in[0, length), out[P + length, length + 2P) = 0: one row of
/// a zero-bordered image, each vector one load and one shift of its lanes by P (as three calls,
/// zero, copy, zero, the 7- and 4-value rows of small maps cost more in calls than in data).
template <int P, class T>
inline void bordered_row(const T* in, int length, T* out) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && P > 0 && P < 16) {
    const int total = length + 2 * P;
    __m512i previous = _mm512_setzero_si512();
    for (int i = 0; i < total; i += 16) {
      const __m512i current = _mm512_castps_si512(_mm512_maskz_loadu_ps(first_lanes(length - i), in + std::min(i, length)));
      // Lanes [0, P) from the end of the previous vector, the rest from this one.
      const __m512i shifted = _mm512_alignr_epi32(current, previous, 16 - P);
      _mm512_mask_storeu_ps(out + i, first_lanes(total - i), _mm512_castsi512_ps(shifted));
      previous = current;
    }
    return;
  }
#endif
  zero_row(P, out);
  copy_row(in, length, out + P);
  zero_row(P, out + P + length);
}
template <class T>
inline void add_row(const T* in, int length, T* out) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float>) {
    for (int i = 0; i < length; i += 16) {
      const __mmask16 m = first_lanes(length - i);
      _mm512_mask_storeu_ps(out + i, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, out + i), _mm512_maskz_loadu_ps(m, in + i)));
    }
    return;
  }
#endif
  for (int i = 0; i < length; ++i) out[i] += in[i];
}

/// out[i] = in[i·S] for i in [0, length): a row of a strided convolution's patch matrix.
template <int S, class T>
inline void copy_strided_row(const T* in, int length, T* out) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && S == 2) {
    const __m512i evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int i = 0; i < length; i += 16) {
      const int span = 2 * std::min(16, length - i) - 1;  // inputs read, masked so none past the row
      const __m512 low = _mm512_maskz_loadu_ps(first_lanes(span), in + 2 * i);
      const __m512 high = _mm512_maskz_loadu_ps(first_lanes(span - 16), in + 2 * i + 16);
      _mm512_mask_storeu_ps(out + i, first_lanes(length - i), _mm512_permutex2var_ps(low, evens, high));
    }
    return;
  }
#endif
  for (int i = 0; i < length; ++i) out[i] = in[i * S];
}
/// out[i·S] = in[i] (or += if Accumulate) for i in [0, length): the adjoint of copy_strided_row.
template <int S, bool Accumulate, class T>
inline void spread_strided_row(const T* in, int length, T* out) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> && S == 2) {
    const __m512i low_half = _mm512_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7);
    const __m512i high_half = _mm512_setr_epi32(8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15);
    const auto put = [](float* o, __mmask16 lanes, __m512 v) {
      if constexpr (Accumulate) v = _mm512_add_ps(_mm512_maskz_loadu_ps(lanes, o), v);
      _mm512_mask_storeu_ps(o, lanes, v);
    };
    for (int i = 0; i < length; i += 16) {
      const __m512 v = _mm512_maskz_loadu_ps(first_lanes(length - i), in + i);
      const int span = 2 * std::min(16, length - i) - 1;
      const __mmask16 low = first_lanes(span) & 0x5555, high = first_lanes(span - 16) & 0x5555;  // even lanes
      put(out + 2 * i, low, _mm512_permutexvar_ps(low_half, v));
      put(out + 2 * i + 16, high, _mm512_permutexvar_ps(high_half, v));
    }
    return;
  }
#endif
  for (int i = 0; i < length; ++i) {
    if constexpr (Accumulate) out[i * S] += in[i];
    else out[i * S] = in[i];
  }
}
template <int S, class T>
inline void add_strided_row(const T* in, int length, T* out) {
  spread_strided_row<S, true>(in, length, out);
}

/// A convolution of C×H×W images with a K×K kernel, stride S and zero padding P.
template <int C, int H, int W, int K, int S, int P>
struct ConvGeometry {
  static constexpr int channels = C, height = H, width = W, kernel = K, stride = S, padding = P;
  static constexpr int out_height = (H + 2 * P - K) / S + 1;
  static constexpr int out_width = (W + 2 * P - K) / S + 1;
  static constexpr std::size_t positions = std::size_t(out_height) * out_width;
  static constexpr std::size_t patch = std::size_t(C) * K * K;
  static constexpr std::size_t image = std::size_t(C) * H * W;
  static constexpr bool pointwise = K == 1 && S == 1 && P == 0;
  static constexpr int padded_height = H + 2 * P, padded_width = W + 2 * P;
  // The zero-bordered image as the kernels read it. At stride S > 1 it is split into S×S phase
  // planes per channel (bordered rows ≡ py and columns ≡ px mod S), so that every kernel tap reads
  // a stride-1 window of one plane: output (oy, ox) of tap (c, ky, kx) is at
  // tap_offset(c, ky, kx) + oy·phase_width + ox. At stride 1 it is the bordered image itself.
  static constexpr int phase_height = (padded_height + S - 1) / S, phase_width = (padded_width + S - 1) / S;
  static constexpr std::size_t phase_plane = std::size_t(phase_height) * phase_width;
  static constexpr std::size_t padded_image = std::size_t(S) * S * C * phase_plane;
  static constexpr std::size_t tap_offset(int c, int ky, int kx) {
    return ((std::size_t(ky % S) * S + kx % S) * C + c) * phase_plane + std::size_t(ky / S) * phase_width + kx / S;
  }
  static constexpr std::size_t last_tap_offset() {
    std::size_t last = 0;
    for (int ky = 0; ky < K; ++ky)
      for (int kx = 0; kx < K; ++kx) last = std::max(last, tap_offset(C - 1, ky, kx));
    return last;
  }

  // For output column ox and kernel column kx, the input column is ox·S + kx − P; these give the
  // range of ox in [begin, end) whose input column lies inside the image.
  static constexpr int first_inside(int kx, int begin) {
    const int need = P - kx;  // ox·S ≥ need
    return std::max(begin, need <= 0 ? 0 : (need + S - 1) / S);
  }
  static constexpr int end_inside(int kx, int end) {
    const int last = W - 1 + P - kx;  // ox·S ≤ last
    return std::min(end, last < 0 ? 0 : last / S + 1);
  }
};

/// Calls f(n, oy, ox, length, offset) for each run of tile columns that lies inside one output row.
template <class G, class F>
void for_each_row_run(std::size_t first, std::size_t count, F&& f) {
  for (std::size_t done = 0; done < count;) {
    const std::size_t g = first + done, n = g / G::positions, p = g % G::positions;
    const int oy = int(p / G::out_width), ox = int(p % G::out_width);
    const std::size_t length = std::min(std::size_t(G::out_width - ox), count - done);
    f(n, oy, ox, int(length), done);
    done += length;
  }
}

/// One image of a batch with a zero border of G::padding around every channel plane, in a buffer
/// of G::padded_image values; it is rebuilt only when a different image is asked for, so
/// consecutive im2col calls of one task copy each image once.
template <class T>
struct PaddedImage {
  T* values;
  std::size_t image = std::size_t(-1);  // the batch index `values` holds
};

template <class G, class T>
const T* padded_image(const T* x, std::size_t n, PaddedImage<T>& cache) {
  constexpr int P = G::padding, Wp = G::padded_width, S = G::stride;
  if (cache.image == n) return cache.values;
  T* out = cache.values;
  if constexpr (S > 1) {  // phase planes (see ConvGeometry): plane (py, px) row i is bordered row S·i + py
    constexpr int Wq = G::phase_width;
    for (int py = 0; py < S; ++py)
      for (int px = 0; px < S; ++px) {
        // Plane columns j whose input column S·j + px − P lies in [0, W).
        constexpr auto first_column = [](int px) { return px >= P ? 0 : (P - px + S - 1) / S; };
        constexpr auto end_column = [](int px) { return std::min(G::phase_width, (G::width - 1 + P - px) / S + 1); };
        const int j0 = first_column(px), j1 = std::max(j0, end_column(px));
        for (int c = 0; c < G::channels; ++c) {
          const T* plane = x + n * G::image + std::size_t(c) * G::height * G::width;
          for (int i = 0; i < G::phase_height; ++i, out += Wq) {
            const int y = S * i + py - P;
            if (y < 0 || y >= G::height) {
              zero_row(Wq, out);
              continue;
            }
            zero_row(j0, out);
            copy_strided_row<S>(plane + y * G::width + S * j0 + px - P, j1 - j0, out + j0);
            zero_row(Wq - j1, out + j1);
          }
        }
      }
    cache.image = n;
    return cache.values;
  }
  for (int c = 0; c < G::channels; ++c) {
    const T* plane = x + n * G::image + std::size_t(c) * G::height * G::width;
    zero_row(P * Wp, out);
    out += P * Wp;
    for (int y = 0; y < G::height; ++y, out += Wp) bordered_row<P>(plane + y * G::width, G::width, out);
    zero_row(P * Wp, out);
    out += P * Wp;
  }
  cache.image = n;
  return cache.values;
}

/// Output rows shorter than a vector (7×7, 4×4 maps, strided 14×14): copying them one by one costs
/// more in calls than in data, so im2col assembles 16 columns at a time from the zero-bordered
/// image, each vector from two loads and one permute (AVX-512 gathers instead: MNIST training 5 %
/// and inference 8 % slower on this machine).
template <class G, class T>
inline constexpr bool permutes_columns =
#if defined(__AVX512F__)
    std::is_same_v<T, float> && G::padding > 0 && G::out_width < 16 && G::positions <= 1024;
#else
    false;
#endif

/// Values the permuting im2col may load past the end of a zero-bordered image (never used).
inline constexpr std::size_t padded_slack = 32;

#if defined(__AVX512F__)
template <class G>
void im2col_tile_permute(const float* x, std::size_t first, std::size_t count, float* col, std::size_t ld,
                         PaddedImage<float>& padded) {
  constexpr int K = G::kernel;
  // Output position q's input relative to the kernel tap's (a stride-1 window of a phase plane).
  constexpr auto input_offset = [](std::size_t q) { return int(q / G::out_width) * G::phase_width + int(q % G::out_width); };
  static_assert(G::last_tap_offset() + input_offset(G::positions - 1) + 32 <= G::padded_image + padded_slack);
  // Lanes of one 16-column group whose inputs lie within 32 values of `base`: one permute of the
  // two vectors at base selects them all. A group ends with the segment that stores it.
  struct Segment {
    __m512i index;
    int base, group;
    __mmask16 lanes;
    bool stores;
  };
  constexpr std::size_t piece = 64;  // columns planned at a time (whole groups, one image)
  Segment segments[piece];
  for (std::size_t done = 0; done < count;) {
    const std::size_t g = first + done, n = g / G::positions, p = g % G::positions;
    const std::size_t end = std::min({done + (G::positions - p), count, done / 16 * 16 + piece});
    const float* image = padded_image<G>(x, n, padded);
    int used = 0;
    for (std::size_t c = done; c < end;) {
      const std::size_t group = c / 16 * 16, group_end = std::min(end, group + 16);
      alignas(64) std::int32_t index[16] = {};
      while (c < group_end) {
        const int base = input_offset(p + (c - done));
        __mmask16 lanes = 0;
        for (; c < group_end && input_offset(p + (c - done)) - base < 32; ++c) {
          index[c - group] = input_offset(p + (c - done)) - base;
          lanes = __mmask16(lanes | 1u << (c - group));
        }
        segments[used++] = {_mm512_load_si512(index), base, int(group), lanes, c == group_end};
      }
    }
    // Each group one segment (7×7 and 4×4 maps at stride 1): the segments stay in registers and a
    // tap is `Used` permutes and stores, with no merging. Read from memory and merged, the general
    // loop below spent 3 % of an MNIST training step on a 64-channel 7×7 layer's im2col.
    const auto single_segments = [&]<int Used>() {
      __m512i index[Used];
      int base[Used], group[Used];
      __mmask16 lanes[Used];
      for (int s = 0; s < Used; ++s)
        index[s] = segments[s].index, base[s] = segments[s].base, group[s] = segments[s].group, lanes[s] = segments[s].lanes;
      float* out = col;
      for (int ch = 0; ch < G::channels; ++ch)
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx, out += ld) {
            const float* tap = image + G::tap_offset(ch, ky, kx);
#pragma GCC unroll 4
            for (int s = 0; s < Used; ++s)
              _mm512_mask_storeu_ps(out + group[s], lanes[s],
                                    _mm512_permutex2var_ps(_mm512_loadu_ps(tap + base[s]), index[s],
                                                           _mm512_loadu_ps(tap + base[s] + 16)));
          }
    };
    bool single = true;
    for (int s = 0; s < used; ++s) single = single && segments[s].stores;
    switch (single ? used : 0) {
      case 1: single_segments.template operator()<1>(); done = end; continue;
      case 2: single_segments.template operator()<2>(); done = end; continue;
      case 3: single_segments.template operator()<3>(); done = end; continue;
      case 4: single_segments.template operator()<4>(); done = end; continue;
      default: break;
    }
    float* out = col;
    for (int ch = 0; ch < G::channels; ++ch)
      for (int ky = 0; ky < K; ++ky)
        for (int kx = 0; kx < K; ++kx, out += ld) {
          const float* tap = image + G::tap_offset(ch, ky, kx);
          __m512 v = _mm512_setzero_ps();
          __mmask16 filled = 0;
          for (int s = 0; s < used; ++s) {
            const Segment& segment = segments[s];
            const float* in = tap + segment.base;
            v = _mm512_mask_mov_ps(v, segment.lanes,
                                   _mm512_permutex2var_ps(_mm512_loadu_ps(in), segment.index, _mm512_loadu_ps(in + 16)));
            filled = __mmask16(filled | segment.lanes);
            if (segment.stores) {
              _mm512_mask_storeu_ps(out + segment.group, filled, v);
              filled = 0;
            }
          }
        }
    done = end;
  }
}
#endif

/// Writes columns [first, first + count) of the batch x's column matrix to col: row r (patch entry
/// r) at col + r·ld. Entries over the padding are zero. With `padded` (padding only; stride 1 or
/// permutes_columns), the rows are read from a zero-bordered copy of each image: plain copies or
/// permutes, no border arithmetic.
template <class G, class T>
void im2col_tile(const T* x, std::size_t first, std::size_t count, T* col, std::size_t ld,
                 PaddedImage<T>* padded = nullptr) {
  constexpr int S = G::stride, P = G::padding, K = G::kernel;
#if defined(__AVX512F__)
  if constexpr (permutes_columns<G, T>) {
    if (padded) return im2col_tile_permute<G>(x, first, count, col, ld, *padded);
  }
#endif
  if constexpr (S == 1 && P > 0) {
    if (padded) {
      for_each_row_run<G>(first, count, [&](std::size_t n, int oy, int ox0, int length, std::size_t offset) {
        const T* image = padded_image<G>(x, n, *padded);
        T* out = col + offset;
        for (int c = 0; c < G::channels; ++c)
          for (int ky = 0; ky < K; ++ky) {
            const T* in = image + (std::size_t(c) * G::padded_height + oy + ky) * G::padded_width + ox0;
            for (int kx = 0; kx < K; ++kx, out += ld) copy_row(in + kx, length, out);
          }
      });
      return;
    }
  }
  for_each_row_run<G>(first, count, [&](std::size_t n, int oy, int ox0, int length, std::size_t offset) {
    const int ox1 = ox0 + length;
    T* out = col + offset;
    for (int c = 0; c < G::channels; ++c) {
      const T* plane = x + n * G::image + std::size_t(c) * G::height * G::width;
      for (int ky = 0; ky < K; ++ky) {
        const int iy = oy * S + ky - P;
        for (int kx = 0; kx < K; ++kx, out += ld) {
          if (iy < 0 || iy >= G::height) {
            zero_row(length, out);
            continue;
          }
          const int lo = std::min(ox1, G::first_inside(kx, ox0)), hi = std::max(lo, G::end_inside(kx, ox1));
          const T* in = plane + iy * G::width + kx - P;  // in[ox·S] is the input of output column ox
          zero_row(lo - ox0, out);
          if constexpr (S == 1) {
            copy_row(in + lo, hi - lo, out + (lo - ox0));
          } else {
            copy_strided_row<S>(in + lo * S, hi - lo, out + (lo - ox0));
          }
          zero_row(ox1 - hi, out + (hi - ox0));
        }
      }
    }
  });
}

/// The adjoint of im2col_tile: adds every entry of col's tile columns onto the input pixel it was
/// read from (entries over the padding are dropped).
template <class G, class T>
void col2im_tile_add(const T* col, std::size_t ld, std::size_t first, std::size_t count, T* x) {
  constexpr int S = G::stride, P = G::padding, K = G::kernel;
  for_each_row_run<G>(first, count, [&](std::size_t n, int oy, int ox0, int length, std::size_t offset) {
    const int ox1 = ox0 + length;
    const T* in = col + offset;
    for (int c = 0; c < G::channels; ++c) {
      T* plane = x + n * G::image + std::size_t(c) * G::height * G::width;
      for (int ky = 0; ky < K; ++ky) {
        const int iy = oy * S + ky - P;
        for (int kx = 0; kx < K; ++kx, in += ld) {
          if (iy < 0 || iy >= G::height) continue;
          const int lo = G::first_inside(kx, ox0), hi = G::end_inside(kx, ox1);
          T* out = plane + iy * G::width + kx - P;
          if constexpr (S == 1) {
            if (hi > lo) add_row(in + (lo - ox0), hi - lo, out + lo);
          } else {
            add_strided_row<S>(in + (lo - ox0), hi - lo, out + lo * S);
          }
        }
      }
    }
  });
}

/// Copies tile columns [first, first + count) of `rows` channels of an NCHW batch (images
/// image_stride values apart, channels `positions` apart, starting at `batch`) into the rows of
/// tile (row r at tile + r·ld): the column matrix of a 1×1 convolution's input.
template <class T>
void gather_tile(const T* batch, std::size_t image_stride, std::size_t positions, std::size_t rows,
                 std::size_t first, std::size_t count, T* tile, std::size_t ld) {
  for (std::size_t done = 0; done < count;) {
    const std::size_t g = first + done, n = g / positions, p = g % positions;
    const std::size_t length = std::min(positions - p, count - done);
    const T* in = batch + n * image_stride + p;
    for (std::size_t r = 0; r < rows; ++r) copy_row(in + r * positions, int(length), tile + r * ld + done);
    done += length;
  }
}

/// The inverse of gather_tile: the rows of tile back into the NCHW batch, each run of a row that
/// lies in one image stored by store(row, run, length, offset of its first value from batch).
template <class T, class Store>
void scatter_tile(const T* tile, std::size_t ld, std::size_t image_stride, std::size_t positions, std::size_t rows,
                  std::size_t first, std::size_t count, Store&& store) {
  for (std::size_t done = 0; done < count;) {
    const std::size_t g = first + done, n = g / positions, p = g % positions;
    const std::size_t length = std::min(positions - p, count - done);
    for (std::size_t r = 0; r < rows; ++r) store(r, tile + r * ld + done, length, n * image_stride + p + r * positions);
    done += length;
  }
}

}  // namespace ctnn::kernels
