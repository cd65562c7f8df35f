// IDX datasets (the format of MNIST and Fashion-MNIST), raw or gzip-compressed. Every header is
// checked against the model's compile-time input shape and against the bytes really present
// before anything is allocated from it, so a corrupt or hostile file fails with a message instead
// of a multi-gigabyte allocation.
//
// Needs zlib (link ctnn::io).
#pragma once

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "ctnn/batch.hpp"
#include "ctnn/io/atomic_file.hpp"
#include "ctnn/io/error.hpp"
#include "ctnn/shape.hpp"

namespace ctnn {

/// Thrown for a dataset file that cannot be read or is not what it must be (an io_error).
/// what() is "<file>: <problem>"; file() names the offending file (or directory).
class DatasetError : public io_error {
 public:
  DatasetError(const std::filesystem::path& file, const std::string& problem)
      : io_error(file.string() + ": " + problem), file_(file) {}
  const std::filesystem::path& file() const noexcept { return file_; }

 private:
  std::filesystem::path file_;
};

namespace idx_detail {

inline constexpr std::uint32_t images_magic = 0x00000803;  // unsigned byte, 3 dimensions
inline constexpr std::uint32_t labels_magic = 0x00000801;  // unsigned byte, 1 dimension
// deflate compresses at best about 1032:1, so a gzip file of n bytes inflates to at most this × n.
inline constexpr std::uint64_t max_inflate_ratio = 1032;

inline std::string hex32(std::uint32_t v) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%08X", v);
  return text;
}

inline std::string hex8(std::uint8_t v) {
  char text[8];
  std::snprintf(text, sizeof text, "0x%02X", unsigned(v));
  return text;
}

inline std::string plural(std::uint64_t n, const char* noun) {
  return std::to_string(n) + " " + noun + (n == 1 ? "" : "s");
}

/// A forward-only byte stream over a file that is either raw or gzip (detected by 1f 8b).
/// Concatenated gzip members are read as one stream, as gzip -d does; anything else after the
/// last member is an error rather than silently ignored.
class Input {
 public:
  explicit Input(std::filesystem::path path) : path_(std::move(path)) {
    std::error_code ec;
    const auto status = std::filesystem::status(path_, ec);
    if (!std::filesystem::exists(status)) throw DatasetError(path_, "file does not exist");
    if (!std::filesystem::is_regular_file(status)) throw DatasetError(path_, "not a regular file");
    file_size_ = std::filesystem::file_size(path_, ec);
    if (ec) throw DatasetError(path_, "cannot read the file size: " + ec.message());
    file_.open(path_, std::ios::binary);
    if (!file_) throw DatasetError(path_, std::string("cannot open: ") + std::strerror(errno));
    std::array<char, 2> magic{};
    file_.read(magic.data(), 2);
    gzip_ = file_.gcount() == 2 && std::uint8_t(magic[0]) == 0x1f && std::uint8_t(magic[1]) == 0x8b;
    file_.clear();
    file_.seekg(0);
    if (gzip_) {
      in_.resize(64 * 1024);
      if (inflateInit2(&z_, 15 + 16) != Z_OK) throw DatasetError(path_, "zlib could not be initialised");
      z_open_ = true;
    }
  }
  Input(const Input&) = delete;
  Input& operator=(const Input&) = delete;
  ~Input() {
    if (z_open_) inflateEnd(&z_);
  }

  const std::filesystem::path& path() const { return path_; }
  bool gzip() const { return gzip_; }
  std::uint64_t file_size() const { return file_size_; }

  /// Reads up to n bytes into out; fewer only at the end of the data.
  std::size_t read(std::uint8_t* out, std::size_t n) {
    return gzip_ ? inflate_some(out, n) : read_raw(out, n);
  }

  /// Reads and counts the bytes left (stopping once `limit` is reached): measures a gzip payload
  /// without storing it.
  std::uint64_t count_remaining(std::uint64_t limit) {
    std::vector<std::uint8_t> scratch(64 * 1024);
    std::uint64_t total = 0;
    while (total < limit) {
      const std::size_t got = read(scratch.data(), scratch.size());
      if (got == 0) break;
      total += got;
    }
    return total;
  }

 private:
  std::size_t read_raw(std::uint8_t* out, std::size_t n) {
    file_.read(reinterpret_cast<char*>(out), std::streamsize(n));
    if (file_.bad()) throw DatasetError(path_, std::string("read error: ") + std::strerror(errno));
    return std::size_t(file_.gcount());
  }

