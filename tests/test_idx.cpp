// IDX reading and writing: round trips (raw and gzip) and every kind of bad file, each rejected
// with a message that names the file and the problem.
#define BOOST_TEST_MODULE idx
#include <boost/test/unit_test.hpp>

#include <unistd.h>
#include <zlib.h>

#include <ctnn/io/idx.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace fs = std::filesystem;
using Mnist = ctnn::Shape<1, 28, 28>;
using Tiny = ctnn::Shape<1, 3, 2>;

namespace {

// A fresh directory per test case, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() /
           ("ctnn_test_idx_" + std::to_string(::getpid()) + "_" +
            boost::unit_test::framework::current_test_case().p_name.get());
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  fs::path operator/(const std::string& name) const { return path / name; }
};

std::vector<std::uint8_t> read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const fs::path& file, const std::vector<std::uint8_t>& bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

std::vector<std::uint8_t> gzip_bytes(const std::vector<std::uint8_t>& raw) {
  z_stream z{};
  BOOST_REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  std::vector<std::uint8_t> out(deflateBound(&z, uLong(raw.size())));
  z.next_in = const_cast<Bytef*>(raw.data());
  z.avail_in = uInt(raw.size());
  z.next_out = out.data();
  z.avail_out = uInt(out.size());
  BOOST_REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::vector<std::uint8_t> idx_header(std::uint32_t magic, std::vector<std::uint32_t> dims) {
  std::vector<std::uint8_t> out;
  auto put = [&](std::uint32_t v) {
    for (int s = 24; s >= 0; s -= 8) out.push_back(std::uint8_t(v >> s));
  };
  put(magic);
  for (auto d : dims) put(d);
  return out;
}

// n images of 3x2 whose pixels encode their index, and labels i % 10.
ctnn::ImageDataset<Tiny> tiny_dataset(std::size_t n) {
  ctnn::ImageDataset<Tiny> d;
  d.classes = 10;
  for (std::size_t i = 0; i < n; ++i) {
    for (std::size_t k = 0; k < Tiny::size; ++k) d.pixels.push_back(std::uint8_t((i * 7 + k * 31) % 256));
    d.labels.push_back(int(i % 10));
  }
  return d;
}

// Expects load to throw DatasetError whose message names `file` and contains `problem`.
template <class F>
void expect_rejected(F&& load, const fs::path& file, const std::string& problem) {
  try {
    load();
    BOOST_ERROR("expected a DatasetError mentioning '" << problem << "'");
  } catch (const ctnn::DatasetError& e) {
    const std::string message = e.what();
    BOOST_TEST_MESSAGE("rejected: " << message);
    BOOST_TEST(message.find(file.string()) != std::string::npos, "message names the file: " << message);
    BOOST_TEST(message.find(problem) != std::string::npos, "message says '" << problem << "': " << message);
    BOOST_TEST(e.file() == file);
    BOOST_TEST(dynamic_cast<const ctnn::io_error*>(&e) != nullptr);
  }
}

}  // namespace

BOOST_AUTO_TEST_CASE(round_trip_raw_and_gzip) {
  TempDir dir;
  const auto data = tiny_dataset(25);
  for (const std::string suffix : {"", ".gz"}) {
    const fs::path images = dir / ("images" + suffix), labels = dir / ("labels" + suffix);
    ctnn::write_idx_dataset(data, images, labels);
    const auto bytes = read_bytes(images);
    if (suffix.empty()) {
      BOOST_TEST(bytes.size() == 16 + 25 * 6u);
      BOOST_TEST((bytes[2] == 0x08 && bytes[3] == 0x03));
    } else {
      BOOST_TEST((bytes[0] == 0x1f && bytes[1] == 0x8b));
    }
    const auto loaded = ctnn::load_idx_dataset<Tiny>(images, labels, 10);
    BOOST_TEST(loaded.size() == 25u);
    BOOST_TEST(loaded.classes == 10);
    BOOST_TEST(loaded.pixels == data.pixels);
    BOOST_TEST(loaded.labels == data.labels);
  }
  // No temporary files are left behind by the atomic writer.
  std::size_t files = 0;
  for (const auto& entry : fs::directory_iterator(dir.path)) files += entry.is_regular_file();
  BOOST_TEST(files == 4u);
}

