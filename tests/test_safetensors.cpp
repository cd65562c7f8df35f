// safetensors reading/writing, model checkpoints, and the rejection of damaged or hostile files.
#define BOOST_TEST_MODULE safetensors
#include <boost/test/unit_test.hpp>

#include <ctnn/ctnn.hpp>
#include <ctnn/io/atomic_file.hpp>
#include <ctnn/io/checkpoint.hpp>
#include <ctnn/io/safetensors.hpp>

#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <limits>

using namespace ctnn;
namespace fs = std::filesystem;

using Mnist = Model<MnistResNet18<>, Shape<1, 28, 28>>;

namespace {

// A scratch directory per test run, removed afterwards.
struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("ctnn-test-safetensors-" + std::to_string(::getpid()));
  Scratch() {
    fs::remove_all(dir);
    fs::create_directories(dir);
  }
  ~Scratch() {
    std::error_code ec;
    fs::permissions(dir, fs::perms::owner_all, fs::perm_options::add, ec);
    fs::remove_all(dir, ec);
  }
  fs::path operator/(const std::string& name) const { return dir / name; }
  // Every entry of the directory: a leftover temporary file shows up here.
  std::vector<std::string> listing() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

std::vector<char> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
}

// A hand-made file: an 8-byte length (the header's own, unless overridden), the header, data.
std::string raw_file(const std::string& header, std::size_t data_bytes, std::optional<std::uint64_t> length = {}) {
  const std::uint64_t n = length.value_or(header.size());
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  bytes += header;
  bytes.append(data_bytes, '\x11');
  return bytes;
}

// Expects f to throw io_error whose message contains every one of `parts`.
void expect_error(const std::function<void()>& f, std::initializer_list<std::string> parts, const std::string& what) {
  try {
    f();
    BOOST_ERROR(what << ": no exception");
  } catch (const io_error& e) {
    const std::string message = e.what();
    for (const auto& part : parts)
      BOOST_CHECK_MESSAGE(message.find(part) != std::string::npos,
                          what << ": message lacks '" << part << "': " << message);
  }
}

// Every value of every state entry, by name: equal snapshots mean identical models.
using Snapshot = std::vector<std::pair<std::string, std::vector<double>>>;
template <class M>
Snapshot snapshot(M& model) {
  Snapshot s;
  model.visit([&](const std::string& name, auto& entry) {
    if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, Counter>)
      s.emplace_back(name, std::vector<double>{double(entry.value)});
    else
      s.emplace_back(name, std::vector<double>(entry.value.begin(), entry.value.end()));
  });
  return s;
}

// Gives every parameter, buffer and counter a distinct non-default value.
template <class M>
void scramble(M& model, std::uint64_t seed) {
  Rng rng(seed);
  model.visit([&](const std::string&, auto& entry) {
    if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, Counter>)
      entry.value = std::int64_t(rng.below(1000)) + 1;
    else
      for (auto& v : entry.value) v = float(rng.uniform(0.5, 1.5));
  });
}

// The model's state as safetensors entries (F32 / I64), to edit before writing.
template <class M>
std::vector<TensorEntry> entries_of(M& model) {
  std::vector<TensorEntry> out;
  model.visit([&](const std::string& name, auto& entry) {
    if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, Counter>)
      out.push_back(make_tensor<std::int64_t>(name, {}, std::vector<std::int64_t>{entry.value}, Dtype::I64));
    else
      out.push_back(make_tensor<float>(name, entry.dims, std::vector<float>(entry.value.begin(), entry.value.end()),
                                       Dtype::F32));
  });
  return out;
}