  bool refill() {
    if (z_.avail_in > 0) return true;
    file_.read(reinterpret_cast<char*>(in_.data()), std::streamsize(in_.size()));
    if (file_.bad()) throw DatasetError(path_, std::string("read error: ") + std::strerror(errno));
    z_.next_in = in_.data();
    z_.avail_in = uInt(file_.gcount());
    return z_.avail_in > 0;
  }

  std::size_t inflate_some(std::uint8_t* out, std::size_t n) {
    std::size_t produced = 0;
    while (produced < n) {
      if (member_done_) {
        if (!refill()) return produced;  // clean end after a complete member
        if (z_.next_in[0] != 0x1f)
          throw DatasetError(path_, "unexpected bytes after the end of the gzip stream");
        inflateReset(&z_);
        member_done_ = false;
      }
      if (!refill())
        throw DatasetError(path_, "truncated gzip stream (the compressed data ends before the gzip trailer)");
      z_.next_out = out + produced;
      z_.avail_out = uInt(std::min<std::size_t>(n - produced, UINT_MAX));
      const uInt before = z_.avail_out;
      const int ret = inflate(&z_, Z_NO_FLUSH);
      produced += before - z_.avail_out;
      if (ret == Z_STREAM_END) {
        member_done_ = true;
      } else if (ret == Z_DATA_ERROR || ret == Z_NEED_DICT) {
        throw DatasetError(path_, std::string("corrupt gzip data: ") + (z_.msg ? z_.msg : "invalid deflate stream"));
      } else if (ret == Z_MEM_ERROR) {
        throw DatasetError(path_, "out of memory while decompressing");
      } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
        throw DatasetError(path_, "zlib error " + std::to_string(ret) + " while decompressing");
      }
    }
    return produced;
  }

  std::filesystem::path path_;
  std::ifstream file_;
  std::uint64_t file_size_ = 0;
  bool gzip_ = false;
  z_stream z_{};
  bool z_open_ = false;
  bool member_done_ = false;
  std::vector<std::uint8_t> in_;
};

struct Header {
  std::vector<std::uint32_t> dims;
  std::uint64_t bytes = 0;  // header length in the (decompressed) stream
};

/// Reads and checks the magic number and dimension sizes of an IDX file of unsigned bytes.
inline Header read_header(Input& in, std::uint32_t expected_magic, const char* kind) {
  const unsigned expected_dims = expected_magic & 0xff;
  const std::string expected = std::string("an IDX ") + kind + " file starts with magic number " + hex32(expected_magic);
  std::array<std::uint8_t, 4> m{};
  const std::size_t got = in.read(m.data(), 4);
  if (got < 4)
    throw DatasetError(in.path(), "too short for an IDX header (" + plural(got, "byte") + "); " + expected);
  const std::uint32_t magic = std::uint32_t(m[0]) << 24 | std::uint32_t(m[1]) << 16 | std::uint32_t(m[2]) << 8 | m[3];
  if (m[0] != 0 || m[1] != 0)
    throw DatasetError(in.path(), "not an IDX file: magic number " + hex32(magic) + " (" + expected + ")");
  if (m[2] != 0x08)
    throw DatasetError(in.path(), "magic number " + hex32(magic) + " declares element type " + hex8(m[2]) +
                                      ", but only unsigned bytes (0x08) are supported (" + expected + ")");
  if (m[3] != expected_dims) {
    std::string hint;
    if (m[3] == 1) hint = " - is this a label file?";
    if (m[3] == 3) hint = " - is this an image file?";
    throw DatasetError(in.path(), "magic number " + hex32(magic) + " declares " + plural(m[3], "dimension") + ", but " +
                                      expected + " (" + plural(expected_dims, "dimension") + ")" + hint);
  }
  Header h;
  std::array<std::uint8_t, 4 * 3> raw{};
  const std::size_t want = 4 * expected_dims;
  if (in.read(raw.data(), want) < want)
    throw DatasetError(in.path(), "truncated header: ends before its " + plural(expected_dims, "dimension size"));
  for (unsigned d = 0; d < expected_dims; ++d) {
    const std::uint8_t* b = raw.data() + 4 * d;
    h.dims.push_back(std::uint32_t(b[0]) << 24 | std::uint32_t(b[1]) << 16 | std::uint32_t(b[2]) << 8 | b[3]);
  }
  h.bytes = 4 + want;
  return h;
}