BOOST_AUTO_TEST_CASE(fill_batch_is_to_tensor) {
  auto data = tiny_dataset(4);
  data.pixels[Tiny::size * 2 + 0] = 255;
  data.pixels[Tiny::size * 2 + 1] = 0;
  data.pixels[Tiny::size * 2 + 2] = 128;
  ctnn::Batch<Tiny, float> batch;
  std::vector<int> labels;
  const std::vector<std::size_t> indices = {2, 0, 3};
  data.fill_batch(indices, batch, labels);
  BOOST_TEST(batch.batch_size() == 3u);
  BOOST_TEST((labels == std::vector<int>{2, 0, 3}));
  BOOST_TEST(batch.at(0, 0, 0, 0) == 1.0f);
  BOOST_TEST(batch.at(0, 0, 0, 1) == 0.0f);
  BOOST_TEST(batch.at(0, 0, 1, 0) == 128.0f / 255.0f);  // what torch computes: uint8 -> float, / 255
  for (std::size_t n = 0; n < 3; ++n)
    for (std::size_t k = 0; k < Tiny::size; ++k)
      BOOST_TEST(batch.image(n)[k] == float(data.pixels[indices[n] * Tiny::size + k]) / 255.0f);
  const std::vector<std::size_t> bad = {4};
  BOOST_CHECK_THROW(data.fill_batch(bad, batch, labels), std::out_of_range);
}

BOOST_AUTO_TEST_CASE(concatenated_gzip_members_are_one_stream) {
  TempDir dir;
  const auto data = tiny_dataset(3);
  std::vector<std::uint8_t> raw = idx_header(0x803, {3, 3, 2});
  raw.insert(raw.end(), data.pixels.begin(), data.pixels.end());
  const std::vector<std::uint8_t> first(raw.begin(), raw.begin() + 20), second(raw.begin() + 20, raw.end());
  auto gz = gzip_bytes(first);
  const auto gz2 = gzip_bytes(second);
  gz.insert(gz.end(), gz2.begin(), gz2.end());
  write_bytes(dir / "images.gz", gz);
  ctnn::write_idx_labels(dir / "labels", data.labels);
  const auto loaded = ctnn::load_idx_dataset<Tiny>(dir / "images.gz", dir / "labels", 10);
  BOOST_TEST(loaded.pixels == data.pixels);
}

BOOST_AUTO_TEST_CASE(bad_magic_numbers) {
  TempDir dir;
  const auto data = tiny_dataset(5);
  ctnn::write_idx_dataset(data, dir / "images", dir / "labels");
  auto load = [&](const fs::path& images, const fs::path& labels) {
    return [=] { ctnn::load_idx_dataset<Tiny>(images, labels, 10); };
  };
  auto bytes = read_bytes(dir / "images");
  bytes[0] = 0x12;
  write_bytes(dir / "not_idx", bytes);
  expect_rejected(load(dir / "not_idx", dir / "labels"), dir / "not_idx", "not an IDX file");

  bytes = read_bytes(dir / "images");
  bytes[2] = 0x0D;  // float elements
  write_bytes(dir / "floats", bytes);
  expect_rejected(load(dir / "floats", dir / "labels"), dir / "floats", "only unsigned bytes");

  // Image and label files swapped.
  expect_rejected(load(dir / "labels", dir / "images"), dir / "labels", "is this a label file?");
  expect_rejected(load(dir / "images", dir / "images"), dir / "images", "is this an image file?");

  write_bytes(dir / "short", {0, 0});
  expect_rejected(load(dir / "short", dir / "labels"), dir / "short", "too short for an IDX header");
  write_bytes(dir / "short_dims", {0, 0, 8, 3, 0, 0, 0, 5, 0, 0});
  expect_rejected(load(dir / "short_dims", dir / "labels"), dir / "short_dims", "truncated header");
  expect_rejected(load(dir / "absent", dir / "labels"), dir / "absent", "does not exist");
  expect_rejected(load(dir.path, dir / "labels"), dir.path, "not a regular file");
}