TensorEntry* find(std::vector<TensorEntry>& entries, const std::string& name) {
  for (auto& e : entries)
    if (e.name == name) return &e;
  BOOST_FAIL("no entry " << name);
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The format itself
// ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(every_dtype_round_trips) {
  Scratch scratch;
  std::vector<TensorEntry> written;
  written.push_back(make_tensor<double>("f64", {2, 2}, std::vector<double>{1.5, -2.25, 1e300, -0.0}, Dtype::F64));
  written.push_back(make_tensor<float>("f32", {3}, std::vector<float>{0.1f, -7.f, 3.4e38f}, Dtype::F32));
  written.push_back(make_tensor<float>("f16", {2, 1}, std::vector<float>{0.5f, -65504.f}, Dtype::F16));
  written.push_back(make_tensor<float>("bf16", {2}, std::vector<float>{1.f, -3.0e38f}, Dtype::BF16));
  written.push_back(make_tensor<std::int64_t>("i64", {}, std::vector<std::int64_t>{-(std::int64_t(1) << 62)}, Dtype::I64));
  written.push_back(make_tensor<std::int64_t>("i32", {2}, std::vector<std::int64_t>{-2147483648LL, 7}, Dtype::I32));
  written.push_back(make_tensor<int>("i16", {1}, std::vector<int>{-300}, Dtype::I16));
  written.push_back(make_tensor<int>("i8", {1}, std::vector<int>{-128}, Dtype::I8));
  written.push_back(make_tensor<int>("u8", {3}, std::vector<int>{0, 128, 255}, Dtype::U8));
  written.push_back(make_tensor<int>("u16", {1}, std::vector<int>{65535}, Dtype::U16));
  written.push_back(make_tensor<std::int64_t>("u32", {1}, std::vector<std::int64_t>{4294967295LL}, Dtype::U32));
  written.push_back(make_tensor<std::int64_t>("u64", {1}, std::vector<std::int64_t>{123}, Dtype::U64));
  written.push_back(make_tensor<int>("bool", {2}, std::vector<int>{1, 0}, Dtype::BOOL));
  written.push_back(make_tensor<float>("empty", {0, 3}, std::vector<float>{}, Dtype::F32));
  const std::map<std::string, std::string> metadata{{"format", "pt"}, {"note", "ünïcode ✓"}};
  write_safetensors(scratch / "all.safetensors", written, metadata);

  const SafetensorsFile file = read_safetensors(scratch / "all.safetensors");
  BOOST_TEST(file.metadata == metadata);
  BOOST_REQUIRE_EQUAL(file.tensors.size(), written.size());
  for (const auto& w : written) {
    const TensorEntry* r = file.find(w.name);
    BOOST_REQUIRE_MESSAGE(r, "missing " << w.name);
    BOOST_TEST((r->dtype == w.dtype), w.name);
    BOOST_TEST(r->shape == w.shape, w.name);
    BOOST_TEST((r->bytes == w.bytes), w.name);
  }
  // Stored in the order given, so a checkpoint reads back in state_dict() order.
  for (std::size_t i = 0; i < written.size(); ++i) BOOST_TEST(file.tensors[i].name == written[i].name);

  BOOST_TEST(as_float(file.at("f64")) == (std::vector<float>{1.5f, -2.25f, INFINITY, -0.0f}));
  BOOST_TEST(as_float(file.at("f32")) == (std::vector<float>{0.1f, -7.f, 3.4e38f}));
  BOOST_TEST(as_float(file.at("f16")) == (std::vector<float>{0.5f, -65504.f}));
  BOOST_TEST(as_float(file.at("bf16"))[0] == 1.f);
  BOOST_TEST(as_int64(file.at("i64")) == (std::vector<std::int64_t>{-(std::int64_t(1) << 62)}));
  BOOST_TEST(as_int64(file.at("i32")) == (std::vector<std::int64_t>{-2147483648LL, 7}));
  BOOST_TEST(as_int64(file.at("i16")) == (std::vector<std::int64_t>{-300}));
  BOOST_TEST(as_int64(file.at("i8")) == (std::vector<std::int64_t>{-128}));
  BOOST_TEST(as_int64(file.at("u8")) == (std::vector<std::int64_t>{0, 128, 255}));
  BOOST_TEST(as_int64(file.at("u16")) == (std::vector<std::int64_t>{65535}));
  BOOST_TEST(as_int64(file.at("u32")) == (std::vector<std::int64_t>{4294967295LL}));
  BOOST_TEST(as_int64(file.at("u64")) == (std::vector<std::int64_t>{123}));
  BOOST_TEST(as_float(file.at("empty")).empty());
  expect_error([&] { as_float(file.at("i64")); }, {"i64", "not a floating-point"}, "as_float of I64");
  expect_error([&] { as_int64(file.at("f32")); }, {"f32", "not an integer"}, "as_int64 of F32");
  expect_error([&] { as_int64(file.at("bool")); }, {"bool", "BOOL"}, "as_int64 of BOOL");
  expect_error([&] { file.at("nope"); }, {"all.safetensors", "nope"}, "at() of an absent name");

  // The data section starts at a multiple of 8 (readers may map the file and cast).
  const auto bytes = read_bytes(scratch / "all.safetensors");
  std::uint64_t header_size;
  std::memcpy(&header_size, bytes.data(), 8);
  BOOST_TEST((8 + header_size) % 8 == 0u);
  BOOST_TEST(encode_safetensors(std::vector<TensorView>(written.begin(), written.end()), metadata).size() ==
             bytes.size());
}

