// libFuzzer target for the safetensors reader and checkpoint loading
// (include/ctnn/io/safetensors.hpp, include/ctnn/io/checkpoint.hpp).
//
// Each input is one whole safetensors file. It is parsed from memory and, through a memfd, read
// from a path as well: the two readers must agree (same tensors, or both reject). A file that
// parses must survive an encode/parse round trip unchanged, its tensors must convert, and it is
// then loaded, strictly and not, into two models: a tiny one whose whole state fits in a seed file
// (so the fuzzer can reach a complete load) and the MNIST network (a real model's names).
// Only ctnn::io_error is an accepted outcome; anything else is a finding.
#include <sys/mman.h>
#include <unistd.h>

#include <ctnn/ctnn.hpp>
#include <ctnn/io/checkpoint.hpp>
#include <ctnn/io/safetensors.hpp>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace {

// conv.weight [2,1,3,3], bn.{weight,bias,running_mean,running_var} [2], bn.num_batches_tracked [],
// fc.{weight [3,2], bias [3]}: every kind of state entry (parameter, buffer, counter) in 8 tensors.
struct TinyNet : ctnn::Sequential<ctnn::Named<"conv", ctnn::Conv2d<1, 2, 3, 1, 1>>,
                                  ctnn::Named<"bn", ctnn::BatchNorm2d<2>>, ctnn::ReLU,
                                  ctnn::Named<"pool", ctnn::AvgPool2d<4>>, ctnn::Named<"flatten", ctnn::Flatten>,
                                  ctnn::Named<"fc", ctnn::Linear<2, 3>>> {};
using Tiny = ctnn::Model<TinyNet, ctnn::Shape<1, 4, 4>>;
using Mnist = ctnn::Model<ctnn::MnistResNet18<>, ctnn::Shape<1, 28, 28>>;

bool same_tensors(const ctnn::SafetensorsFile& a, const ctnn::SafetensorsFile& b) {
  if (a.metadata != b.metadata || a.tensors.size() != b.tensors.size()) return false;
  for (std::size_t i = 0; i < a.tensors.size(); ++i) {
    const auto &x = a.tensors[i], &y = b.tensors[i];
    if (x.name != y.name || x.dtype != y.dtype || x.shape != y.shape || x.bytes != y.bytes) return false;
  }
  return true;
}

std::optional<ctnn::SafetensorsFile> read_through_memfd(const std::uint8_t* data, std::size_t size) {
  static const int fd = [] {
    const int f = ::memfd_create("ctnn-fuzz-safetensors", MFD_CLOEXEC);
    if (f < 0) std::abort();
    return f;
  }();
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  if (::ftruncate(fd, 0) != 0) std::abort();
  for (std::size_t done = 0; done < size;) {
    const ::ssize_t n = ::pwrite(fd, data + done, size - done, ::off_t(done));
    if (n <= 0) std::abort();
    done += std::size_t(n);
  }
  try {
    return ctnn::read_safetensors(path);
  } catch (const ctnn::io_error&) {
    return std::nullopt;
  }
}

void check_conversions(const ctnn::SafetensorsFile& file) {
  for (const auto& t : file.tensors) {
    const auto count = ctnn::checked_element_count(t.shape);
    if (!count || *count != t.numel() || t.bytes.size() != t.numel() * ctnn::dtype_size(t.dtype)) std::abort();
    try {
      if (ctnn::is_floating(t.dtype)) (void)ctnn::as_float(t);
      else if (ctnn::is_integer(t.dtype)) (void)ctnn::as_int64(t);
    } catch (const ctnn::io_error&) {
      // U64 values above INT64_MAX are refused with a message.
    }
  }
}

// A report accounts for every model entry exactly once.
template <class M>
void check_report(M& model, const ctnn::LoadReport& report) {
  if (report.loaded.size() + report.missing.size() + report.mismatched.size() != model.state_names().size())
    std::abort();
}

template <class M>
void load_into(M& model, const ctnn::SafetensorsFile& file) {
  try {
    const ctnn::LoadReport report = ctnn::load(model, file, ctnn::LoadOptions{.strict = true});
    if (!report.complete()) std::abort();
    check_report(model, report);
  } catch (const ctnn::io_error&) {
    // A file that does not match the model exactly.
  }
  // A non-strict load of a file that parsed reports what it cannot use instead of throwing, so an
  // io_error escaping here is a finding too.
  check_report(model, ctnn::load(model, file, ctnn::LoadOptions{.strict = false}));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static Tiny tiny(1);
  static Mnist mnist(1);
  const auto bytes = std::as_bytes(std::span<const std::uint8_t>(data, size));

  std::optional<ctnn::SafetensorsFile> parsed;
  try {
    parsed = ctnn::parse_safetensors(bytes, "fuzz-input");
  } catch (const ctnn::io_error&) {
  }
  const std::optional<ctnn::SafetensorsFile> read = read_through_memfd(data, size);
  if (parsed.has_value() != read.has_value()) std::abort();
  if (!parsed) return 0;
  if (!same_tensors(*parsed, *read)) std::abort();

  // Writing what was read and reading it back must give the same file contents.
  const std::vector<ctnn::TensorView> views(parsed->tensors.begin(), parsed->tensors.end());
  const std::vector<std::byte> encoded = ctnn::encode_safetensors(views, parsed->metadata);
  if (!same_tensors(*parsed, ctnn::parse_safetensors(encoded, "re-encoded"))) std::abort();

  check_conversions(*parsed);
  load_into(tiny, *parsed);
  load_into(mnist, *parsed);
  return 0;
}