/// Reads exactly `expected` payload bytes and proves that nothing follows them, allocating only
/// once the length is proven. A raw file is measured; a gzip stream is first inflated into a
/// small scratch buffer just to count its bytes (and check its CRC), then inflated again
/// straight into the result. Inflating twice costs less than growing a buffer as data arrives,
/// and memory is never committed to a promise the file does not keep.
inline std::vector<std::uint8_t> read_payload(Input& in, std::uint64_t header_bytes, std::uint64_t expected,
                                              const std::string& promise, const char* unit_name) {
  auto truncated = [&](const std::string& what_is_there) {
    return DatasetError(in.path(), "truncated: the header promises " + promise + " (" + plural(expected, "byte") +
                                       " after the header) but " + what_is_there);
  };
  auto trailing = [&](std::uint64_t extra, bool at_least) {
    return DatasetError(in.path(), (at_least ? "more than " : "") + plural(extra, "unexpected byte") +
                                       " after the last " + unit_name + " (the header promises " + promise + ")");
  };
  constexpr std::uint64_t trailing_report_limit = std::uint64_t{1} << 24;  // enough to say "more than"
  if (!in.gzip()) {
    const std::uint64_t present = in.file_size() - std::min(in.file_size(), header_bytes);
    if (present < expected) throw truncated("only " + plural(present, "byte") + " follow");
    if (present > expected) throw trailing(present - expected, false);
    std::vector<std::uint8_t> data(std::size_t(expected), 0);
    const std::size_t got = in.read(data.data(), data.size());
    if (got < expected) throw truncated("only " + plural(got, "byte") + " could be read (the file changed while being read)");
    return data;
  }
  if (expected > in.file_size() * max_inflate_ratio)
    throw DatasetError(in.path(), "the header promises " + promise + " (" + plural(expected, "byte") +
                                      "), more than a gzip file of " + plural(in.file_size(), "byte") +
                                      " can hold: the header is corrupt");
  const std::uint64_t present = in.count_remaining(expected + trailing_report_limit);
  if (present < expected) throw truncated("the decompressed data holds only " + plural(present, "byte"));
  if (present > expected) throw trailing(present - expected, present - expected >= trailing_report_limit);

  Input again(in.path());
  std::array<std::uint8_t, 16> skipped{};
  if (header_bytes > skipped.size() || again.read(skipped.data(), std::size_t(header_bytes)) != header_bytes)
    throw DatasetError(in.path(), "the file changed while being read");
  std::vector<std::uint8_t> data(std::size_t(expected), 0);
  if (again.read(data.data(), data.size()) != expected || again.count_remaining(1) != 0)
    throw DatasetError(in.path(), "the file changed while being read");
  return data;
}

inline std::vector<std::uint8_t> gzip_compress(const std::filesystem::path& file, std::span<const std::uint8_t> raw) {
  z_stream z{};
  if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw DatasetError(file, "zlib could not be initialised");
  std::vector<std::uint8_t> out(deflateBound(&z, uLong(raw.size())));
  z.next_in = const_cast<Bytef*>(raw.data());
  z.avail_in = uInt(raw.size());
  z.next_out = out.data();
  z.avail_out = uInt(out.size());
  const int ret = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (ret != Z_STREAM_END) throw DatasetError(file, "gzip compression failed");
  return out;
}

inline bool has_gz_extension(const std::filesystem::path& file) { return file.extension() == ".gz"; }

inline void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(std::uint8_t(v >> shift));
}

inline void write_idx(const std::filesystem::path& file, std::uint32_t magic, std::span<const std::uint32_t> dims,
                      std::span<const std::uint8_t> payload) {
  if (payload.size() > UINT_MAX)  // zlib's single-call sizes are 32-bit; IDX counts are too
    throw DatasetError(file, "too much data for one IDX file");
  std::vector<std::uint8_t> bytes;
  bytes.reserve(4 + 4 * dims.size() + payload.size());
  put_u32(bytes, magic);
  for (std::uint32_t d : dims) put_u32(bytes, d);
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  if (has_gz_extension(file)) bytes = gzip_compress(file, bytes);
  AtomicFile out(file);  // readers never see a half-written dataset
  out.write(bytes.data(), bytes.size());
  out.commit();
}

}  // namespace idx_detail