BOOST_AUTO_TEST_CASE(half_and_bfloat16_conversions_are_exact) {
  // Every finite half converts to float and back unchanged; NaNs stay NaN.
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = detail::half_to_float(std::uint16_t(h));
    if (std::isnan(f)) {
      BOOST_TEST(std::isnan(detail::half_to_float(detail::float_to_half(f))));
      continue;
    }
    if (detail::float_to_half(f) != h) BOOST_FAIL("half " << h << " -> " << f << " -> " << detail::float_to_half(f));
  }
  BOOST_TEST(detail::half_to_float(0x3c00) == 1.0f);
  BOOST_TEST(detail::half_to_float(0x0001) == std::ldexp(1.0f, -24));  // smallest subnormal
  BOOST_TEST(detail::float_to_half(0.1f) == 0x2e66);                  // rounds to nearest
  BOOST_TEST(detail::float_to_half(65519.f) == 0x7bff);               // below the halfway point: max finite
  BOOST_TEST(detail::float_to_half(65520.f) == 0x7c00);               // ties to even: infinity
  BOOST_TEST(detail::float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3c00);  // tie rounds to even (down)
  BOOST_TEST(detail::float_to_half(std::ldexp(1.0f, -25)) == 0x0000);        // tie to even: zero
  BOOST_TEST(detail::float_to_half(std::ldexp(3.0f, -26)) == 0x0001);
  BOOST_TEST(detail::bfloat16_to_float(0x3f80) == 1.0f);
  BOOST_TEST(detail::float_to_bfloat16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);   // tie to even (down)
  BOOST_TEST(detail::float_to_bfloat16(1.0f + std::ldexp(3.0f, -8)) == 0x3f82);   // tie to even (up)
  BOOST_TEST(std::isnan(detail::bfloat16_to_float(detail::float_to_bfloat16(NAN))));
}

BOOST_AUTO_TEST_CASE(writer_rejects_inconsistent_tensors) {
  Scratch scratch;
  const fs::path target = scratch / "w.safetensors";
  const std::vector<std::byte> four(4);
  const std::int64_t two[] = {2};
  const std::int64_t one[] = {1};
  expect_error([&] { write_safetensors(target, std::vector<TensorView>{{"a", Dtype::F32, two, four}}); },
               {"'a'", "4 bytes given", "needs 8"}, "byte count");
  expect_error(
      [&] {
        write_safetensors(target, std::vector<TensorView>{{"a", Dtype::F32, one, four}, {"a", Dtype::F32, one, four}});
      },
      {"'a'", "twice"}, "duplicate name");
  expect_error([&] { write_safetensors(target, std::vector<TensorView>{{"__metadata__", Dtype::F32, one, four}}); },
               {"__metadata__"}, "reserved name");
  expect_error([&] { make_tensor<int>("small", {1}, std::vector<int>{300}, Dtype::U8); }, {"small", "300", "U8"},
               "out of range");
  BOOST_TEST(scratch.listing().empty());  // nothing was created by a rejected write
}

// ---------------------------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(save_then_load_restores_the_exact_state) {
  Scratch scratch;
  Mnist a(1), b(2);
  scramble(a, 10);
  save(a, scratch / "mnist.safetensors", {{"epoch", "3"}});
  BOOST_TEST(snapshot(a) != snapshot(b));
  const LoadReport report = load(b, scratch / "mnist.safetensors");
  BOOST_TEST(report.complete());
  BOOST_TEST(report.loaded == a.state_names());
  BOOST_TEST((snapshot(a) == snapshot(b)));

  // The file is a PyTorch state_dict: F32 tensors and 0-d I64 counters, in state_dict() order.
  const SafetensorsFile file = read_safetensors(scratch / "mnist.safetensors");
  BOOST_TEST(file.metadata.at("epoch") == "3");
  BOOST_TEST(file.metadata.at("format") == "pt");
  std::vector<std::string> names;
  for (const auto& t : file.tensors) names.push_back(t.name);
  BOOST_TEST(names == a.state_names());
  BOOST_TEST((file.at("conv1.0.weight").dtype == Dtype::F32));
  BOOST_TEST(file.at("conv1.0.weight").shape == (std::vector<std::int64_t>{16, 1, 3, 3}));
  BOOST_TEST((file.at("layer2.0.shortcut.1.num_batches_tracked").dtype == Dtype::I64));
  BOOST_TEST(file.at("layer2.0.shortcut.1.num_batches_tracked").shape.empty());

  // Saving again over the same path replaces it and leaves no temporary file.
  save(b, scratch / "mnist.safetensors");
  BOOST_TEST(scratch.listing() == std::vector<std::string>{"mnist.safetensors"});
}

