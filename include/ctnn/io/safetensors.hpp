// The safetensors format (https://github.com/huggingface/safetensors), read and written.
//
//   [8 bytes: header length N, little-endian u64][N bytes: JSON header][data section]
//
// The header maps tensor names to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// relative to the data section) plus an optional "__metadata__" string->string map. Files are
// treated as untrusted: every size and offset is checked against the real file before it is used,
// so a corrupt or hostile file gives an io_error naming the file, the tensor and the problem —
// never a crash, a hang or an allocation sized by the file's claims.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ctnn/io/atomic_file.hpp"
#include "ctnn/io/error.hpp"

namespace ctnn {

// The format is little-endian; so is every platform ctnn targets, which lets data move by memcpy.
static_assert(std::endian::native == std::endian::little, "ctnn's safetensors I/O assumes a little-endian host");

/// Element types of the safetensors format that ctnn can read and write (the 8-bit float types
/// F8_E4M3 / F8_E5M2 are rejected as unsupported).
enum class Dtype { BOOL, U8, I8, I16, U16, I32, U32, I64, U64, F16, BF16, F32, F64 };

/// The format's spelling of a dtype ("F32", "BF16", ...).
constexpr std::string_view dtype_name(Dtype d) {
  switch (d) {
    case Dtype::BOOL: return "BOOL";
    case Dtype::U8: return "U8";
    case Dtype::I8: return "I8";
    case Dtype::I16: return "I16";
    case Dtype::U16: return "U16";
    case Dtype::I32: return "I32";
    case Dtype::U32: return "U32";
    case Dtype::I64: return "I64";
    case Dtype::U64: return "U64";
    case Dtype::F16: return "F16";
    case Dtype::BF16: return "BF16";
    case Dtype::F32: return "F32";
    case Dtype::F64: return "F64";
  }
  return "?";
}

/// Bytes per element.
constexpr std::size_t dtype_size(Dtype d) {
  switch (d) {
    case Dtype::BOOL: case Dtype::U8: case Dtype::I8: return 1;
    case Dtype::I16: case Dtype::U16: case Dtype::F16: case Dtype::BF16: return 2;
    case Dtype::I32: case Dtype::U32: case Dtype::F32: return 4;
    case Dtype::I64: case Dtype::U64: case Dtype::F64: return 8;
  }
  return 0;
}

constexpr bool is_floating(Dtype d) { return d == Dtype::F16 || d == Dtype::BF16 || d == Dtype::F32 || d == Dtype::F64; }
constexpr bool is_integer(Dtype d) { return !is_floating(d) && d != Dtype::BOOL; }

/// The dtype a name spells, or nothing if ctnn does not know it.
inline std::optional<Dtype> dtype_from_name(std::string_view name) {
  for (Dtype d : {Dtype::BOOL, Dtype::U8, Dtype::I8, Dtype::I16, Dtype::U16, Dtype::I32, Dtype::U32, Dtype::I64,
                  Dtype::U64, Dtype::F16, Dtype::BF16, Dtype::F32, Dtype::F64})
    if (dtype_name(d) == name) return d;
  return std::nullopt;
}

/// "[2, 3]" (and "[]" for a 0-d tensor), for messages.
inline std::string dims_string(std::span<const std::int64_t> shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

/// Element count of a shape, or nothing if it overflows 64 bits (or a dimension is negative).
inline std::optional<std::uint64_t> checked_element_count(std::span<const std::int64_t> shape) {
  std::uint64_t n = 1;
  bool empty = false, overflow = false;
  for (const std::int64_t d : shape) {
    if (d < 0) return std::nullopt;
    if (d == 0) empty = true;
    else if (__builtin_mul_overflow(n, std::uint64_t(d), &n)) overflow = true;
  }
  if (empty) return 0;  // [2^62, 4, 0] holds nothing, however large its other dimensions
  if (overflow) return std::nullopt;
  return n;
}

/// One tensor as stored: raw little-endian bytes of `dtype`, row-major in `shape`.
struct TensorEntry {
  std::string name;
  Dtype dtype = Dtype::F32;
  std::vector<std::int64_t> shape;  // empty for a 0-d (scalar) tensor
  std::vector<std::byte> bytes;

  std::size_t numel() const { return bytes.size() / dtype_size(dtype); }
};

/// A tensor to write, referring to memory the caller keeps alive until the write returns
/// (so a model's weights are written without first being copied).
struct TensorView {
  std::string_view name;
  Dtype dtype = Dtype::F32;
  std::span<const std::int64_t> shape;
  std::span<const std::byte> bytes;

  TensorView() = default;
  TensorView(std::string_view n, Dtype d, std::span<const std::int64_t> s, std::span<const std::byte> b)
      : name(n), dtype(d), shape(s), bytes(b) {}
  TensorView(const TensorEntry& e) : name(e.name), dtype(e.dtype), shape(e.shape), bytes(e.bytes) {}  // NOLINT
};

/// The contents of a safetensors file: its metadata and its tensors in storage order.
struct SafetensorsFile {
  std::string source;  // the path it came from, for messages
  std::map<std::string, std::string> metadata;
  std::vector<TensorEntry> tensors;

  /// The tensor called `name`, or null.
  const TensorEntry* find(std::string_view name) const {
    for (const auto& t : tensors)
      if (t.name == name) return &t;
    return nullptr;
  }
  /// The tensor called `name`; throws io_error naming the file if there is none.
  const TensorEntry& at(std::string_view name) const {
    if (const TensorEntry* t = find(name)) return *t;
    throw io_error(source + ": no tensor '" + std::string(name) + "'");
  }
};

namespace detail {

/// Headers above this size are refused before anything is allocated for them (the reference
/// implementation uses the same bound).
inline constexpr std::uint64_t max_header_size = 100'000'000;
inline constexpr int max_header_depth = 8;              // a valid header nests 3 deep
inline constexpr std::size_t max_array_length = 1024;  // shapes have a handful of dimensions

// Where one tensor lives in the data section, as the header claims and the checks accepted.
struct TensorLayout {
  std::string name;
  Dtype dtype;
  std::vector<std::int64_t> shape;
  std::uint64_t begin, end;
};

struct Header {
  std::map<std::string, std::string> metadata;
  std::vector<TensorLayout> tensors;  // sorted by offset
};

inline std::uint64_t load_u64_le(const unsigned char* p) {
  std::uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

inline io_error header_error(const std::string& source, const std::string& problem) {
  return io_error(source + ": invalid safetensors header: " + problem);
}
inline io_error tensor_error(const std::string& source, const std::string& name, const std::string& problem) {
  return io_error(source + ": tensor '" + name + "': " + problem);
}

// Reads a JSON array of non-negative integers that fit in int64.
inline std::vector<std::int64_t> parse_dims(const nlohmann::json& j, const std::string& source, const std::string& name,
                                            const char* field) {
  if (!j.is_array()) throw tensor_error(source, name, std::string("\"") + field + "\" is not a list of integers");
  std::vector<std::int64_t> dims;
  dims.reserve(j.size());
  for (const auto& v : j) {
    if (v.is_number_unsigned()) {
      const auto u = v.get<std::uint64_t>();
      if (u > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
        throw tensor_error(source, name, std::string("\"") + field + "\" value " + std::to_string(u) + " is too large");
      dims.push_back(std::int64_t(u));
    } else if (v.is_number_integer()) {
      throw tensor_error(source, name,
                         std::string("\"") + field + "\" has a negative value " + std::to_string(v.get<std::int64_t>()));
    } else {
      throw tensor_error(source, name, std::string("\"") + field + "\" holds " + v.dump() + ", not a non-negative integer");
    }
  }
  return dims;
}

/// Parses and checks a header against a data section of `data_size` bytes: known dtypes,
/// non-negative shapes, byte counts that match dtype × shape without overflow, offsets inside
/// the data section, no overlaps, no unclaimed bytes (the format forbids holes), no duplicate keys.
inline Header parse_header(std::string_view text, std::uint64_t data_size, const std::string& source) {
  using json = nlohmann::json;
  // nlohmann keeps the last of duplicate keys silently; a file naming a tensor twice is ambiguous,
  // so the parse callback tracks the keys of every open object and refuses repeats. It also caps
  // array lengths: only shapes and offsets are arrays, and a 100 MB list of zeros would otherwise
  // cost gigabytes as a JSON tree before any check could see it.
  struct Open {
    bool array;
    std::size_t elements = 0;
    std::set<std::string> keys;
  };
  std::vector<Open> open;
  auto count_element = [&] {
    if (!open.empty() && open.back().array && ++open.back().elements > max_array_length)
      throw header_error(source, "a list has more than " + std::to_string(max_array_length) +
                                     " elements (a shape of that rank is not plausible)");
  };
  json::parser_callback_t check = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > max_header_depth) throw header_error(source, "JSON nests deeper than a safetensors header can");
    switch (event) {
      case json::parse_event_t::object_start: count_element(); open.push_back(Open{false, 0, {}}); break;
      case json::parse_event_t::array_start: count_element(); open.push_back(Open{true, 0, {}}); break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end: open.pop_back(); break;
      case json::parse_event_t::value: count_element(); break;
      case json::parse_event_t::key:
        if (!open.back().keys.insert(parsed.get<std::string>()).second)
          throw header_error(source, "key '" + parsed.get<std::string>() + "' appears twice");
        break;
    }
    return true;
  };
  json root;
  try {
    root = json::parse(text.begin(), text.end(), check);
  } catch (const json::exception& e) {
    throw header_error(source, std::string("not valid JSON (") + e.what() + ")");
  }
  if (!root.is_object()) throw header_error(source, "the JSON is a " + std::string(root.type_name()) + ", not an object");

  Header header;
  for (const auto& [key, value] : root.items()) {
    if (key == "__metadata__") {
      if (value.is_null()) continue;
      if (!value.is_object()) throw header_error(source, "\"__metadata__\" is not an object of strings");
      for (const auto& [k, v] : value.items()) {
        if (!v.is_string()) throw header_error(source, "metadata entry '" + k + "' is " + v.dump() + ", not a string");
        header.metadata.emplace(k, v.get<std::string>());
      }
      continue;
    }
    if (!value.is_object()) throw tensor_error(source, key, "entry is not an object with dtype, shape and data_offsets");
    const auto dtype_it = value.find("dtype");
    if (dtype_it == value.end() || !dtype_it->is_string()) throw tensor_error(source, key, "no \"dtype\" string");
    const auto dtype = dtype_from_name(dtype_it->get<std::string>());
    if (!dtype) throw tensor_error(source, key, "unknown or unsupported dtype '" + dtype_it->get<std::string>() + "'");
    const auto shape_it = value.find("shape");
    if (shape_it == value.end()) throw tensor_error(source, key, "no \"shape\"");
    std::vector<std::int64_t> shape = parse_dims(*shape_it, source, key, "shape");
    const auto offsets_it = value.find("data_offsets");
    if (offsets_it == value.end()) throw tensor_error(source, key, "no \"data_offsets\"");
    const std::vector<std::int64_t> offsets = parse_dims(*offsets_it, source, key, "data_offsets");
    if (offsets.size() != 2) throw tensor_error(source, key, "\"data_offsets\" must be [begin, end]");
    const std::uint64_t begin = std::uint64_t(offsets[0]), end = std::uint64_t(offsets[1]);
    if (begin > end)
      throw tensor_error(source, key, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] end before they begin");
    if (end > data_size)
      throw tensor_error(source, key, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                                          "] run past the " + std::to_string(data_size) +
                                          "-byte data section (truncated file?)");
    const auto count = checked_element_count(shape);
    std::uint64_t bytes = 0;
    if (!count || __builtin_mul_overflow(*count, std::uint64_t(dtype_size(*dtype)), &bytes))
      throw tensor_error(source, key, "size of " + std::string(dtype_name(*dtype)) + " " + dims_string(shape) +
                                          " overflows 64 bits");
    if (end - begin != bytes)
      throw tensor_error(source, key, "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] hold " +
                                          std::to_string(end - begin) + " bytes but " +
                                          std::string(dtype_name(*dtype)) + " " + dims_string(shape) + " needs " +
                                          std::to_string(bytes));
    header.tensors.push_back({key, *dtype, std::move(shape), begin, end});
  }

  auto& ts = header.tensors;
  std::sort(ts.begin(), ts.end(), [](const TensorLayout& a, const TensorLayout& b) {
    return std::tie(a.begin, a.end, a.name) < std::tie(b.begin, b.end, b.name);
  });
  std::uint64_t covered = 0;  // the data section is claimed up to here
  const TensorLayout* previous = nullptr;
  for (const auto& t : ts) {
    if (t.begin < covered)
      throw tensor_error(source, t.name, "bytes [" + std::to_string(t.begin) + ", " + std::to_string(t.end) +
                                             ") overlap tensor '" + previous->name + "' [" +
                                             std::to_string(previous->begin) + ", " + std::to_string(previous->end) + ")");
    if (t.begin > covered)
      throw header_error(source, "data bytes [" + std::to_string(covered) + ", " + std::to_string(t.begin) +
                                     ") belong to no tensor (the format forbids holes)");
    covered = t.end;
    if (t.end > t.begin || !previous) previous = &t;
  }
  if (covered != data_size)
    throw header_error(source, "the data section has " + std::to_string(data_size - covered) +
                                   " trailing bytes that belong to no tensor");
  return header;
}

// A file descriptor closed on scope exit.
struct FileHandle {
  int fd = -1;
  ~FileHandle() {
    if (fd >= 0) ::close(fd);
  }
};

// Reads exactly `size` bytes at `offset`; a short read means the file shrank under us.
inline void read_at(int fd, std::byte* out, std::size_t size, std::uint64_t offset, const std::string& source,
                    const std::string& what) {
  while (size > 0) {
    const ::ssize_t n = ::pread(fd, out, size, ::off_t(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw io_error(source + ": reading " + what + " failed (" + errno_text(errno) + ")");
    if (n == 0) throw io_error(source + ": file ended while reading " + what + " (truncated or changed while reading)");
    out += n;
    size -= std::size_t(n);
    offset += std::uint64_t(n);
  }
}

inline std::string build_header(std::span<const TensorView> tensors, const std::map<std::string, std::string>& metadata,
                                 const std::string& target) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();  // keeps the caller's tensor order
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::set<std::string_view> names;
  std::uint64_t offset = 0;
  for (const auto& t : tensors) {
    const std::string name(t.name);
    if (name == "__metadata__") throw io_error(target + ": '__metadata__' cannot be a tensor name");
    if (!names.insert(t.name).second) throw io_error(target + ": tensor '" + name + "' is given twice");
    const auto count = checked_element_count(t.shape);
    std::uint64_t bytes = 0;
    if (!count || __builtin_mul_overflow(*count, std::uint64_t(dtype_size(t.dtype)), &bytes))
      throw io_error(target + ": tensor '" + name + "': shape " + dims_string(t.shape) + " is negative or overflows");
    if (bytes != t.bytes.size())
      throw io_error(target + ": tensor '" + name + "': " + std::to_string(t.bytes.size()) + " bytes given but " +
                     std::string(dtype_name(t.dtype)) + " " + dims_string(t.shape) + " needs " + std::to_string(bytes));
    header[name] = {{"dtype", std::string(dtype_name(t.dtype))},
                    {"shape", std::vector<std::int64_t>(t.shape.begin(), t.shape.end())},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const nlohmann::ordered_json::exception& e) {  // e.g. a name that is not valid UTF-8
    throw io_error(target + ": cannot encode the header (" + e.what() + ")");
  }
  // Spaces (allowed by the format) so the data section starts 8-byte aligned for readers that map the file.
  text.append((8 - text.size() % 8) % 8, ' ');
  return text;
}

inline void put_u64_le(std::uint64_t v, char out[8]) { std::memcpy(out, &v, 8); }

// f16 <-> f32 by bit manipulation: the host may have no half type, and rounding must be exact.
inline float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ffu;
  if (exponent == 0) {  // zero or subnormal: mantissa × 2^-24
    const float v = std::ldexp(float(mantissa), -24);
    return sign ? -v : v;
  }
  const std::uint32_t bits =
      exponent == 31 ? sign | 0x7f800000u | (mantissa << 13) : sign | ((exponent + 112) << 23) | (mantissa << 13);
  return std::bit_cast<float>(bits);
}

inline std::uint16_t float_to_half(float f) {  // round to nearest, ties to even
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  const std::uint16_t sign = std::uint16_t((x >> 16) & 0x8000u);
  const std::uint32_t magnitude = x & 0x7fffffffu;
  if (magnitude > 0x7f800000u) return sign | 0x7e00u;                     // NaN
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;                    // ≥ 65520 rounds to infinity
  if (magnitude < 0x38800000u)                                            // below 2^-14: subnormal
    return sign | std::uint16_t(std::nearbyint(std::fabs(f) * 16777216.0f));  // × 2^24, exact
  std::uint32_t h = ((magnitude >> 23) - 112) << 10 | (magnitude & 0x7fffffu) >> 13;
  const std::uint32_t rest = magnitude & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1))) ++h;
  return sign | std::uint16_t(h);
}

inline float bfloat16_to_float(std::uint16_t b) { return std::bit_cast<float>(std::uint32_t(b) << 16); }

inline std::uint16_t float_to_bfloat16(float f) {  // round to nearest, ties to even
  const std::uint32_t x = std::bit_cast<std::uint32_t>(f);
  if ((x & 0x7fffffffu) > 0x7f800000u) return std::uint16_t((x >> 16) | 0x0040u);  // keep NaN a NaN
  return std::uint16_t((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

template <class Stored>
Stored load_le(const std::byte* p) {
  Stored v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

}  // namespace detail

/// Checks `bytes` as a whole safetensors file and returns its tensors (copied) and metadata.
/// `source` names the buffer in error messages. Throws io_error on any inconsistency.
inline SafetensorsFile parse_safetensors(std::span<const std::byte> bytes, const std::string& source = "<memory>") {
  if (bytes.size() < 8)
    throw io_error(source + ": " + std::to_string(bytes.size()) +
                   " bytes is too short for a safetensors file (truncated?)");
  const std::uint64_t header_size = detail::load_u64_le(reinterpret_cast<const unsigned char*>(bytes.data()));
  if (header_size > detail::max_header_size)
    throw io_error(source + ": header length " + std::to_string(header_size) + " exceeds the " +
                   std::to_string(detail::max_header_size) + "-byte limit (corrupt, or not a safetensors file)");
  if (header_size > bytes.size() - 8)
    throw io_error(source + ": header length " + std::to_string(header_size) + " runs past the end of the " +
                   std::to_string(bytes.size()) + "-byte file (truncated?)");
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()) + 8, header_size);
  detail::Header header = detail::parse_header(text, bytes.size() - 8 - header_size, source);
  SafetensorsFile file{source, std::move(header.metadata), {}};
  file.tensors.reserve(header.tensors.size());
  const std::byte* data = bytes.data() + 8 + header_size;
  for (auto& t : header.tensors)
    file.tensors.push_back({std::move(t.name), t.dtype, std::move(t.shape),
                            std::vector<std::byte>(data + t.begin, data + t.end)});
  return file;
}

/// Reads and checks a safetensors file (see parse_safetensors). Only regular files are read, so a
/// FIFO or device cannot make the reader hang; memory is allocated only for sizes the actual file
/// size has confirmed.
inline SafetensorsFile read_safetensors(const std::filesystem::path& path) {
  const std::string source = path.string();
  detail::FileHandle file{::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK)};
  if (file.fd < 0) throw io_error(source + ": cannot open (" + detail::errno_text(errno) + ")");
  struct ::stat status {};
  if (::fstat(file.fd, &status) != 0) throw io_error(source + ": cannot stat (" + detail::errno_text(errno) + ")");
  if (!S_ISREG(status.st_mode)) throw io_error(source + ": not a regular file");
  const std::uint64_t file_size = std::uint64_t(status.st_size);
  if (file_size < 8)
    throw io_error(source + ": " + std::to_string(file_size) + " bytes is too short for a safetensors file (truncated?)");
  unsigned char prefix[8];
  detail::read_at(file.fd, reinterpret_cast<std::byte*>(prefix), 8, 0, source, "the header length");
  const std::uint64_t header_size = detail::load_u64_le(prefix);
  if (header_size > detail::max_header_size)
    throw io_error(source + ": header length " + std::to_string(header_size) + " exceeds the " +
                   std::to_string(detail::max_header_size) + "-byte limit (corrupt, or not a safetensors file)");
  if (header_size > file_size - 8)
    throw io_error(source + ": header length " + std::to_string(header_size) + " runs past the end of the " +
                   std::to_string(file_size) + "-byte file (truncated?)");
  std::string text(header_size, '\0');
  detail::read_at(file.fd, reinterpret_cast<std::byte*>(text.data()), text.size(), 8, source, "the header");
  detail::Header header = detail::parse_header(text, file_size - 8 - header_size, source);
  SafetensorsFile result{source, std::move(header.metadata), {}};
  result.tensors.reserve(header.tensors.size());
  for (auto& t : header.tensors) {
    std::vector<std::byte> bytes(t.end - t.begin);
    detail::read_at(file.fd, bytes.data(), bytes.size(), 8 + header_size + t.begin, source, "tensor '" + t.name + "'");
    result.tensors.push_back({std::move(t.name), t.dtype, std::move(t.shape), std::move(bytes)});
  }
  return result;
}

/// The whole file as bytes: header length, header padded so the data starts at a multiple of 8,
/// then each tensor's bytes in the given order. Throws io_error for duplicate names, a byte count
/// that does not match dtype × shape, or a name that is not valid UTF-8.
inline std::vector<std::byte> encode_safetensors(std::span<const TensorView> tensors,
                                                 const std::map<std::string, std::string>& metadata = {}) {
  const std::string header = detail::build_header(tensors, metadata, "<memory>");
  std::size_t total = 8 + header.size();
  for (const auto& t : tensors) total += t.bytes.size();
  std::vector<std::byte> out(total);
  detail::put_u64_le(header.size(), reinterpret_cast<char*>(out.data()));
  std::memcpy(out.data() + 8, header.data(), header.size());
  std::byte* p = out.data() + 8 + header.size();
  for (const auto& t : tensors) p = std::copy(t.bytes.begin(), t.bytes.end(), p);
  return out;
}

/// Writes a safetensors file atomically (see AtomicFile): the previous file at `path` survives any
/// failure. Same checks as encode_safetensors, made before anything is written.
inline void write_safetensors(const std::filesystem::path& path, std::span<const TensorView> tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const std::string header = detail::build_header(tensors, metadata, path.string());
  AtomicFile file(path);
  char length[8];
  detail::put_u64_le(header.size(), length);
  file.write(length, 8);
  file.write(header.data(), header.size());
  for (const auto& t : tensors) file.write(t.bytes.data(), t.bytes.size());
  file.commit();
}

inline void write_safetensors(const std::filesystem::path& path, const std::vector<TensorEntry>& tensors,
                              const std::map<std::string, std::string>& metadata = {}) {
  const std::vector<TensorView> views(tensors.begin(), tensors.end());
  write_safetensors(path, std::span<const TensorView>(views), metadata);
}

/// Converts a floating-point tensor (F16, BF16, F32, F64) to T (float or double) into `out`,
/// which must hold entry.numel() values. Throws io_error for other dtypes or a size mismatch.
template <std::floating_point T>
void convert_floats(const TensorEntry& entry, std::span<T> out) {
  if (!is_floating(entry.dtype))
    throw io_error("tensor '" + entry.name + "' has dtype " + std::string(dtype_name(entry.dtype)) +
                   ", not a floating-point type");
  if (out.size() != entry.numel())
    throw io_error("tensor '" + entry.name + "': " + std::to_string(entry.numel()) + " values for " +
                   std::to_string(out.size()) + " places");
  const std::byte* p = entry.bytes.data();
  const std::size_t step = dtype_size(entry.dtype);
  for (std::size_t i = 0; i < out.size(); ++i, p += step) {
    switch (entry.dtype) {
      case Dtype::F16: out[i] = T(detail::half_to_float(detail::load_le<std::uint16_t>(p))); break;
      case Dtype::BF16: out[i] = T(detail::bfloat16_to_float(detail::load_le<std::uint16_t>(p))); break;
      case Dtype::F32: out[i] = T(detail::load_le<float>(p)); break;
      default: out[i] = T(detail::load_le<double>(p)); break;
    }
  }
}

/// The values of a floating-point tensor as float (F16/BF16/F64 converted; F64 rounds).
inline std::vector<float> as_float(const TensorEntry& entry) {
  std::vector<float> out(entry.numel());
  convert_floats<float>(entry, out);
  return out;
}

/// The values of an integer tensor (I8..I64, U8..U64) as int64. Throws io_error for floating-point
/// or BOOL tensors and for U64 values above INT64_MAX.
inline std::vector<std::int64_t> as_int64(const TensorEntry& entry) {
  if (!is_integer(entry.dtype))
    throw io_error("tensor '" + entry.name + "' has dtype " + std::string(dtype_name(entry.dtype)) +
                   ", not an integer type");
  std::vector<std::int64_t> out(entry.numel());
  const std::byte* p = entry.bytes.data();
  const std::size_t step = dtype_size(entry.dtype);
  for (std::size_t i = 0; i < out.size(); ++i, p += step) {
    switch (entry.dtype) {
      case Dtype::U8: out[i] = detail::load_le<std::uint8_t>(p); break;
      case Dtype::I8: out[i] = detail::load_le<std::int8_t>(p); break;
      case Dtype::I16: out[i] = detail::load_le<std::int16_t>(p); break;
      case Dtype::U16: out[i] = detail::load_le<std::uint16_t>(p); break;
      case Dtype::I32: out[i] = detail::load_le<std::int32_t>(p); break;
      case Dtype::U32: out[i] = detail::load_le<std::uint32_t>(p); break;
      case Dtype::I64: out[i] = detail::load_le<std::int64_t>(p); break;
      default: {
        const auto u = detail::load_le<std::uint64_t>(p);
        if (u > std::uint64_t(std::numeric_limits<std::int64_t>::max()))
          throw io_error("tensor '" + entry.name + "': U64 value " + std::to_string(u) + " does not fit in int64");
        out[i] = std::int64_t(u);
      }
    }
  }
  return out;
}

/// Element types make_tensor accepts (bool and the character types have no numeric range check).
template <class V>
concept TensorValue = std::floating_point<V> || (std::integral<V> && !std::same_as<V, bool>);

/// Builds a tensor of `dtype` from numbers: floating dtypes round to nearest (even); integer and
/// BOOL dtypes need integral values in range. Throws io_error if the count does not match the
/// shape or a value does not fit.

template <TensorValue V>
TensorEntry make_tensor(std::string name, std::vector<std::int64_t> shape, std::span<const V> values, Dtype dtype) {
  const auto count = checked_element_count(shape);
  if (!count || *count != values.size())
    throw io_error("make_tensor: tensor '" + name + "': " + std::to_string(values.size()) + " values for shape " +
                   dims_string(shape));
  TensorEntry t{std::move(name), dtype, std::move(shape), std::vector<std::byte>(values.size() * dtype_size(dtype))};
  std::byte* p = t.bytes.data();
  auto store = [&p](auto v) {
    std::memcpy(p, &v, sizeof v);
    p += sizeof v;
  };
  for (const V v : values) {
    if constexpr (std::is_floating_point_v<V>) {
      switch (dtype) {
        case Dtype::F16: store(detail::float_to_half(float(v))); continue;
        case Dtype::BF16: store(detail::float_to_bfloat16(float(v))); continue;
        case Dtype::F32: store(float(v)); continue;
        case Dtype::F64: store(double(v)); continue;
        default:
          throw io_error("make_tensor: tensor '" + t.name + "': floating-point values for dtype " +
                         std::string(dtype_name(dtype)));
      }
    } else {
      auto fits = [&]<class S>(S) {
        if (!std::in_range<S>(v))
          throw io_error("make_tensor: tensor '" + t.name + "': value " + std::to_string(v) + " does not fit in " +
                         std::string(dtype_name(dtype)));
        store(S(v));
      };
      switch (dtype) {
        case Dtype::BOOL:
          if (v != 0 && v != 1) throw io_error("make_tensor: tensor '" + t.name + "': BOOL values must be 0 or 1");
          store(std::uint8_t(v));
          continue;
        case Dtype::U8: fits(std::uint8_t{}); continue;
        case Dtype::I8: fits(std::int8_t{}); continue;
        case Dtype::I16: fits(std::int16_t{}); continue;
        case Dtype::U16: fits(std::uint16_t{}); continue;
        case Dtype::I32: fits(std::int32_t{}); continue;
        case Dtype::U32: fits(std::uint32_t{}); continue;
        case Dtype::I64: fits(std::int64_t{}); continue;
        case Dtype::U64: fits(std::uint64_t{}); continue;
        case Dtype::F16: store(detail::float_to_half(float(v))); continue;
        case Dtype::BF16: store(detail::float_to_bfloat16(float(v))); continue;
        case Dtype::F32: store(float(v)); continue;
        case Dtype::F64: store(double(v)); continue;
      }
    }
  }
  return t;
}

/// make_tensor for a braced list or vector: make_tensor<float>("w", {2}, {1.f, 2.f}, Dtype::F16).
template <TensorValue V>
TensorEntry make_tensor(std::string name, std::vector<std::int64_t> shape, const std::vector<V>& values, Dtype dtype) {
  return make_tensor(std::move(name), std::move(shape), std::span<const V>(values), dtype);
}

}  // namespace ctnn