/// Images of shape S (one channel) with class labels, as stored in IDX files: pixels are bytes,
/// image after image, row-major; fill_batch() converts them to floats in [0, 1].
/// PyTorch: torchvision.datasets.MNIST with transform=ToTensor() (no normalisation).
template <ShapeType S>
struct ImageDataset {
  static_assert(S::channels == 1, "ImageDataset: IDX images have one channel; the model's input must be Shape<1, H, W>");
  using shape = S;

  std::vector<std::uint8_t> pixels;  // size() * S::size bytes
  std::vector<int> labels;           // each in [0, classes)
  int classes = 0;

  std::size_t size() const { return labels.size(); }
  std::span<const std::uint8_t> image(std::size_t i) const { return {pixels.data() + i * S::size, S::size}; }

  /// Copies the images at `indices` into `images` (resized to indices.size()) as pixel/255 and
  /// their labels into `batch_labels`. Throws std::out_of_range for an index >= size().
  /// PyTorch: one DataLoader batch of ToTensor() images (x / 255 in float32).
  template <class T>
  void fill_batch(std::span<const std::size_t> indices, Batch<S, T>& images, std::vector<int>& batch_labels) const {
    static const auto table = [] {
      std::array<T, 256> t{};
      for (int v = 0; v < 256; ++v) t[v] = T(v) / T(255);  // division, not ×(1/255): bitwise what ToTensor gives
      return t;
    }();
    images.resize(indices.size());
    batch_labels.resize(indices.size());
    for (std::size_t n = 0; n < indices.size(); ++n) {
      const std::size_t i = indices[n];
      if (i >= size())
        throw std::out_of_range("ImageDataset::fill_batch: index " + std::to_string(i) + " in a dataset of " +
                                std::to_string(size()) + " images");
      const std::uint8_t* src = pixels.data() + i * S::size;
      T* dst = images.image(n);
      for (std::size_t k = 0; k < S::size; ++k) dst[k] = table[src[k]];
      batch_labels[n] = labels[i];
    }
  }
};

/// Loads an IDX image file (magic 0x00000803, raw or .gz) and its IDX label file (0x00000801).
/// Throws DatasetError naming the file if a magic number, the image size (must be S's height ×
/// width), the counts, a label (must be in [0, classes)) or the file length is wrong.
/// PyTorch: torchvision.datasets.MNIST's read_image_file / read_label_file, with checks.
template <ShapeType S>
ImageDataset<S> load_idx_dataset(const std::filesystem::path& images_path, const std::filesystem::path& labels_path,
                                 int classes) {
  static_assert(S::channels == 1, "load_idx_dataset: IDX images have one channel; the input shape must be Shape<1, H, W>");
  if (classes < 1 || classes > 256)
    throw std::invalid_argument("load_idx_dataset: classes must be in [1, 256], got " + std::to_string(classes));
  using namespace idx_detail;

  // Both headers are checked before either payload is read: a mismatch costs no decompression.
  Input images(images_path);
  const Header ih = read_header(images, images_magic, "image");
  if (ih.dims[1] != std::uint32_t(S::height) || ih.dims[2] != std::uint32_t(S::width))
    throw DatasetError(images_path, "images are " + std::to_string(ih.dims[1]) + "x" + std::to_string(ih.dims[2]) +
                                        " (rows x columns) but the model's input shape " + shape_string<S>() +
                                        " needs " + std::to_string(S::height) + "x" + std::to_string(S::width));
  Input labels(labels_path);
  const Header lh = read_header(labels, labels_magic, "label");
  const std::uint64_t count = ih.dims[0];
  if (lh.dims[0] != count)
    throw DatasetError(images_path, "holds " + plural(count, "image") + " but its label file " + labels_path.string() +
                                        " holds " + plural(lh.dims[0], "label"));

  ImageDataset<S> data;
  data.classes = classes;
  const std::string image_promise = plural(count, "image") + " of " + std::to_string(S::height) + "x" +
                                    std::to_string(S::width);
  data.pixels = read_payload(images, ih.bytes, count * S::size, image_promise, "image");
  const std::vector<std::uint8_t> raw_labels = read_payload(labels, lh.bytes, count, plural(count, "label"), "label");
  data.labels.resize(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (raw_labels[i] >= classes)
      throw DatasetError(labels_path, "label " + std::to_string(raw_labels[i]) + " of sample " + std::to_string(i) +
                                          " is outside [0, " + std::to_string(classes) + ")");
    data.labels[i] = raw_labels[i];
  }
  return data;
}