// What PyTorch's load_state_dict(strict=True) needs of a ctnn checkpoint: the same keys, shapes
// and dtypes as the state_dict PyTorch itself saves (tools/check_ctnn_checkpoint.py does the real
// load where torch is installed; CI checks the layout against files PyTorch wrote).
BOOST_AUTO_TEST_CASE(saved_checkpoints_have_pytorchs_layout) {
  Scratch scratch;
  {
    Mnist model(3);
    save(model, scratch / "mnist.safetensors");
    const SafetensorsFile ours = read_safetensors(scratch / "mnist.safetensors");
    const SafetensorsFile theirs =
        read_safetensors(std::string(CTNN_FIXTURES_DIR) + "/parity/pytorch_saved_mnist.safetensors");
    BOOST_REQUIRE_EQUAL(ours.tensors.size(), theirs.tensors.size());
    for (std::size_t i = 0; i < ours.tensors.size(); ++i) {
      const TensorEntry &a = ours.tensors[i], &b = theirs.tensors[i];
      BOOST_TEST(a.name == b.name);
      BOOST_TEST(a.shape == b.shape, a.name);
      BOOST_TEST((a.dtype == b.dtype), a.name << ": " << dtype_name(a.dtype) << " vs " << dtype_name(b.dtype));
    }
  }
  {
    Model<ResNet18<>, Shape<3, 224, 224>> model(3);
    save(model, scratch / "resnet18.safetensors");
    const SafetensorsFile ours = read_safetensors(scratch / "resnet18.safetensors");
    std::ifstream keys(std::string(CTNN_FIXTURES_DIR) + "/keys/resnet18.txt");
    std::string line;
    std::size_t i = 0;
    while (std::getline(keys, line)) {
      BOOST_REQUIRE_LT(i, ours.tensors.size());
      const TensorEntry& t = ours.tensors[i++];
      const std::string name = line.substr(0, line.find('\t'));
      std::string dims;
      for (std::size_t d = 0; d < t.shape.size(); ++d) {
        if (d) dims += ',';
        dims += std::to_string(t.shape[d]);
      }
      BOOST_TEST(t.name == name);
      BOOST_TEST(line.substr(line.find('\t') + 1) == dims, name);
      BOOST_TEST((t.dtype == (name.ends_with("num_batches_tracked") ? Dtype::I64 : Dtype::F32)), name);
    }
    BOOST_TEST(i == ours.tensors.size());
    BOOST_TEST(i == 122u);
  }
}

BOOST_AUTO_TEST_CASE(load_converts_f64_f16_and_bf16) {
  Scratch scratch;
  Mnist a(1);
  scramble(a, 11);
  for (const Dtype dtype : {Dtype::F64, Dtype::F16, Dtype::BF16}) {
    std::vector<TensorEntry> entries;
    std::vector<std::vector<float>> expected;  // what each float tensor must hold after the load
    a.visit([&](const std::string& name, auto& entry) {
      if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, Counter>) {
        entries.push_back(make_tensor<std::int64_t>(name, {}, std::vector<std::int64_t>{entry.value}, Dtype::I32));
      } else {
        const std::vector<float> values(entry.value.begin(), entry.value.end());
        entries.push_back(make_tensor<float>(name, entry.dims, values, dtype));
        expected.push_back(as_float(entries.back()));
      }
    });
    const fs::path path = scratch / ("converted-" + std::string(dtype_name(dtype)) + ".safetensors");
    write_safetensors(path, entries);
    Mnist b(5);
    BOOST_TEST(load(b, path).complete());
    std::size_t i = 0;
    bool all_equal = true;
    b.visit([&](const std::string&, auto& entry) {
      if constexpr (!std::is_same_v<std::decay_t<decltype(entry)>, Counter>)
        all_equal &= std::equal(entry.value.begin(), entry.value.end(), expected[i++].begin());
    });
    BOOST_TEST(all_equal, dtype_name(dtype));
    if (dtype == Dtype::F64) BOOST_TEST((snapshot(a) == snapshot(b)));  // F32 -> F64 -> F32 is lossless
  }
}

