// The ResNet aliases: counts, PyTorch names, initialisation, forward/backward, a few SGD steps.
#define BOOST_TEST_MODULE models
#include <boost/test/unit_test.hpp>

#include <ctnn/ctnn.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>
#include <sstream>

using namespace ctnn;
namespace tt = boost::test_tools;

using Mnist = Model<MnistResNet18<>, Shape<1, 28, 28>>;

// The counts are compile-time constants; asserting them here makes a regression a build error.
static_assert(Mnist::parameter_count == 701'178);
static_assert(Mnist::multiply_adds == 28'573'184);
static_assert(Model<ResNet18<>, Shape<3, 224, 224>>::parameter_count == 11'689'512);
static_assert(Model<ResNet34<>, Shape<3, 224, 224>>::parameter_count == 21'797'672);
static_assert(Model<ResNet50<>, Shape<3, 224, 224>>::parameter_count == 25'557'032);
static_assert(Model<ResNet101<>, Shape<3, 224, 224>>::parameter_count == 44'549'160);
static_assert(Model<ResNet152<>, Shape<3, 224, 224>>::parameter_count == 60'192'808);
static_assert(Model<ResNet18<>, Shape<3, 224, 224>>::multiply_adds == 1'814'073'344);
static_assert(Model<ResNet50<>, Shape<3, 224, 224>>::multiply_adds == 4'089'184'256);
static_assert(std::is_same_v<Mnist::output_shape, Shape<10, 1, 1>>);
static_assert(std::is_same_v<Model<ResNet50<10, 1>, Shape<1, 28, 28>>::output_shape, Shape<10, 1, 1>>);

namespace {

struct KeyList {
  std::vector<std::string> names;
  std::vector<std::vector<std::int64_t>> shapes;
};

// tests/fixtures/keys/<model>.txt: "name<TAB>d0,d1,..." per state_dict() entry, written by
// tools/make_reference_fixtures.py from PyTorch.
KeyList read_keys(const std::string& model) {
  const std::string path = std::string(CTNN_FIXTURES_DIR) + "/keys/" + model + ".txt";
  std::ifstream in(path);
  BOOST_REQUIRE_MESSAGE(in, "cannot open " << path);
  KeyList keys;
  std::string line;
  while (std::getline(in, line)) {
    const auto tab = line.find('\t');
    keys.names.push_back(line.substr(0, tab));
    std::vector<std::int64_t> dims;
    std::stringstream shape(tab == std::string::npos ? "" : line.substr(tab + 1));
    std::string d;
    while (std::getline(shape, d, ',')) dims.push_back(std::stoll(d));
    keys.shapes.push_back(dims);
  }
  return keys;
}

template <class M>
KeyList state_of(M& model) {
  KeyList keys;
  model.visit([&](const std::string& name, auto& entry) {
    keys.names.push_back(name);
    if constexpr (requires { entry.dims; }) keys.shapes.push_back(entry.dims);
    else keys.shapes.push_back({});
  });
  return keys;
}

template <class Description, ShapeType In>
void check_names(const std::string& fixture) {
  auto model = std::make_unique<Model<Description, In>>();
  const KeyList expected = read_keys(fixture), actual = state_of(*model);
  BOOST_TEST(actual.names == expected.names, tt::per_element());
  BOOST_REQUIRE_EQUAL(actual.shapes.size(), expected.shapes.size());
  for (std::size_t i = 0; i < actual.shapes.size(); ++i)
    BOOST_TEST(actual.shapes[i] == expected.shapes[i], expected.names[i] << " shape");
}

template <class M>
double parameter_sum(M& model) {
  double sum = 0;
  model.visit(OnParameters{[&](const std::string&, auto& p) {
    for (auto v : p.value) sum += v;
  }});
  return sum;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(names)
BOOST_AUTO_TEST_CASE(mnist_net_uses_the_seed_module_names) { check_names<MnistResNet18<>, Shape<1, 28, 28>>("mnist_resnet18"); }
BOOST_AUTO_TEST_CASE(resnet18_uses_torchvision_names) { check_names<ResNet18<>, Shape<3, 224, 224>>("resnet18"); }
BOOST_AUTO_TEST_CASE(resnet34_uses_torchvision_names) { check_names<ResNet34<>, Shape<3, 224, 224>>("resnet34"); }
BOOST_AUTO_TEST_CASE(resnet50_uses_torchvision_names) { check_names<ResNet50<>, Shape<3, 224, 224>>("resnet50"); }
BOOST_AUTO_TEST_CASE(resnet101_uses_torchvision_names) { check_names<ResNet101<>, Shape<3, 224, 224>>("resnet101"); }
BOOST_AUTO_TEST_CASE(resnet152_uses_torchvision_names) { check_names<ResNet152<>, Shape<3, 224, 224>>("resnet152"); }
BOOST_AUTO_TEST_CASE(grayscale_resnet50_uses_torchvision_names) {
  check_names<ResNet50<10, 1>, Shape<1, 28, 28>>("resnet50_10c_1ch");
}
BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(initialisation)

BOOST_AUTO_TEST_CASE(same_seed_same_weights_other_seed_other_weights) {
  Mnist a(7), b(7), c(8);
  BOOST_TEST(parameter_sum(a) == parameter_sum(b));
  BOOST_TEST(a.network().layer<0>().layer<0>().weight.value == b.network().layer<0>().layer<0>().weight.value);
  BOOST_TEST(parameter_sum(a) != parameter_sum(c));
}

// Checks every parameter of `model` against the scheme: 4-d convolution weights by `check_conv`,
// fc within PyTorch's U(±1/√in), BatchNorm weight 1 and bias 0.
template <class M, class CheckConv>
void check_initialisation(M& model, int fc_in, CheckConv&& check_conv) {
  model.visit(OnParameters{[&](const std::string& name, Parameter<float>& p) {
    if (p.dims.size() == 4) {
      check_conv(name, p);
    } else if (name.find("fc.") == 0) {
      for (float v : p.value) BOOST_TEST(std::abs(v) <= 1.0 / std::sqrt(double(fc_in)));
    } else if (name.ends_with(".weight")) {
      BOOST_TEST(std::all_of(p.value.begin(), p.value.end(), [](float v) { return v == 1.0f; }), name);
    } else {
      BOOST_TEST(std::all_of(p.value.begin(), p.value.end(), [](float v) { return v == 0.0f; }), name);
    }
  }});
}

double standard_deviation(const Parameter<float>& p) {
  double mean = 0, sq = 0;
  for (float v : p.value) mean += v, sq += double(v) * v;
  mean /= double(p.size());
  return std::sqrt(sq / double(p.size()) - mean * mean);
}

BOOST_AUTO_TEST_CASE(torchvision_layout_uses_the_seed_he_init) {
  auto model = std::make_unique<Model<ResNet18<10, 1>, Shape<1, 28, 28>>>(3);
  check_initialisation(*model, 512, [](const std::string& name, const Parameter<float>& p) {
    // N(0, sqrt(2 / (k·k·out))) as the seed's init loop.
    const double n = double(p.dims[2] * p.dims[3] * p.dims[0]);
    if (p.size() >= 4096) BOOST_TEST(standard_deviation(p) == std::sqrt(2.0 / n), name << tt::tolerance(0.05));
  });
}

BOOST_AUTO_TEST_CASE(mnist_net_keeps_pytorch_default_conv_init) {
  Mnist model(3);
  check_initialisation(model, 128, [](const std::string& name, const Parameter<float>& p) {
    // U(±1/sqrt(fan_in)), whose standard deviation is 1/sqrt(3·fan_in).
    const double fan_in = double(p.dims[1] * p.dims[2] * p.dims[3]), bound = 1.0 / std::sqrt(fan_in);
    BOOST_TEST(std::all_of(p.value.begin(), p.value.end(), [&](float v) { return std::abs(v) <= bound; }), name);
    if (p.size() >= 4096) BOOST_TEST(standard_deviation(p) == bound / std::sqrt(3.0), name << tt::tolerance(0.05));
  });
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(running)

std::size_t non_finite(std::span<const float> values) {
  return std::size_t(std::count_if(values.begin(), values.end(), [](float v) { return !std::isfinite(v); }));
}

template <class Description, ShapeType In>
void forward_backward_is_finite() {
  auto model = std::make_unique<Model<Description, In>>(11);
  using M = Model<Description, In>;
  typename M::Input x(2), dx;
  Rng rng(4);
  for (auto& v : x.values()) v = float(rng.uniform());
  const auto& logits = model->forward(x, Mode::train);
  BOOST_TEST(logits.batch_size() == 2u);
  BOOST_TEST(non_finite(logits.values()) == 0u);
  typename M::Output grad;
  const int labels[] = {1, 0};
  const float loss = cross_entropy(logits, std::span<const int>(labels), &grad);
  BOOST_TEST(std::isfinite(loss));
  model->backward(grad, &dx);
  double grad_norm = 0;
  model->visit(OnParameters{[&](const std::string& name, auto& p) {
    BOOST_TEST(non_finite(std::span<const float>(p.grad.data(), p.size())) == 0u, name);
    for (float g : p.grad) grad_norm += double(g) * g;
  }});
  BOOST_TEST(grad_norm > 0.0);
  BOOST_TEST(non_finite(dx.values()) == 0u);
  BOOST_TEST(non_finite(model->forward(x, Mode::eval).values()) == 0u);
}

BOOST_AUTO_TEST_CASE(mnist_resnet18) { forward_backward_is_finite<MnistResNet18<>, Shape<1, 28, 28>>(); }
BOOST_AUTO_TEST_CASE(resnet18) { forward_backward_is_finite<ResNet18<10>, Shape<3, 32, 32>>(); }
BOOST_AUTO_TEST_CASE(resnet34) { forward_backward_is_finite<ResNet34<10>, Shape<3, 32, 32>>(); }
BOOST_AUTO_TEST_CASE(resnet50_grayscale_on_mnist_size) { forward_backward_is_finite<ResNet50<10, 1>, Shape<1, 28, 28>>(); }
BOOST_AUTO_TEST_CASE(resnet101) { forward_backward_is_finite<ResNet101<10>, Shape<3, 32, 32>>(); }
BOOST_AUTO_TEST_CASE(resnet152) { forward_backward_is_finite<ResNet152<10>, Shape<3, 32, 32>>(); }

BOOST_AUTO_TEST_CASE(sgd_steps_lower_the_mnist_loss_on_a_fixed_batch) {
  Mnist model(1);
  Mnist::Input x(16);
  Rng rng(9);
  std::vector<int> labels(16);
  for (std::size_t n = 0; n < 16; ++n) {
    labels[n] = int(n % 10);
    // A bright square whose position encodes the label, on a noisy background.
    for (int i = 0; i < 784; ++i) x.image(n)[i] = float(0.1 * rng.uniform());
    for (int r = 0; r < 5; ++r)
      for (int c = 0; c < 5; ++c) x.image(n)[(2 + 2 * labels[n] + r) * 28 + 3 + c] = 1.0f;
  }
  Mnist::Output grad;
  std::vector<float> losses;
  for (int step = 0; step < 10; ++step) {
    losses.push_back(cross_entropy(model.forward(x, Mode::train), std::span<const int>(labels), &grad));
    model.zero_grad();
    model.backward(grad);
    model.visit(OnParameters{[](const std::string&, auto& p) {
      for (std::size_t i = 0; i < p.size(); ++i) p.value[i] -= 0.1f * p.grad[i];
    }});
  }
  BOOST_TEST_MESSAGE("losses: " << losses.front() << " -> " << losses.back());
  BOOST_TEST(losses.back() < 0.5f * losses.front());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_CASE(non_finite_inputs_are_rejected_by_position_and_change_nothing) {
  Mnist model(1);
  Mnist::Input x(3);
  for (std::size_t i = 0; i < x.value_count(); ++i) x.data()[i] = float(i % 7) / 7.0f;
  const float first_logit = model.forward(x, Mode::eval).at(0, 0, 0, 0);
  auto expect_rejection = [&](float bad, std::size_t image, int row, int column, const std::string& what) {
    Mnist::Input poisoned = x;
    poisoned.at(image, 0, row, column) = bad;
    std::string message;
    try {
      model.forward(poisoned, Mode::train);
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    const std::string where = "input image " + std::to_string(image) + " holds " + what + " at channel 0, row " +
                              std::to_string(row) + ", column " + std::to_string(column);
    BOOST_TEST(message.find(where) != std::string::npos, "'" << message << "' should contain '" << where << "'");
  };
  expect_rejection(std::numeric_limits<float>::quiet_NaN(), 1, 5, 7, "NaN");
  expect_rejection(-std::numeric_limits<float>::infinity(), 2, 27, 0, "an infinite value");
  // The rejected train-mode forward updated no BatchNorm statistics.
  BOOST_TEST(model.forward(x, Mode::eval).at(0, 0, 0, 0) == first_logit);
}

BOOST_AUTO_TEST_CASE(summary_lists_every_layer_with_its_shape_and_counts) {
  std::ostringstream out;
  summary<Mnist>(out);
  const std::string text = out.str();
  BOOST_TEST(text.find("layer2.0.shortcut.0") != std::string::npos);
  BOOST_TEST(text.find("[32, 14, 14]") != std::string::npos);
  BOOST_TEST(text.find("total parameters: 701178") != std::string::npos);
  BOOST_TEST(text.find("total multiply-adds per image: 28573184") != std::string::npos);
  std::size_t rows = 0;
  Mnist::describe([&](const LayerRow&) { ++rows; });
  // conv1 (3) + 8 blocks × 5 + 3 projections × 2 + pool, flatten, fc
  BOOST_TEST(rows == 3u + 40u + 6u + 3u);
}