BOOST_AUTO_TEST_CASE(truncated_and_trailing_data) {
  TempDir dir;
  const auto data = tiny_dataset(5);
  ctnn::write_idx_dataset(data, dir / "images", dir / "labels");
  const auto images = read_bytes(dir / "images");
  const auto labels = read_bytes(dir / "labels");
  auto load = [&](const fs::path& i, const fs::path& l) { return [=] { ctnn::load_idx_dataset<Tiny>(i, l, 10); }; };

  for (const std::string suffix : {"", ".gz"}) {
    auto put = [&](const std::string& name, std::vector<std::uint8_t> bytes) {
      const fs::path file = dir / (name + suffix);
      write_bytes(file, suffix.empty() ? bytes : gzip_bytes(bytes));
      return file;
    };
    const auto truncated = put("truncated", {images.begin(), images.end() - 1});
    expect_rejected(load(truncated, dir / "labels"), truncated, "truncated");
    auto longer = images;
    longer.push_back(0);
    longer.push_back(0);
    const auto trailing = put("trailing", longer);
    expect_rejected(load(trailing, dir / "labels"), trailing, "2 unexpected bytes after the last image");
    auto longer_labels = labels;
    longer_labels.push_back(1);
    const auto trailing_labels = put("trailing_labels", longer_labels);
    expect_rejected(load(dir / "images", trailing_labels), trailing_labels, "1 unexpected byte after the last label");
    const auto truncated_labels = put("truncated_labels", {labels.begin(), labels.end() - 2});
    expect_rejected(load(dir / "images", truncated_labels), truncated_labels, "truncated");
  }

  // Gzip-level damage: a cut compressed stream, garbage after it, a flipped byte (CRC).
  const auto gz = gzip_bytes(images);
  write_bytes(dir / "cut.gz", {gz.begin(), gz.end() - 5});
  expect_rejected(load(dir / "cut.gz", dir / "labels"), dir / "cut.gz", "truncated gzip stream");
  auto garbage = gz;
  garbage.push_back('x');
  write_bytes(dir / "garbage.gz", garbage);
  expect_rejected(load(dir / "garbage.gz", dir / "labels"), dir / "garbage.gz", "after the end of the gzip stream");
  auto flipped = gz;
  flipped[flipped.size() - 6] ^= 0xff;  // inside the CRC32 of the trailer
  write_bytes(dir / "flipped.gz", flipped);
  expect_rejected(load(dir / "flipped.gz", dir / "labels"), dir / "flipped.gz", "corrupt gzip data");
}