BOOST_AUTO_TEST_CASE(strict_load_rejects_mismatches_and_leaves_the_model_untouched) {
  Scratch scratch;
  Mnist source(1), target(2);
  scramble(source, 12);
  scramble(target, 13);
  const Snapshot before = snapshot(target);
  const fs::path path = scratch / "bad.safetensors";
  auto attempt = [&](std::vector<TensorEntry> entries, std::initializer_list<std::string> parts, const std::string& what) {
    write_safetensors(path, entries);
    expect_error([&] { load(target, path); }, parts, what);
    BOOST_TEST((snapshot(target) == before), what << ": the failed load changed the model");
  };

  {  // missing: every other tensor matches and would load, yet nothing may be assigned
    auto entries = entries_of(source);
    entries.erase(std::find_if(entries.begin(), entries.end(), [](auto& e) { return e.name == "fc.bias"; }));
    attempt(entries, {"bad.safetensors", "'fc.bias'", "missing"}, "missing tensor");
  }
  {  // unexpected
    auto entries = entries_of(source);
    entries.push_back(make_tensor<float>("fc2.weight", {1}, std::vector<float>{1.f}, Dtype::F32));
    attempt(entries, {"'fc2.weight'", "not part of the model"}, "unexpected tensor");
  }
  {  // wrong shape, same element count (a transposed or reshaped tensor must not slip through)
    auto entries = entries_of(source);
    find(entries, "conv1.0.weight")->shape = {16, 1, 9, 1};
    attempt(entries, {"'conv1.0.weight'", "[16, 1, 9, 1]", "[16, 1, 3, 3]", "shape differs"}, "wrong shape");
  }
  {  // wrong shape, different element count
    auto entries = entries_of(source);
    *find(entries, "fc.weight") = make_tensor<float>("fc.weight", {10, 64}, std::vector<float>(640, 1.f), Dtype::F32);
    attempt(entries, {"'fc.weight'", "[10, 64]", "[10, 128]"}, "wrong element count");
  }
  {  // integer data for a float tensor
    auto entries = entries_of(source);
    *find(entries, "layer1.0.left.1.running_var") =
        make_tensor<std::int64_t>("layer1.0.left.1.running_var", {16}, std::vector<std::int64_t>(16, 1), Dtype::I64);
    attempt(entries, {"'layer1.0.left.1.running_var'", "I64", "floating-point", "wrong dtype"}, "int for float");
  }
  {  // float data for the integer counter
    auto entries = entries_of(source);
    *find(entries, "conv1.1.num_batches_tracked") =
        make_tensor<float>("conv1.1.num_batches_tracked", {}, std::vector<float>{3.f}, Dtype::F32);
    attempt(entries, {"'conv1.1.num_batches_tracked'", "F32", "integer", "wrong dtype"}, "float for int");
  }
  {  // a counter that is not 0-d
    auto entries = entries_of(source);
    find(entries, "conv1.1.num_batches_tracked")->shape = {1};
    attempt(entries, {"'conv1.1.num_batches_tracked'", "[1]", "[]"}, "1-d counter");
  }
  {  // NaN in a weight: a save from a diverged run must not silently replace good weights
    auto entries = entries_of(source);
    std::vector<float> values = as_float(*find(entries, "layer2.0.left.0.weight"));
    values[37] = std::numeric_limits<float>::quiet_NaN();
    *find(entries, "layer2.0.left.0.weight") =
        make_tensor<float>("layer2.0.left.0.weight", find(entries, "layer2.0.left.0.weight")->shape, values, Dtype::F32);
    attempt(entries, {"'layer2.0.left.0.weight'", "NaN", "element 37"}, "NaN weight");
  }
  {  // Inf in a BatchNorm buffer, in a half-precision file
    auto entries = entries_of(source);
    std::vector<float> values = as_float(*find(entries, "layer3.1.left.4.running_var"));
    values.back() = std::numeric_limits<float>::infinity();
    *find(entries, "layer3.1.left.4.running_var") =
        make_tensor<float>("layer3.1.left.4.running_var", {std::int64_t(values.size())}, values, Dtype::F16);
    const std::string last = "element " + std::to_string(values.size() - 1);
    attempt(entries, {"'layer3.1.left.4.running_var'", "infinite", last}, "Inf buffer");
    Mnist accepting(3);
    write_safetensors(path, entries);
    load(accepting, path, LoadOptions{.allow_non_finite = true});  // asked for explicitly
    std::vector<float> loaded;
    accepting.visit([&](const std::string& name, auto& entry) {
      if constexpr (!std::is_same_v<std::decay_t<decltype(entry)>, Counter>)
        if (name == "layer3.1.left.4.running_var") loaded.assign(entry.value.begin(), entry.value.end());
    });
    BOOST_TEST(std::isinf(loaded.back()));
  }
  {  // several problems are all listed
    auto entries = entries_of(source);
    entries.erase(std::find_if(entries.begin(), entries.end(), [](auto& e) { return e.name == "fc.weight"; }));
    find(entries, "fc.bias")->shape = {2, 5};
    attempt(entries, {"'fc.weight'", "'fc.bias'", "[2, 5]", "[10]"}, "two problems");
  }
  {  // a different network altogether: the message stays readable
    Model<ResNet18<10, 1>, Shape<1, 28, 28>> other;
    save(other, path);
    expect_error([&] { load(target, path); }, {"does not match", "more"}, "other network");
    BOOST_TEST((snapshot(target) == before));
  }
  {  // a damaged file
    write_bytes(path, raw_file("{\"fc.bias\": 12", 0));
    expect_error([&] { load(target, path); }, {"bad.safetensors", "not valid JSON"}, "corrupt file");
    BOOST_TEST((snapshot(target) == before));
  }
}

BOOST_AUTO_TEST_CASE(non_strict_load_takes_what_matches_and_reports_the_rest) {
  Scratch scratch;
  Mnist source(1), target(2);
  scramble(source, 14);
  scramble(target, 15);
  const Snapshot before = snapshot(target);
  auto entries = entries_of(source);
  entries.erase(std::find_if(entries.begin(), entries.end(), [](auto& e) { return e.name == "fc.bias"; }));
  find(entries, "conv1.0.weight")->shape = {16, 9};
  *find(entries, "conv1.1.num_batches_tracked") =
      make_tensor<float>("conv1.1.num_batches_tracked", {}, std::vector<float>{3.f}, Dtype::F32);
  entries.push_back(make_tensor<float>("extra", {2}, std::vector<float>{1.f, 2.f}, Dtype::F32));
  write_safetensors(scratch / "partial.safetensors", entries);

  const LoadReport report = load(target, scratch / "partial.safetensors", LoadOptions{.strict = false});
  BOOST_TEST(!report.complete());
  BOOST_TEST(report.missing == std::vector<std::string>{"fc.bias"});
  BOOST_TEST(report.unexpected == std::vector<std::string>{"extra"});
  BOOST_TEST(report.mismatched == (std::vector<std::string>{"conv1.0.weight", "conv1.1.num_batches_tracked"}));
  BOOST_TEST(report.problems.size() == 4u);
  BOOST_TEST(report.loaded.size() == target.state_names().size() - 3);

  const Snapshot after = snapshot(target), wanted = snapshot(source);
  for (std::size_t i = 0; i < after.size(); ++i) {
    const std::string& name = after[i].first;
    const bool skipped = name == "fc.bias" || name == "conv1.0.weight" || name == "conv1.1.num_batches_tracked";
    BOOST_TEST((after[i].second == (skipped ? before[i].second : wanted[i].second)), name);
  }
}