/// The training and test sets of an MNIST-style directory.
template <ShapeType S>
struct TrainTestSets {
  ImageDataset<S> train;
  ImageDataset<S> test;
};

/// Loads `dir`/{train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte,
/// t10k-labels-idx1-ubyte}, each raw or with ".gz" (raw wins when both exist). Throws
/// DatasetError listing every missing file. PyTorch: MNIST(root, train=True/False) on raw files.
template <ShapeType S>
TrainTestSets<S> load_mnist_directory(const std::filesystem::path& dir, int classes = 10) {
  static constexpr std::array<const char*, 4> names = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                                       "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec))
    throw DatasetError(dir, std::filesystem::exists(dir, ec) ? "not a directory" : "directory does not exist");
  std::array<std::filesystem::path, 4> found;
  std::string missing;
  for (std::size_t i = 0; i < names.size(); ++i) {
    const std::filesystem::path raw = dir / names[i];
    const std::filesystem::path gz = dir / (std::string(names[i]) + ".gz");
    if (std::filesystem::exists(raw, ec))
      found[i] = raw;
    else if (std::filesystem::exists(gz, ec))
      found[i] = gz;
    else
      missing += std::string(missing.empty() ? "" : ", ") + names[i] + "[.gz]";
  }
  if (!missing.empty())
    throw DatasetError(dir, "missing " + missing +
                                " (an MNIST-style directory holds train-images-idx3-ubyte, train-labels-idx1-ubyte, "
                                "t10k-images-idx3-ubyte and t10k-labels-idx1-ubyte, each raw or .gz; "
                                "scripts/get-mnist DIR writes them)");
  return {load_idx_dataset<S>(found[0], found[1], classes), load_idx_dataset<S>(found[2], found[3], classes)};
}

/// Writes an IDX image file (magic 0x00000803) of pixels.size() / (rows·cols) images, gzip if
/// `file` ends in ".gz", atomically (AtomicFile). Throws io_error if the file cannot be written.
/// PyTorch has no writer; the layout is the one torchvision's MNIST reads.
inline void write_idx_images(const std::filesystem::path& file, std::span<const std::uint8_t> pixels, int rows,
                             int cols) {
  if (rows <= 0 || cols <= 0) throw std::invalid_argument("write_idx_images: rows and columns must be positive");
  const std::size_t per_image = std::size_t(rows) * std::size_t(cols);
  if (pixels.size() % per_image != 0)
    throw std::invalid_argument("write_idx_images: " + std::to_string(pixels.size()) + " pixels is not a whole number of " +
                                std::to_string(rows) + "x" + std::to_string(cols) + " images");
  const std::array<std::uint32_t, 3> dims = {std::uint32_t(pixels.size() / per_image), std::uint32_t(rows),
                                             std::uint32_t(cols)};
  idx_detail::write_idx(file, idx_detail::images_magic, dims, pixels);
}

/// Writes an IDX label file (magic 0x00000801); labels must be in [0, 255]. Gzip if `file` ends
/// in ".gz"; atomic. PyTorch has no writer; torchvision's MNIST reads the result.
inline void write_idx_labels(const std::filesystem::path& file, std::span<const int> labels) {
  std::vector<std::uint8_t> bytes(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] < 0 || labels[i] > 255)
      throw std::invalid_argument("write_idx_labels: label " + std::to_string(labels[i]) + " at index " +
                                  std::to_string(i) + " does not fit in a byte");
    bytes[i] = std::uint8_t(labels[i]);
  }
  const std::array<std::uint32_t, 1> dims = {std::uint32_t(labels.size())};
  idx_detail::write_idx(file, idx_detail::labels_magic, dims, bytes);
}

/// Writes a dataset as an image file and a label file (see write_idx_images / write_idx_labels).
template <ShapeType S>
void write_idx_dataset(const ImageDataset<S>& data, const std::filesystem::path& images_path,
                       const std::filesystem::path& labels_path) {
  write_idx_images(images_path, data.pixels, S::height, S::width);
  write_idx_labels(labels_path, data.labels);
}

}  // namespace ctnn