BOOST_AUTO_TEST_CASE(counts_shapes_and_labels) {
  TempDir dir;
  auto data = tiny_dataset(6);
  ctnn::write_idx_dataset(data, dir / "images", dir / "labels");
  const std::vector<int> fewer(data.labels.begin(), data.labels.end() - 1);
  ctnn::write_idx_labels(dir / "fewer_labels", fewer);
  expect_rejected([&] { ctnn::load_idx_dataset<Tiny>(dir / "images", dir / "fewer_labels", 10); }, dir / "images",
                  "holds 6 images but its label file");

  // The images are 3x2; a model expecting 28x28 (or 2x3) must refuse them.
  expect_rejected([&] { ctnn::load_idx_dataset<Mnist>(dir / "images", dir / "labels", 10); }, dir / "images",
                  "images are 3x2 (rows x columns) but the model's input shape [1, 28, 28] needs 28x28");
  expect_rejected([&] { ctnn::load_idx_dataset<ctnn::Shape<1, 2, 3>>(dir / "images", dir / "labels", 10); },
                  dir / "images", "images are 3x2");

  data.labels[4] = 10;
  ctnn::write_idx_labels(dir / "label_10", data.labels);
  expect_rejected([&] { ctnn::load_idx_dataset<Tiny>(dir / "images", dir / "label_10", 10); }, dir / "label_10",
                  "label 10 of sample 4 is outside [0, 10)");
  BOOST_CHECK_NO_THROW(ctnn::load_idx_dataset<Tiny>(dir / "images", dir / "label_10", 11));
  BOOST_CHECK_THROW(ctnn::load_idx_dataset<Tiny>(dir / "images", dir / "labels", 0), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(huge_claimed_counts_allocate_nothing) {
  TempDir dir;
  // 4 billion 28x28 images claimed by a 100-byte file: ~3 TB if trusted.
  auto bytes = idx_header(0x803, {0xFFFFFFFFu, 28, 28});
  bytes.resize(100, 0);
  write_bytes(dir / "huge", bytes);
  auto labels = idx_header(0x801, {0xFFFFFFFFu});
  labels.resize(64, 0);
  write_bytes(dir / "huge_labels", labels);
  expect_rejected([&] { ctnn::load_idx_dataset<Mnist>(dir / "huge", dir / "huge_labels", 10); }, dir / "huge",
                  "truncated: the header promises 4294967295 images of 28x28 (3367254359280 bytes after the header) "
                  "but only 84 bytes follow");
  write_bytes(dir / "huge.gz", gzip_bytes(bytes));
  expect_rejected([&] { ctnn::load_idx_dataset<Mnist>(dir / "huge.gz", dir / "huge_labels", 10); }, dir / "huge.gz",
                  "the header is corrupt");
  // Large enough to pass the compression-ratio bound, yet the stream is short: caught while inflating.
  auto medium = idx_header(0x803, {2000, 28, 28});
  std::uint32_t state = 12345;  // incompressible pixels, so the ratio bound cannot catch this
  for (int i = 0; i < 1000 * 784; ++i) medium.push_back(std::uint8_t((state = state * 1664525u + 1013904223u) >> 24));
  write_bytes(dir / "medium.gz", gzip_bytes(medium));
  auto medium_labels = idx_header(0x801, {2000});
  medium_labels.resize(8 + 2000, 0);
  write_bytes(dir / "medium_labels", medium_labels);
  expect_rejected([&] { ctnn::load_idx_dataset<Mnist>(dir / "medium.gz", dir / "medium_labels", 10); },
                  dir / "medium.gz", "but the decompressed data holds only 784000 bytes");
  expect_rejected([&] { ctnn::load_idx_dataset<Mnist>(dir / "huge_labels", dir / "huge_labels", 10); },
                  dir / "huge_labels", "is this a label file?");
}

BOOST_AUTO_TEST_CASE(mnist_directory) {
  TempDir dir;
  expect_rejected([&] { ctnn::load_mnist_directory<Tiny>(dir / "nowhere"); }, dir / "nowhere", "directory does not exist");
  const auto train = tiny_dataset(8), test = tiny_dataset(3);
  ctnn::write_idx_images(dir / "train-images-idx3-ubyte.gz", train.pixels, 3, 2);
  ctnn::write_idx_labels(dir / "train-labels-idx1-ubyte", train.labels);
  try {
    ctnn::load_mnist_directory<Tiny>(dir.path);
    BOOST_ERROR("expected missing files");
  } catch (const ctnn::DatasetError& e) {
    const std::string message = e.what();
    BOOST_TEST(message.find(dir.path.string()) == 0u);
    BOOST_TEST(message.find("missing t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]") != std::string::npos,
               message);
  }
  ctnn::write_idx_images(dir / "t10k-images-idx3-ubyte", test.pixels, 3, 2);
  ctnn::write_idx_labels(dir / "t10k-labels-idx1-ubyte.gz", test.labels);
  const auto sets = ctnn::load_mnist_directory<Tiny>(dir.path, 10);
  BOOST_TEST(sets.train.size() == 8u);
  BOOST_TEST(sets.test.size() == 3u);
  BOOST_TEST(sets.train.pixels == train.pixels);
  BOOST_TEST(sets.test.labels == test.labels);
}

BOOST_AUTO_TEST_CASE(writer_checks_its_input) {
  TempDir dir;
  const std::vector<std::uint8_t> pixels(7);
  BOOST_CHECK_THROW(ctnn::write_idx_images(dir / "x", pixels, 3, 2), std::invalid_argument);
  const std::vector<int> labels = {1, 256};
  BOOST_CHECK_THROW(ctnn::write_idx_labels(dir / "y", labels), std::invalid_argument);
  try {
    ctnn::write_idx_labels(dir / "no_such_dir" / "y", std::vector<int>{1});
    BOOST_ERROR("expected an io_error");
  } catch (const ctnn::io_error& e) {
    BOOST_TEST(std::string(e.what()).find((dir / "no_such_dir" / "y").string()) != std::string::npos, e.what());
  }
  // Overwriting replaces the file.
  ctnn::write_idx_labels(dir / "z", std::vector<int>{1, 2, 3});
  ctnn::write_idx_labels(dir / "z", std::vector<int>{4});
  BOOST_TEST(read_bytes(dir / "z").size() == 9u);
}