// ---------------------------------------------------------------------------------------------
// Untrusted files
// ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(truncated_files_are_rejected_at_every_length) {
  Scratch scratch;
  std::vector<TensorEntry> entries;
  entries.push_back(make_tensor<float>("w", {2, 3}, std::vector<float>{1, 2, 3, 4, 5, 6}, Dtype::F32));
  entries.push_back(make_tensor<std::int64_t>("n", {}, std::vector<std::int64_t>{9}, Dtype::I64));
  write_safetensors(scratch / "whole.safetensors", entries);
  const auto bytes = read_bytes(scratch / "whole.safetensors");
  for (std::size_t length = 0; length < bytes.size(); ++length) {
    const fs::path path = scratch / "cut.safetensors";
    write_bytes(path, std::string(bytes.begin(), bytes.begin() + std::ptrdiff_t(length)));
    expect_error([&] { read_safetensors(path); }, {"cut.safetensors"}, "cut at " + std::to_string(length));
  }
  // A few lengths, with the reason the reader gives.
  auto cut = [&](std::size_t length) {
    write_bytes(scratch / "cut.safetensors", std::string(bytes.begin(), bytes.begin() + std::ptrdiff_t(length)));
  };
  cut(5);
  expect_error([&] { read_safetensors(scratch / "cut.safetensors"); }, {"too short", "truncated"}, "5 bytes");
  cut(20);
  expect_error([&] { read_safetensors(scratch / "cut.safetensors"); }, {"runs past the end", "truncated"}, "20 bytes");
  cut(bytes.size() - 1);
  expect_error([&] { read_safetensors(scratch / "cut.safetensors"); }, {"'n'", "run past", "truncated"}, "one short");
  // Trailing garbage is as wrong as missing bytes: the format forbids unclaimed data.
  write_bytes(scratch / "long.safetensors", std::string(bytes.begin(), bytes.end()) + "x");
  expect_error([&] { read_safetensors(scratch / "long.safetensors"); }, {"1 trailing bytes"}, "one long");
}

