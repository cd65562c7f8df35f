// libFuzzer target for the IDX reader (include/ctnn/io/idx.hpp).
//
// The first input byte picks the mode, the rest is one IDX file:
//   bit 0  0: the bytes are the image file (idx3)    1: the bytes are the label file (idx1)
//   bit 1  0: written as given (the fuzzer may still write gzip itself, 1f 8b ...)
//          1: gzip-compressed by this harness first, so header and payload mutations reach the
//             reader through the gzip path too
//   bit 2  0: a 4x4 input shape (small enough for many images per input)   1: MNIST's 28x28
//   bit 3  0: 10 classes    1: 256 classes
// The other file of the pair is built to agree with the fuzzed file's claimed count (when that is
// small), so a plausible header gets past the count cross-check and into the payload checks.
//
// The reader takes paths, so both files live in memfds named by /proc/self/fd/N: the real
// path-based code (including its second open of a gzip file) runs, and nothing touches the disk.
// Only ctnn::io_error (DatasetError) is an accepted outcome; anything else is a finding.
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

#include <ctnn/io/idx.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

// An anonymous in-memory file reused for every input.
class MemFile {
 public:
  explicit MemFile(const char* name) : fd_(::memfd_create(name, MFD_CLOEXEC)) {
    if (fd_ < 0) std::abort();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  void assign(const std::uint8_t* data, std::size_t size) {
    if (::ftruncate(fd_, 0) != 0) std::abort();
    std::size_t done = 0;
    while (done < size) {
      const ::ssize_t n = ::pwrite(fd_, data + done, size - done, ::off_t(done));
      if (n <= 0) std::abort();
      done += std::size_t(n);
    }
  }
  void assign(const std::vector<std::uint8_t>& bytes) { assign(bytes.data(), bytes.size()); }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

std::vector<std::uint8_t> gzip(const std::uint8_t* data, std::size_t size) {
  z_stream z{};
  if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) std::abort();
  std::vector<std::uint8_t> out(deflateBound(&z, uLong(size)));
  z.next_in = const_cast<Bytef*>(data);
  z.avail_in = uInt(size);
  z.next_out = out.data();
  z.avail_out = uInt(out.size());
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) std::abort();
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(std::uint8_t(v >> shift));
}

// The count a (raw) IDX header claims, or a default when the bytes are too short or gzip.
std::uint32_t claimed_count(const std::uint8_t* data, std::size_t size) {
  if (size < 8 || (data[0] == 0x1f && data[1] == 0x8b)) return 2;
  return std::uint32_t(data[4]) << 24 | std::uint32_t(data[5]) << 16 | std::uint32_t(data[6]) << 8 | data[7];
}

// A well-formed partner file for `count` samples; a huge count gets a header-only file, which
// still reaches the "counts differ" or "truncated" checks without costing memory here.
std::vector<std::uint8_t> partner(bool images, std::uint32_t count, int height, int width) {
  constexpr std::uint32_t max_built = 4096;
  std::vector<std::uint8_t> out;
  put_u32(out, images ? 0x803 : 0x801);
  put_u32(out, count);
  if (images) {
    put_u32(out, std::uint32_t(height));
    put_u32(out, std::uint32_t(width));
  }
  if (count <= max_built) out.resize(out.size() + std::size_t(count) * (images ? height * width : 1), 0);
  return out;
}

template <class S>
void load_pair(const MemFile& images, const MemFile& labels, int classes) {
  try {
    const ctnn::ImageDataset<S> data = ctnn::load_idx_dataset<S>(images.path(), labels.path(), classes);
    // A dataset that loaded must be internally consistent: every image and label is usable.
    if (data.pixels.size() != data.size() * S::size) std::abort();
    std::vector<std::size_t> all(data.size());
    for (std::size_t i = 0; i < all.size(); ++i) all[i] = i;
    ctnn::Batch<S, float> batch;
    std::vector<int> batch_labels;
    data.fill_batch(std::span<const std::size_t>(all), batch, batch_labels);
    for (int label : batch_labels)
      if (label < 0 || label >= classes) std::abort();
  } catch (const ctnn::io_error&) {
    // The documented outcome for a bad file.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static MemFile images("ctnn-fuzz-images");
  static MemFile labels("ctnn-fuzz-labels");
  if (size < 1) return 0;
  const std::uint8_t mode = data[0];
  ++data;
  --size;
  const bool fuzz_labels = mode & 1, compress = mode & 2, mnist = mode & 4;
  const int classes = (mode & 8) ? 256 : 10;
  const int side = mnist ? 28 : 4;

  MemFile& fuzzed = fuzz_labels ? labels : images;
  MemFile& other = fuzz_labels ? images : labels;
  if (compress) fuzzed.assign(gzip(data, size));
  else fuzzed.assign(data, size);
  other.assign(partner(fuzz_labels, claimed_count(data, size), side, side));

  if (mnist) load_pair<ctnn::Shape<1, 28, 28>>(images, labels, classes);
  else load_pair<ctnn::Shape<1, 4, 4>>(images, labels, classes);
  return 0;
}