BOOST_AUTO_TEST_CASE(hostile_headers_are_rejected_with_clear_messages) {
  Scratch scratch;
  const fs::path path = scratch / "evil.safetensors";
  auto check = [&](const std::string& bytes, std::initializer_list<std::string> parts, const std::string& what) {
    write_bytes(path, bytes);
    expect_error([&] { read_safetensors(path); }, parts, what);
    // The in-memory parser applies the same checks.
    const auto* data = reinterpret_cast<const std::byte*>(bytes.data());
    expect_error([&] { parse_safetensors({data, bytes.size()}, "mem"); }, {"mem"}, what + " (memory)");
  };
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  {  // the control: the same helper builds a valid file
    write_bytes(path, raw_file(ok, 8));
    BOOST_TEST(read_safetensors(path).tensors.size() == 1u);
  }
  check(raw_file(ok, 8, 100), {"evil.safetensors", "header length 100", "runs past the end"}, "length > file");
  check(raw_file(ok, 8, std::uint64_t(1) << 63), {"exceeds", "limit"}, "huge length");
  check(raw_file(ok, 8, 200'000'000), {"exceeds", "limit"}, "length over the bound");
  check(raw_file("not json at all", 0), {"not valid JSON"}, "non-JSON");
  check(raw_file("{\"a\":", 0), {"not valid JSON"}, "unterminated JSON");
  check(raw_file("[1,2,3]", 0), {"array, not an object"}, "JSON array");
  check(raw_file(std::string("{\"a\xff\":1}"), 0), {"not valid JSON"}, "invalid UTF-8");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,1000]}})", 8), {"'a'", "run past", "8-byte"},
        "offsets past the data");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8), {"'a'", "end before"},
        "reversed offsets");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},
                     "b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})",
                 24),
        {"'b'", "overlap", "'a'"}, "overlapping tensors");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                     "b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                 8),
        {"overlap"}, "aliased tensors");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}})", 0),
        {"'a'", "overflows"}, "size overflow");
  check(raw_file(R"({"a":{"dtype":"F64","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
        {"'a'", "overflows"}, "element count overflow");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,4]}})", 4),
        {"'a'", "too large"}, "dimension beyond int64");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8), {"'a'", "negative"},
        "negative dimension");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8), {"'a'", "2.5"},
        "fractional dimension");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8), {"'a'", "hold 8 bytes", "needs 12"},
        "size mismatch");
  check(raw_file(R"({"a":{"dtype":"F7","shape":[2],"data_offsets":[0,8]}})", 8), {"'a'", "dtype 'F7'"}, "bad dtype");
  check(raw_file(R"({"a":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", 2), {"'a'", "unsupported"},
        "unsupported dtype");
  check(raw_file(R"({"a":{"dtype":3,"shape":[2],"data_offsets":[0,8]}})", 8), {"'a'", "dtype"}, "dtype not a string");
  check(raw_file(R"({"a":{"shape":[2],"data_offsets":[0,8]}})", 8), {"'a'", "dtype"}, "no dtype");
  check(raw_file(R"({"a":{"dtype":"F32","data_offsets":[0,8]}})", 8), {"'a'", "shape"}, "no shape");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8), {"'a'", "data_offsets"}, "no offsets");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4,8]}})", 8), {"'a'", "[begin, end]"},
        "three offsets");
  check(raw_file(R"({"a":[1,2]})", 8), {"'a'", "not an object"}, "tensor entry not an object");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},
                     "a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
                 8),
        {"'a'", "twice"}, "duplicate tensor");
  check(raw_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},
                     "b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                 12),
        {"[4, 8)", "holes"}, "hole in the data");
  check(raw_file(R"({"__metadata__":{"k":1}})", 0), {"'k'", "not a string"}, "metadata value not a string");
  check(raw_file(R"({"__metadata__":[1]})", 0), {"__metadata__"}, "metadata not an object");
  check(raw_file("{\"a\":" + std::string(100000, '[') + std::string(100000, ']') + "}", 0), {"nests deeper"},
        "deep nesting");
  {
    std::string zeros = "0";
    for (int i = 0; i < 5000; ++i) zeros += ",0";
    check(raw_file(R"({"a":{"dtype":"F32","shape":[)" + zeros + R"(],"data_offsets":[0,0]}})", 0),
          {"more than 1024 elements"}, "absurd rank");
  }

  // Not files at all.
  expect_error([&] { read_safetensors(scratch / "absent.safetensors"); }, {"absent.safetensors", "cannot open"},
               "absent file");
  expect_error([&] { read_safetensors(scratch.dir); }, {"not a regular file"}, "directory");
  ::mkfifo((scratch / "fifo").c_str(), 0600);  // opening it for reading must not wait for a writer
  expect_error([&] { read_safetensors(scratch / "fifo"); }, {"not a regular file"}, "FIFO");

  // Empty and zero-size tensors are valid.
  write_bytes(path, raw_file(R"({"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0]},
                                 "s":{"dtype":"I64","shape":[],"data_offsets":[0,8]}})",
                             8));
  const SafetensorsFile file = read_safetensors(path);
  BOOST_TEST(file.at("e").bytes.empty());
  BOOST_TEST(file.at("s").shape.empty());
}

// ---------------------------------------------------------------------------------------------
// Atomic saving
// ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(a_failed_save_keeps_the_previous_file) {
  Scratch scratch;
  const fs::path target = scratch / "model.safetensors";
  Mnist a(1), b(2);
  save(a, target);
  const auto original = read_bytes(target);

  {  // the disk fills up mid-write: a file size limit makes write() fail with EFBIG
    std::signal(SIGXFSZ, SIG_IGN);
    struct ::rlimit saved {};
    ::getrlimit(RLIMIT_FSIZE, &saved);
    struct ::rlimit limited = saved;
    limited.rlim_cur = 100'000;  // the model needs 2.8 MB
    BOOST_REQUIRE(::setrlimit(RLIMIT_FSIZE, &limited) == 0);
    std::string message;
    try {
      save(b, target);
    } catch (const io_error& e) {
      message = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &saved);
    std::signal(SIGXFSZ, SIG_DFL);
    BOOST_TEST(message.find("model.safetensors") != std::string::npos, message);
    BOOST_TEST(message.find("File too large") != std::string::npos, message);
    BOOST_TEST(message.find("previous file is unchanged") != std::string::npos, message);
  }
  BOOST_TEST((read_bytes(target) == original));
  BOOST_TEST(scratch.listing() == std::vector<std::string>{"model.safetensors"});

  {  // the writer itself fails half-way
    BOOST_CHECK_THROW(write_file_atomically(target,
                                            [](std::ostream& out) {
                                              out << "half a file";
                                              throw std::runtime_error("writer failed");
                                            }),
                      std::runtime_error);
  }
  BOOST_TEST((read_bytes(target) == original));
  BOOST_TEST(scratch.listing() == std::vector<std::string>{"model.safetensors"});

  // The temporary file cannot be created: the directory does not exist.
  expect_error([&] { save(b, scratch / "no-such-dir" / "model.safetensors"); },
               {"no-such-dir", "cannot create a temporary file", "No such file"}, "missing directory");
  // The rename fails: the target is a directory. It survives, and no temporary file is left.
  fs::create_directory(scratch / "occupied");
  expect_error([&] { save(b, scratch / "occupied"); }, {"occupied", "renaming", "Is a directory"}, "target is a directory");
  BOOST_TEST(fs::is_directory(scratch / "occupied"));
  BOOST_TEST(scratch.listing() == (std::vector<std::string>{"model.safetensors", "occupied"}));

  // A successful save replaces the file and keeps its permissions.
  fs::permissions(target, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
  save(b, target);
  BOOST_TEST((read_bytes(target) != original));
  BOOST_TEST((fs::status(target).permissions() == (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read)));
  Mnist c(3);
  load(c, target);
  BOOST_TEST((snapshot(c) == snapshot(b)));
  BOOST_TEST(scratch.listing() == (std::vector<std::string>{"model.safetensors", "occupied"}));
}

BOOST_AUTO_TEST_CASE(a_save_killed_mid_write_keeps_the_previous_file) {
  // A process killed (SIGKILL, power loss) half-way through writing cannot clean up after itself:
  // the previous checkpoint must survive under its name, and only a hidden temporary is left.
  Scratch scratch;
  const fs::path target = scratch / "model.safetensors";
  Mnist a(1), b(2);
  scramble(b, 16);
  save(a, target);
  const auto original = read_bytes(target);
  save(b, scratch / "next.safetensors");
  const auto next = read_bytes(scratch / "next.safetensors");
  fs::remove(scratch / "next.safetensors");

  const ::pid_t child = ::fork();
  BOOST_REQUIRE(child >= 0);
  if (child == 0) {  // writes half of b's checkpoint over the target, then dies without unwinding
    AtomicFile file(target);
    file.write(next.data(), next.size() / 2);
    file.stream().flush();
    ::raise(SIGKILL);
    ::_exit(0);  // not reached
  }
  int status = 0;
  BOOST_REQUIRE(::waitpid(child, &status, 0) == child);
  BOOST_REQUIRE(WIFSIGNALED(status));
  BOOST_TEST(WTERMSIG(status) == SIGKILL);

  BOOST_TEST((read_bytes(target) == original));
  const std::vector<std::string> files = scratch.listing();
  BOOST_REQUIRE(files.size() == 2u);  // the target and the orphaned half-written temporary
  BOOST_TEST(files[0].rfind(".model.safetensors.tmp-", 0) == 0u, files[0]);
  BOOST_TEST(fs::file_size(scratch / files[0]) == next.size() / 2);
  Mnist c(3);
  load(c, target);
  BOOST_TEST((snapshot(c) == snapshot(a)));
  save(b, target);  // the next save is not hindered by the orphan
  load(c, target);
  BOOST_TEST((snapshot(c) == snapshot(b)));
}

BOOST_AUTO_TEST_CASE(atomic_file_writes_text_and_bytes) {
  Scratch scratch;
  const fs::path target = scratch / "table.csv";
  write_file_atomically(target, [](std::ostream& out) { out << "epoch,loss\n1,0.5\n"; });
  const auto bytes = read_bytes(target);
  BOOST_TEST(std::string(bytes.begin(), bytes.end()) == "epoch,loss\n1,0.5\n");
  {
    AtomicFile file(target);
    file.write("replaced", 8);
    BOOST_TEST(fs::exists(file.temporary_path()));
    // destroyed without commit(): the old contents stay
  }
  const auto kept = read_bytes(target);
  BOOST_TEST(std::string(kept.begin(), kept.end()) == "epoch,loss\n1,0.5\n");
  BOOST_TEST(scratch.listing() == std::vector<std::string>{"table.csv"});
}

// ---------------------------------------------------------------------------------------------
// Fuzzing regressions: inputs in tests/fixtures/fuzz_regressions/ (see its README.md)
// ---------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(fuzz_regression_u64_counter_beyond_int64) {
  // A U64 num_batches_tracked above INT64_MAX made even a non-strict load throw, where it must
  // report the tensor as mismatched and load the rest.
  const fs::path path = fs::path(CTNN_FIXTURES_DIR) / "fuzz_regressions" / "u64_counter_beyond_int64.safetensors";
  Mnist model(1);
  const Snapshot before = snapshot(model);
  const LoadReport report = load(model, path, LoadOptions{.strict = false});
  BOOST_TEST(report.mismatched == std::vector<std::string>{"conv1.1.num_batches_tracked"});
  BOOST_TEST(report.loaded.empty());
  BOOST_TEST(std::count_if(report.problems.begin(), report.problems.end(), [](const std::string& p) {
               return p.find("'conv1.1.num_batches_tracked': U64 value 18446744073709551615 does not fit") !=
                      std::string::npos;
             }) == 1);
  BOOST_TEST((snapshot(model) == before));
  expect_error([&] { load(model, path); },
               {path.string(), "1 mismatched", "'conv1.1.num_batches_tracked': U64 value 18446744073709551615"},
               "strict load");
  BOOST_TEST((snapshot(model) == before));
}
