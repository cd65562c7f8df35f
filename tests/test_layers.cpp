// Every layer: forward on hand-computed values, gradients against finite differences.
#define BOOST_TEST_MODULE layers
#include <boost/test/unit_test.hpp>

#include <ctnn/ctnn.hpp>

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <utility>

#include "gradient_check.hpp"

using namespace ctnn;
using ctnn::testing::check_gradients;
namespace tt = boost::test_tools;

namespace {
template <ShapeType S>
Batch<S> iota_batch(std::size_t n, float start = 1.0f) {
  Batch<S> b(n);
  std::iota(b.values().begin(), b.values().end(), start);
  return b;
}
template <class B>
std::vector<float> values_of(const B& b) {
  return {b.values().begin(), b.values().end()};
}
}  // namespace

BOOST_AUTO_TEST_SUITE(forward_values)

BOOST_AUTO_TEST_CASE(conv2d_padding_counts_border_neighbours) {
  Model<Conv2d<1, 1, 3, 1, 1>, Shape<1, 3, 3>> m;
  std::fill(m.network().weight.value.begin(), m.network().weight.value.end(), 1.0f);
  Batch<Shape<1, 3, 3>> x(1);
  std::fill(x.values().begin(), x.values().end(), 1.0f);
  const std::vector<float> expected{4, 6, 4, 6, 9, 6, 4, 6, 4};
  BOOST_TEST(values_of(m.forward(x)) == expected, tt::per_element());
}

BOOST_AUTO_TEST_CASE(conv2d_stride_bias_and_channels) {
  // Two input channels 1..16 and 17..32 (4×4), kernel 2×2 stride 2, two outputs with bias.
  Model<Conv2d<2, 2, 2, 2, 0, true>, Shape<2, 4, 4>> m;
  auto& conv = m.network();
  // Output 0 sums channel 0's window; output 1 takes channel 1's top-left pixel minus channel 0's.
  std::vector<float> w(16, 0.0f);
  for (int i = 0; i < 4; ++i) w[i] = 1.0f;  // [0][0][*][*]
  w[8 + 4] = 1.0f;                           // [1][1][0][0]
  w[8 + 0] = -1.0f;                          // [1][0][0][0]
  std::copy(w.begin(), w.end(), conv.weight.value.begin());
  conv.bias.value = {0.5f, -1.0f};
  const auto x = iota_batch<Shape<2, 4, 4>>(1);
  const auto& y = m.forward(x);
  static_assert(std::is_same_v<Model<Conv2d<2, 2, 2, 2, 0, true>, Shape<2, 4, 4>>::output_shape, Shape<2, 2, 2>>);
  const std::vector<float> expected{1 + 2 + 5 + 6 + 0.5f, 3 + 4 + 7 + 8 + 0.5f, 9 + 10 + 13 + 14 + 0.5f,
                                    11 + 12 + 15 + 16 + 0.5f, 15, 15, 15, 15};
  BOOST_TEST(values_of(y) == expected, tt::per_element());
}

BOOST_AUTO_TEST_CASE(batchnorm_train_normalises_and_updates_running_statistics) {
  Model<BatchNorm2d<1>, Shape<1, 1, 1>> m;
  auto& bn = m.network();
  bn.weight.value[0] = 2.0f;
  bn.bias.value[0] = 0.5f;
  Batch<Shape<1, 1, 1>> x(4);
  x.values()[0] = 1, x.values()[1] = 2, x.values()[2] = 3, x.values()[3] = 4;
  const auto& y = m.forward(x, Mode::train);
  const double inv_std = 1.0 / std::sqrt(1.25 + 1e-5);  // biased variance of 1..4
  for (int i = 0; i < 4; ++i) BOOST_TEST(y.values()[i] == 2.0 * (i + 1 - 2.5) * inv_std + 0.5, tt::tolerance(1e-6));
  BOOST_TEST(bn.running_mean.value[0] == 0.25f, tt::tolerance(1e-6f));
  BOOST_TEST(bn.running_var.value[0] == 0.9 + 0.1 * (5.0 / 3.0), tt::tolerance(1e-6));  // unbiased 5/3
  BOOST_TEST(bn.num_batches_tracked.value == 1);
  m.forward(x, Mode::train);
  BOOST_TEST(bn.running_mean.value[0] == 0.9f * 0.25f + 0.25f, tt::tolerance(1e-6f));
  BOOST_TEST(bn.num_batches_tracked.value == 2);
}

BOOST_AUTO_TEST_CASE(batchnorm_eval_uses_running_statistics_and_leaves_them) {
  Model<BatchNorm2d<2>, Shape<2, 1, 2>> m;
  auto& bn = m.network();
  bn.running_mean.value = {1.0f, -1.0f};
  bn.running_var.value = {4.0f, 0.25f};
  bn.weight.value = {1.0f, 3.0f};
  bn.bias.value = {0.0f, 1.0f};
  const auto x = iota_batch<Shape<2, 1, 2>>(1);  // channel 0: 1 2, channel 1: 3 4
  const auto& y = m.forward(x, Mode::eval);
  const std::vector<double> expected{0.0, 1.0 / std::sqrt(4 + 1e-5), 3 * 4 / std::sqrt(0.25 + 1e-5) + 1,
                                     3 * 5 / std::sqrt(0.25 + 1e-5) + 1};
  for (int i = 0; i < 4; ++i) BOOST_TEST(y.values()[i] == expected[i], tt::tolerance(1e-6));
  BOOST_TEST(bn.running_mean.value[0] == 1.0f);
  BOOST_TEST(bn.running_var.value[1] == 0.25f);
  BOOST_TEST(bn.num_batches_tracked.value == 0);
}

BOOST_AUTO_TEST_CASE(eval_mode_folding_matches_the_layers_run_one_by_one) {
  // Sequential folds conv → BatchNorm (→ ReLU) into one pass in eval mode; the result must be what
  // the three layers give separately, with every channel's statistics non-trivial.
  using In = Shape<3, 6, 5>;
  using Folded = Sequential<Conv2d<3, 4, 3, 1, 1>, BatchNorm2d<4>, ReLU, Conv2d<4, 5, 3, 2, 1>, BatchNorm2d<5>>;
  Model<Folded, In> folded(3);
  Model<Conv2d<3, 4, 3, 1, 1>, In> conv1;
  Model<BatchNorm2d<4>, Shape<4, 6, 5>> bn1;
  Model<ReLU, Shape<4, 6, 5>> relu;
  Model<Conv2d<4, 5, 3, 2, 1>, Shape<4, 6, 5>> conv2;
  Model<BatchNorm2d<5>, Shape<5, 3, 3>> bn2;
  Rng rng(11);
  auto& net = folded.network();
  for (auto* bn : {&net.layer<1>().running_mean.value, &net.layer<4>().running_mean.value})
    for (auto& v : *bn) v = float(rng.uniform(-1, 1));
  for (auto* bn : {&net.layer<1>().running_var.value, &net.layer<4>().running_var.value})
    for (auto& v : *bn) v = float(rng.uniform(0.2, 3));
  for (auto* p : {&net.layer<1>().weight.value, &net.layer<1>().bias.value, &net.layer<4>().weight.value,
                  &net.layer<4>().bias.value})
    for (auto& v : *p) v = float(rng.uniform(-2, 2));
  conv1.network().weight.value = net.layer<0>().weight.value;
  conv2.network().weight.value = net.layer<3>().weight.value;
  auto copy_bn = [](auto& to, auto& from) {
    to.weight.value = from.weight.value, to.bias.value = from.bias.value;
    to.running_mean.value = from.running_mean.value, to.running_var.value = from.running_var.value;
  };
  copy_bn(bn1.network(), net.layer<1>());
  copy_bn(bn2.network(), net.layer<4>());
  Batch<In> x(3);
  for (auto& v : x.values()) v = float(rng.uniform(-1, 1));
  const auto& hidden = relu.forward(bn1.forward(conv1.forward(x)));
  const auto& expected = bn2.forward(conv2.forward(hidden));
  const auto& y = folded.forward(x, Mode::eval);
  BOOST_TEST(y.value_count() == expected.value_count());
  for (std::size_t i = 0; i < y.value_count(); ++i)
    BOOST_TEST(y.values()[i] == expected.values()[i], tt::tolerance(1e-5f));
  BOOST_TEST(std::count(hidden.values().begin(), hidden.values().end(), 0.0f) > 0);  // the ReLU clamped some
  BOOST_TEST(net.layer<1>().num_batches_tracked.value == 0);
}

BOOST_AUTO_TEST_CASE(train_mode_batchnorm_relu_fusion_matches_the_layers_run_one_by_one) {
  // In train mode Sequential runs BatchNorm → ReLU as one pass and never stores the BatchNorm
  // output; outputs, running statistics and every gradient must be those of the separate layers.
  using In = Shape<2, 5, 4>;
  Model<Sequential<BatchNorm2d<2>, ReLU, Conv2d<2, 3, 3, 1, 1>>, In> fused(4);
  Model<BatchNorm2d<2>, In> bn;
  Model<ReLU, In> relu;
  Model<Conv2d<2, 3, 3, 1, 1>, In> conv;
  Rng rng(5);
  auto& net = fused.network();
  for (auto* p : {&net.layer<0>().weight.value, &net.layer<0>().bias.value})
    for (auto& v : *p) v = float(rng.uniform(-2, 2));
  bn.network().weight.value = net.layer<0>().weight.value;
  bn.network().bias.value = net.layer<0>().bias.value;
  conv.network().weight.value = net.layer<2>().weight.value;
  Batch<In> x(3);
  for (auto& v : x.values()) v = float(rng.uniform(-1, 1));
  const auto& hidden = relu.forward(bn.forward(x, Mode::train), Mode::train);
  const auto& expected = conv.forward(hidden, Mode::train);
  const auto& y = fused.forward(x, Mode::train);
  BOOST_TEST(values_of(y) == values_of(expected), tt::per_element());
  BOOST_TEST(net.layer<0>().running_mean.value == bn.network().running_mean.value, tt::per_element());
  BOOST_TEST(net.layer<0>().running_var.value == bn.network().running_var.value, tt::per_element());
  BOOST_TEST(std::count(hidden.values().begin(), hidden.values().end(), 0.0f) > 0);  // the ReLU clamped some

  Batch<Shape<3, 5, 4>> dy(3);
  for (auto& v : dy.values()) v = float(rng.uniform(-1, 1));
  Batch<In> dx, dhidden, dnormalised, dx_expected;
  fused.backward(dy, &dx);
  conv.backward(dy, &dhidden);
  relu.backward(dhidden, &dnormalised);
  bn.backward(dnormalised, &dx_expected);
  BOOST_TEST(values_of(dx) == values_of(dx_expected), tt::per_element());
  BOOST_TEST(net.layer<0>().weight.grad == bn.network().weight.grad, tt::per_element());
  BOOST_TEST(net.layer<2>().weight.grad == conv.network().weight.grad, tt::per_element());
  BOOST_TEST(net.layer<0>().weight.grad[0] != 0.0f);
}

// Residual adds the shortcut as its main branch's last BatchNorm (or, folded in eval mode, the
// convolution before it) stores; a trailing Identity keeps the branch's own output and the
// separate add. Both must agree bit for bit, forward and backward, in train and eval mode.
template <class Main, class Shortcut, ShapeType In>
void check_residual_fusion() {
  using Separate = Sequential<Main, Identity>;
  Model<Residual<Main, Shortcut>, In> fused(7);
  Model<Residual<Separate, Shortcut>, In> separate(7);
  Rng rng(9);
  Batch<In> x(3);
  for (auto& v : x.values()) v = float(rng.uniform(-1, 1));
  for (const Mode mode : {Mode::train, Mode::eval}) {
    const auto& y = fused.forward(x, mode);
    const auto& expected = separate.forward(x, mode);
    BOOST_TEST(values_of(y) == values_of(expected), tt::per_element());
    BOOST_TEST(std::count(y.values().begin(), y.values().end(), 0.0f) > 0);  // the ReLU clamped some
    std::remove_cvref_t<decltype(y)> dy(3);
    for (auto& v : dy.values()) v = float(rng.uniform(-1, 1));
    Batch<In> dx, dx_expected;
    fused.zero_grad();
    separate.zero_grad();
    fused.backward(dy, &dx);
    separate.backward(dy, &dx_expected);
    BOOST_TEST(values_of(dx) == values_of(dx_expected), tt::per_element());
    std::vector<float> grads, expected_grads;
    fused.visit(OnParameters{[&](const std::string&, Parameter<float>& p) { grads.insert(grads.end(), p.grad.begin(), p.grad.end()); }});
    separate.visit(OnParameters{
        [&](const std::string&, Parameter<float>& p) { expected_grads.insert(expected_grads.end(), p.grad.begin(), p.grad.end()); }});
    BOOST_TEST(grads == expected_grads, tt::per_element());
    BOOST_TEST(std::count(grads.begin(), grads.end(), 0.0f) < std::ptrdiff_t(grads.size()));
  }
}

BOOST_AUTO_TEST_CASE(residual_adds_the_shortcut_as_the_main_branch_stores) {
  check_residual_fusion<Sequential<Conv2d<3, 3, 3, 1, 1>, BatchNorm2d<3>, ReLU, Conv2d<3, 3, 3, 1, 1>, BatchNorm2d<3>>,
                        Identity, Shape<3, 4, 4>>();
  check_residual_fusion<Sequential<Conv2d<2, 3, 3, 2, 1>, BatchNorm2d<3>, ReLU, Conv2d<3, 3, 3, 1, 1>, BatchNorm2d<3>>,
                        Sequential<Conv2d<2, 3, 1, 2, 0>, BatchNorm2d<3>>, Shape<2, 5, 5>>();
  // A main branch that is a BatchNorm itself, or a chain whose last layer is a chain.
  check_residual_fusion<BatchNorm2d<3>, Identity, Shape<3, 4, 4>>();
  check_residual_fusion<Sequential<Conv2d<3, 3, 3, 1, 1>, Sequential<BatchNorm2d<3>>>, Identity, Shape<3, 4, 4>>();
}

BOOST_AUTO_TEST_CASE(update_bn_averages_batch_statistics_for_the_current_weights) {
  // update_bn replaces the momentum averages by the plain average over the batches given: the
  // mean of the batch means and of the unbiased batch variances (PyTorch's momentum=None).
  using In = Shape<2, 5, 4>;
  using Mid = Shape<3, 5, 4>;
  Model<Sequential<Conv2d<2, 3, 3, 1, 1>, BatchNorm2d<3>, ReLU>, In> model(6);
  Model<Conv2d<2, 3, 3, 1, 1>, In> conv;
  conv.network().weight.value = model.network().layer<0>().weight.value;
  auto& bn = model.network().layer<1>();
  Rng rng(8);
  std::vector<Batch<In>> batches;
  for (std::size_t n : {2, 3, 4}) {
    batches.emplace_back(n);
    const double offset = rng.uniform(-1, 1);
    for (auto& v : batches.back().values()) v = float(offset + rng.uniform(-1, 1) * double(n));
  }
  model.forward(batches[0], Mode::train);  // momentum averages that update_bn must discard
  const auto weights = bn.weight.value;
  std::vector<double> mean(3, 0.0), var(3, 0.0);
  for (const auto& b : batches) {
    const auto& y = conv.forward(b);
    const double count = double(b.batch_size() * Mid::plane);
    for (int c = 0; c < 3; ++c) {
      double sum = 0, squares = 0;
      for (std::size_t n = 0; n < b.batch_size(); ++n)
        for (std::size_t i = 0; i < Mid::plane; ++i) sum += y.image(n)[c * Mid::plane + i];
      for (std::size_t n = 0; n < b.batch_size(); ++n)
        for (std::size_t i = 0; i < Mid::plane; ++i) squares += std::pow(y.image(n)[c * Mid::plane + i] - sum / count, 2);
      mean[c] += sum / count / 3;
      var[c] += squares / (count - 1) / 3;
    }
  }
  std::size_t next = 0;
  update_bn(model, [&]() -> const Batch<In>* { return next < batches.size() ? &batches[next++] : nullptr; });
  for (int c = 0; c < 3; ++c) {
    BOOST_TEST(bn.running_mean.value[c] == mean[c], tt::tolerance(1e-5));
    BOOST_TEST(bn.running_var.value[c] == var[c], tt::tolerance(1e-5));
  }
  BOOST_TEST(bn.num_batches_tracked.value == 3);
  BOOST_TEST(bn.weight.value == weights, tt::per_element());
  BOOST_TEST(!ctnn::detail::cumulative_batchnorm_statistics);
  model.forward(batches[0], Mode::train);  // back to momentum 0.1 afterwards
  const auto& y = conv.forward(batches[0]);
  double sum = 0;
  for (std::size_t n = 0; n < 2; ++n)
    for (std::size_t i = 0; i < Mid::plane; ++i) sum += y.image(n)[i];
  BOOST_TEST(bn.running_mean.value[0] == 0.9 * mean[0] + 0.1 * sum / double(2 * Mid::plane), tt::tolerance(1e-5));

  Model<Conv2d<2, 3, 3, 1, 1>, In> no_batchnorm;
  std::size_t calls = 0;
  update_bn(no_batchnorm, [&]() -> const Batch<In>* { ++calls; return nullptr; });
  BOOST_TEST(calls == 0);
}

BOOST_AUTO_TEST_CASE(batchnorm_rejects_a_single_value_per_channel_in_training) {
  Model<BatchNorm2d<1>, Shape<1, 1, 1>> m;
  Batch<Shape<1, 1, 1>> x(1);
  BOOST_CHECK_THROW(m.forward(x, Mode::train), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(relu_clamps_negatives) {
  Model<ReLU, Shape<1, 1, 3>> m;
  Batch<Shape<1, 1, 3>> x(1);
  x.values()[0] = -1, x.values()[1] = 0, x.values()[2] = 2;
  const std::vector<float> expected{0, 0, 2};
  BOOST_TEST(values_of(m.forward(x)) == expected, tt::per_element());
}

BOOST_AUTO_TEST_CASE(maxpool_pads_with_minus_infinity) {
  Model<MaxPool2d<3, 2, 1>, Shape<1, 4, 4>> m;
  const auto x = iota_batch<Shape<1, 4, 4>>(1);
  const std::vector<float> expected{6, 8, 14, 16};
  BOOST_TEST(values_of(m.forward(x)) == expected, tt::per_element());
  Batch<Shape<1, 4, 4>> negative(1);
  std::fill(negative.values().begin(), negative.values().end(), -5.0f);
  const std::vector<float> all_minus_five(4, -5.0f);  // zero padding would give 0 at the borders
  BOOST_TEST(values_of(m.forward(negative)) == all_minus_five, tt::per_element());
}

// Every window's maximum taken directly, against forward()'s rows-then-columns passes, for
// geometries whose last input rows and columns fall outside every window (floor mode) or whose
// windows overlap, with values that tie and go negative.
template <int K, int S, int P, ShapeType In>
void check_maxpool_against_windows() {
  using Pool = MaxPool2d<K, S, P>;
  typename Pool::template Module<In, float> pool;
  using Out = typename Pool::template Module<In, float>::output_shape;
  Batch<In> x(2);
  for (std::size_t i = 0; i < x.values().size(); ++i) x.values()[i] = float(int(i * 37 % 23) - 15);
  Batch<Out> y;
  pool.forward(x, y, Mode::eval);
  std::vector<float> expected;
  for (int plane = 0; plane < 2 * In::channels; ++plane)
    for (int oy = 0; oy < Out::height; ++oy)
      for (int ox = 0; ox < Out::width; ++ox) {
        float best = -std::numeric_limits<float>::infinity();
        for (int iy = oy * S - P; iy < oy * S - P + K; ++iy)
          for (int ix = ox * S - P; ix < ox * S - P + K; ++ix)
            if (iy >= 0 && iy < In::height && ix >= 0 && ix < In::width)
              best = std::max(best, x.values()[(plane * In::height + iy) * In::width + ix]);
        expected.push_back(best);
      }
  BOOST_TEST(values_of(y) == expected, tt::per_element());
}

BOOST_AUTO_TEST_CASE(maxpool_matches_every_window_taken_directly) {
  check_maxpool_against_windows<3, 2, 1, Shape<3, 9, 11>>();
  check_maxpool_against_windows<3, 2, 1, Shape<2, 8, 8>>();
  check_maxpool_against_windows<2, 2, 0, Shape<2, 5, 7>>();   // last row and column in no window
  check_maxpool_against_windows<3, 3, 0, Shape<1, 10, 11>>();
  check_maxpool_against_windows<3, 1, 1, Shape<2, 6, 5>>();
  check_maxpool_against_windows<5, 2, 2, Shape<1, 7, 20>>();
}

BOOST_AUTO_TEST_CASE(maxpool_gradient_goes_to_the_first_maximum_or_the_last_nan) {
  // PyTorch's rule (val > max || isnan(val)): ties keep the first, a NaN wins, later NaNs win.
  // forward() keeps no argmax; backward() must find the same input again.
  MaxPool2d<2, 2, 0>::Module<Shape<1, 2, 6>, float> pool;
  Batch<Shape<1, 2, 6>> x(1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> input{1, 3, 5, nan, -0.0f, 0.0f,  //
                                 3, 2, nan, 5, 0.0f, -0.0f};
  std::copy(input.begin(), input.end(), x.values().begin());
  Batch<Shape<1, 1, 3>> y, dy(1);
  pool.forward(x, y, Mode::train);
  BOOST_TEST(y.values()[0] == 3.0f);
  BOOST_TEST(std::isnan(y.values()[1]));
  BOOST_TEST(y.values()[2] == 0.0f);
  dy.values()[0] = 10, dy.values()[1] = 20, dy.values()[2] = 30;
  Batch<Shape<1, 2, 6>> dx;
  pool.backward(x, y, dy, &dx);
  const std::vector<float> expected{0, 10, 0, 0, 30, 0,  //
                                    0, 0, 20, 0, 0, 0};
  BOOST_TEST(values_of(dx) == expected, tt::per_element());
}

BOOST_AUTO_TEST_CASE(avgpool_counts_padding_in_the_divisor) {
  Model<AvgPool2d<3, 2, 1>, Shape<1, 4, 4>> m;
  const auto x = iota_batch<Shape<1, 4, 4>>(1);
  const std::vector<float> expected{(1 + 2 + 5 + 6) / 9.0f, (2 + 3 + 4 + 6 + 7 + 8) / 9.0f,
                                    (5 + 6 + 9 + 10 + 13 + 14) / 9.0f, (6 + 7 + 8 + 10 + 11 + 12 + 14 + 15 + 16) / 9.0f};
  BOOST_TEST(values_of(m.forward(x)) == expected, tt::tolerance(1e-6f) << tt::per_element());
  Model<AvgPool2d<2>, Shape<1, 4, 4>> plain;
  const std::vector<float> quarters{3.5f, 5.5f, 11.5f, 13.5f};
  BOOST_TEST(values_of(plain.forward(x)) == quarters, tt::per_element());
}

BOOST_AUTO_TEST_CASE(global_average_pool_and_flatten) {
  Model<Sequential<GlobalAvgPool2d, Flatten>, Shape<2, 2, 2>> m;
  static_assert(std::is_same_v<decltype(m)::output_shape, Shape<2, 1, 1>>);
  const auto x = iota_batch<Shape<2, 2, 2>>(2);
  const std::vector<float> expected{2.5f, 6.5f, 10.5f, 14.5f};
  BOOST_TEST(values_of(m.forward(x)) == expected, tt::per_element());
  Model<Flatten, Shape<2, 2, 3>> flat;
  static_assert(std::is_same_v<decltype(flat)::output_shape, Shape<12, 1, 1>>);
  const auto y = iota_batch<Shape<2, 2, 3>>(1);
  BOOST_TEST(values_of(flat.forward(y)) == values_of(y), tt::per_element());
}

BOOST_AUTO_TEST_CASE(linear_is_weight_times_input_plus_bias) {
  Model<Linear<2, 3>, Shape<2, 1, 1>> m;
  m.network().weight.value = {1, 2, 3, 4, 5, 6};  // rows are outputs, as PyTorch's [out, in]
  m.network().bias.value = {1, 1, 1};
  Batch<Shape<2, 1, 1>> x(1);
  x.values()[0] = 1, x.values()[1] = 1;
  const std::vector<float> expected{4, 8, 12};
  BOOST_TEST(values_of(m.forward(x)) == expected, tt::per_element());
}

BOOST_AUTO_TEST_CASE(identity_and_residual_add_then_relu) {
  // relu(x + x) through an identity shortcut with an identity main branch.
  Model<Residual<Identity>, Shape<1, 1, 3>> m;
  Batch<Shape<1, 1, 3>> x(1);
  x.values()[0] = -1, x.values()[1] = 0.5f, x.values()[2] = 2;
  const std::vector<float> expected{0, 1, 4};
  BOOST_TEST(values_of(m.forward(x)) == expected, tt::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(loss)

BOOST_AUTO_TEST_CASE(cross_entropy_known_values) {
  Batch<Shape<3, 1, 1>> logits(2);
  const float raw[] = {1, 2, 3, 0, 0, 0};
  std::copy(raw, raw + 6, logits.data());
  const int labels[] = {2, 0};
  Batch<Shape<3, 1, 1>> grad;
  const float loss = cross_entropy(logits, std::span<const int>(labels), &grad);
  const double first = std::log(1 + std::exp(-1.0) + std::exp(-2.0)), second = std::log(3.0);
  BOOST_TEST(loss == (first + second) / 2, tt::tolerance(1e-6));
  // Gradient: (softmax − onehot) / N.
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  BOOST_TEST(grad.values()[2] == (std::exp(3.0) / z - 1) / 2, tt::tolerance(1e-5));
  BOOST_TEST(grad.values()[0] == std::exp(1.0) / z / 2, tt::tolerance(1e-5));
  BOOST_TEST(grad.values()[3] == (1.0 / 3 - 1) / 2, tt::tolerance(1e-5));
}

BOOST_AUTO_TEST_CASE(cross_entropy_is_stable_for_large_logits) {
  Batch<Shape<2, 1, 1>> logits(1);
  logits.values()[0] = 1000, logits.values()[1] = 0;
  const int label[] = {1};
  BOOST_TEST(cross_entropy(logits, std::span<const int>(label)) == 1000.0f, tt::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(cross_entropy_gradient_matches_finite_differences) {
  Batch<Shape<4, 1, 1>, double> logits(3), grad;
  Rng rng(3);
  ctnn::testing::fill_random(logits, rng, -3, 3);
  const int labels[] = {0, 3, 1};
  cross_entropy(logits, std::span<const int>(labels), &grad);
  for (std::size_t i = 0; i < logits.value_count(); ++i) {
    const double saved = logits.data()[i], h = 1e-6;
    logits.data()[i] = saved + h;
    const double up = cross_entropy(logits, std::span<const int>(labels));
    logits.data()[i] = saved - h;
    const double down = cross_entropy(logits, std::span<const int>(labels));
    logits.data()[i] = saved;
    BOOST_TEST(grad.data()[i] == (up - down) / (2 * h), tt::tolerance(1e-6));
  }
}

BOOST_AUTO_TEST_CASE(cross_entropy_rejects_bad_labels) {
  Batch<Shape<3, 1, 1>> logits(2);
  const int out_of_range[] = {0, 3};
  BOOST_CHECK_EXCEPTION(cross_entropy(logits, std::span<const int>(out_of_range)), std::out_of_range,
                        [](const std::exception& e) { return std::string(e.what()).find("label 3 of sample 1") != std::string::npos; });
  const int too_few[] = {0};
  BOOST_CHECK_THROW(cross_entropy(logits, std::span<const int>(too_few)), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(softmax_sums_to_one_and_orders_like_logits) {
  Batch<Shape<3, 1, 1>> logits(1), p;
  logits.values()[0] = 1, logits.values()[1] = 3, logits.values()[2] = 2;
  softmax(logits, p);
  const double z = std::exp(1.0) + std::exp(3.0) + std::exp(2.0);
  BOOST_TEST(p.values()[1] == std::exp(3.0) / z, tt::tolerance(1e-6));
  BOOST_TEST(p.values()[0] + p.values()[1] + p.values()[2] == 1.0f, tt::tolerance(1e-6f));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(gradients)

BOOST_AUTO_TEST_CASE(conv2d_padded_strided) { check_gradients<Conv2d<2, 3, 3, 2, 1>, Shape<2, 5, 5>>(Mode::train); }
BOOST_AUTO_TEST_CASE(conv2d_with_bias) { check_gradients<Conv2d<2, 2, 2, 1, 0, true>, Shape<2, 4, 3>>(Mode::train); }
BOOST_AUTO_TEST_CASE(conv2d_pointwise) { check_gradients<Conv2d<3, 2, 1>, Shape<3, 3, 3>>(Mode::train); }
BOOST_AUTO_TEST_CASE(conv2d_pointwise_strided) { check_gradients<Conv2d<3, 2, 1, 2>, Shape<3, 5, 5>>(Mode::train); }
BOOST_AUTO_TEST_CASE(batchnorm_train) { check_gradients<BatchNorm2d<3>, Shape<3, 2, 3>>(Mode::train); }
BOOST_AUTO_TEST_CASE(batchnorm_eval) { check_gradients<BatchNorm2d<3>, Shape<3, 2, 3>>(Mode::eval); }
BOOST_AUTO_TEST_CASE(relu) { check_gradients<ReLU, Shape<2, 3, 3>>(Mode::train); }
BOOST_AUTO_TEST_CASE(maxpool) { check_gradients<MaxPool2d<3, 2, 1>, Shape<2, 5, 5>>(Mode::train); }
BOOST_AUTO_TEST_CASE(avgpool_padded) { check_gradients<AvgPool2d<3, 2, 1>, Shape<2, 5, 5>>(Mode::train); }
BOOST_AUTO_TEST_CASE(avgpool_plain) { check_gradients<AvgPool2d<2>, Shape<2, 4, 4>>(Mode::train); }
BOOST_AUTO_TEST_CASE(global_avgpool) { check_gradients<GlobalAvgPool2d, Shape<3, 3, 2>>(Mode::train); }
BOOST_AUTO_TEST_CASE(flatten) { check_gradients<Flatten, Shape<2, 2, 3>>(Mode::train); }
BOOST_AUTO_TEST_CASE(linear) { check_gradients<Linear<6, 4>, Shape<6, 1, 1>>(Mode::train); }
BOOST_AUTO_TEST_CASE(linear_without_bias) { check_gradients<Linear<6, 4, false>, Shape<3, 1, 2>>(Mode::train); }
BOOST_AUTO_TEST_CASE(identity) { check_gradients<Identity, Shape<2, 2, 2>>(Mode::train); }
BOOST_AUTO_TEST_CASE(sequential) {
  check_gradients<Sequential<Conv2d<1, 2, 3, 1, 1>, BatchNorm2d<2>, ReLU, Flatten, Linear<18, 3>>, Shape<1, 3, 3>>(
      Mode::train);
}
BOOST_AUTO_TEST_CASE(residual_identity_shortcut_train) {
  check_gradients<ResidualBlock<2, 2, 1>, Shape<2, 4, 4>>(Mode::train);
}
BOOST_AUTO_TEST_CASE(residual_projection_shortcut_train) {
  check_gradients<ResidualBlock<2, 3, 2>, Shape<2, 5, 5>>(Mode::train);
}
BOOST_AUTO_TEST_CASE(residual_projection_shortcut_eval) {
  check_gradients<ResidualBlock<2, 3, 2>, Shape<2, 5, 5>>(Mode::eval);
}
BOOST_AUTO_TEST_CASE(sequential_eval_folds_batchnorm_into_the_convolution) {
  // Eval mode runs conv → BN → ReLU as one pass; backward must recompute what it skipped.
  check_gradients<Sequential<Conv2d<1, 2, 3, 1, 1>, BatchNorm2d<2>, ReLU, Flatten, Linear<18, 3>>, Shape<1, 3, 3>>(
      Mode::eval);
}
BOOST_AUTO_TEST_CASE(bottleneck_eval) { check_gradients<Bottleneck<4, 2, 2>, Shape<4, 4, 4>>(Mode::eval); }
BOOST_AUTO_TEST_CASE(bottleneck_train) { check_gradients<Bottleneck<4, 2, 2>, Shape<4, 4, 4>>(Mode::train); }
BOOST_AUTO_TEST_CASE(stage_of_three_blocks) {
  check_gradients<MakeStage<ResidualBlock, 2, 3, 3, 2>, Shape<2, 4, 4>>(Mode::train);
}

BOOST_AUTO_TEST_CASE(gradients_accumulate_until_zeroed) {
  Model<Linear<2, 1>, Shape<2, 1, 1>> m(5);
  Batch<Shape<2, 1, 1>> x(1);
  x.values()[0] = 1, x.values()[1] = 2;
  Batch<Shape<1, 1, 1>> dy(1);
  dy.values()[0] = 1;
  m.forward(x, Mode::train);
  m.backward(dy);
  m.forward(x, Mode::train);
  m.backward(dy);
  BOOST_TEST(m.network().weight.grad[1] == 4.0f);
  m.zero_grad();
  BOOST_TEST(m.network().weight.grad[1] == 0.0f);
}

BOOST_AUTO_TEST_CASE(intermediate_gradients_share_a_few_pooled_buffers) {
  // Gradients between layers live in pooled buffers only while backward() crosses them: a
  // 30-layer network ends a step holding a handful, the second step allocates none, and reusing
  // them changes no result.
  using Net = MnistResNet18<>;
  Model<Net, Shape<1, 28, 28>> model(2);
  Batch<Shape<1, 28, 28>> x(4);
  Rng rng(9);
  for (auto& v : x.values()) v = float(rng.uniform(0, 1));
  Batch<Shape<10, 1, 1>> dy(4);
  for (auto& v : dy.values()) v = float(rng.uniform(-1, 1));
  auto& pool = ctnn::detail::free_buffers<float>();
  pool.clear();
  auto step = [&] {
    model.zero_grad();
    model.forward(x, Mode::train);
    model.backward(dy);
    std::vector<float> grads;
    model.visit(OnParameters{[&](const std::string&, Parameter<float>& p) { grads.insert(grads.end(), p.grad.begin(), p.grad.end()); }});
    std::vector<const float*> buffers;
    for (const auto& buffer : pool) buffers.push_back(buffer.data());
    std::sort(buffers.begin(), buffers.end());
    return std::pair(grads, buffers);
  };
  const auto [grads1, buffers1] = step();
  const auto [grads2, buffers2] = step();
  std::size_t layers = 0;
  Model<Net, Shape<1, 28, 28>>::describe([&](const LayerRow&) { ++layers; });
  BOOST_TEST(layers > 40);
  BOOST_TEST(buffers1.size() >= 2);
  BOOST_TEST(buffers1.size() <= 8);  // two per nesting level, not one per layer
  BOOST_TEST(buffers2 == buffers1, tt::per_element());  // the same allocations, reused
  BOOST_TEST(grads2 == grads1, tt::per_element());
}

BOOST_AUTO_TEST_CASE(inference_keeps_a_few_pooled_activations_and_training_keeps_its_own) {
  // A network that has not trained evaluates in a few pooled buffers (not one per layer), the
  // second pass allocates nothing and gives the same logits, and a backward pass after it
  // recomputes what it needs. A network that trains evaluates in its own buffers: the pool is
  // left alone.
  using Net = MnistResNet18<>;
  Model<Net, Shape<1, 28, 28>> model(2);
  Batch<Shape<1, 28, 28>> x(4);
  Rng rng(9);
  for (auto& v : x.values()) v = float(rng.uniform(0, 1));
  auto& pool = ctnn::detail::free_buffers<float>();
  pool.clear();
  auto held = [&] {
    std::vector<const float*> buffers;
    for (const auto& buffer : pool) buffers.push_back(buffer.data());
    std::sort(buffers.begin(), buffers.end());
    return buffers;
  };
  auto copy = [](auto values) { return std::vector<float>(values.begin(), values.end()); };
  const auto logits1 = copy(model.forward(x, Mode::eval).values());
  const auto held1 = held();
  const auto logits2 = copy(model.forward(x, Mode::eval).values());
  BOOST_TEST(held1.size() >= 2);
  BOOST_TEST(held1.size() <= 8);  // two per nesting level, not one per layer (over 40)
  BOOST_TEST(held() == held1, tt::per_element());
  BOOST_TEST(logits2 == logits1, tt::per_element());

  // The same weights in a network that has trained (so holds its own buffers).
  Model<Net, Shape<1, 28, 28>> trained(3);
  trained.forward(x, Mode::train);
  std::vector<AlignedVector<float>> state;
  model.visit([&](const std::string&, auto& tensor) {
    if constexpr (!std::is_same_v<std::decay_t<decltype(tensor)>, Counter>) state.push_back(tensor.value);
  });
  std::size_t next = 0;
  trained.visit([&](const std::string&, auto& tensor) {
    if constexpr (!std::is_same_v<std::decay_t<decltype(tensor)>, Counter>) tensor.value = state[next++];
  });
  const auto before = held();
  BOOST_TEST(copy(trained.forward(x, Mode::eval).values()) == logits1, tt::per_element());
  BOOST_TEST(held() == before, tt::per_element());  // evaluated in its training buffers

  // Backward after the pooled forward recomputes the activations it needs: the same input gradient.
  Batch<Shape<10, 1, 1>> dy(4);
  for (auto& v : dy.values()) v = float(rng.uniform(-1, 1));
  Batch<Shape<1, 28, 28>> dx_pooled, dx_kept;
  model.zero_grad();
  model.backward(dy, &dx_pooled);
  trained.zero_grad();
  trained.backward(dy, &dx_kept);
  BOOST_TEST(copy(dx_pooled.values()) == copy(dx_kept.values()), tt::per_element());
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(panel_kernels)

// ChannelTransform::store against the expressions BatchNorm2d and Residual use, for every
// combination of scale, shift, residual and ReLU and every row length up to three vectors: each
// stored value bit for bit (a NaN stays NaN through the ReLU, −0 stays −0), nothing written past
// the row.
BOOST_AUTO_TEST_CASE(channel_transform_store_matches_the_layers_expressions) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Rng rng(11);
  const std::vector<float> scale{0.5f, -1.25f}, shift{0.75f, -0.3f};
  for (int flags = 0; flags < 16; ++flags)
    for (std::size_t length = 1; length <= 49; ++length) {
      const bool scaled = flags & 1, shifted = flags & 2, added = flags & 4, relu = flags & 8;
      std::vector<float> row(length), residual(length + 8), out(length + 8, 99.0f);
      for (auto& v : row) v = float(rng.uniform(-2, 2));
      for (auto& v : residual) v = float(rng.uniform(-2, 2));
      row[0] = -0.0f;
      if (length > 3) row[3] = nan;
      const kernels::ChannelTransform<float> transform{scaled ? scale.data() : nullptr, shifted ? shift.data() : nullptr,
                                                       relu, added ? residual.data() : nullptr};
      transform.store(row.data(), length, 1, out.data(), 4);  // channel 1, at offset 4
      for (std::size_t i = 0; i < length; ++i) {
        float v = row[i];
        // One rounding where there is an FMA, as GCC contracts BatchNorm2d's v · scale + shift (the
        // fused-layer tests hold those two together); the same expression here was not contracted.
#if defined(__FMA__)
        if (scaled) v = std::fma(v, scale[1], shifted ? shift[1] : 0.0f);
#else
        if (scaled) v = v * scale[1] + (shifted ? shift[1] : 0.0f);
#endif
        else if (shifted) v = v + shift[1];
        if (added) v = v + residual[4 + i];
        if (relu) v = std::max(v, 0.0f);
        BOOST_TEST(std::bit_cast<std::uint32_t>(out[4 + i]) == std::bit_cast<std::uint32_t>(v),
                   "flags " << flags << " length " << length << " value " << i << ": " << out[4 + i] << " vs " << v);
      }
      for (std::size_t i : {0u, 1u, 2u, 3u}) BOOST_TEST(out[i] == 99.0f);
      for (std::size_t i = 4 + length; i < out.size(); ++i) BOOST_TEST(out[i] == 99.0f, "written past the row: " << i);
    }
}

// bordered_row against its contract for borders of 1–3 and rows of 1–40 values (one to three
// vectors, each shifted by the border): zeros, the row, zeros, and nothing written past them.
BOOST_AUTO_TEST_CASE(bordered_row_is_zeros_row_zeros) {
  const auto check = [&]<int P>() {
    for (int length = 1; length <= 40; ++length) {
      std::vector<float> in(length), out(length + 2 * P + 20, 99.0f);
      for (int i = 0; i < length; ++i) in[i] = float(i + 1);
      kernels::bordered_row<P>(in.data(), length, out.data() + 4);  // 4 guard values before
      for (int i = 0; i < int(out.size()); ++i) {
        const int j = i - 4;  // position in the bordered row
        const float expected = j < 0 || j >= length + 2 * P ? 99.0f : j < P || j >= P + length ? 0.0f : in[j - P];
        BOOST_TEST(out[i] == expected, "border " << P << ", length " << length << ", value " << j);
      }
    }
  };
  check.template operator()<1>();
  check.template operator()<2>();
  check.template operator()<3>();
}

// LaneSums against the order it promises, for float terms (the AVX-512 path) and double terms:
// value i of each call into lane i mod 16, lanes summed pairwise at the end, bit for bit. The
// terms cancel (BatchNorm's gradient sums do), so a lane out of place or a product rounded to
// float before its sum changes the last bits.
BOOST_AUTO_TEST_CASE(lane_sums_add_each_lane_in_call_order) {
  Rng rng(12);
  const auto check = [&]<class T>(T) {
    for (const std::vector<std::size_t>& calls :
         {std::vector<std::size_t>{1}, {15, 16, 17}, {49, 49, 49, 3}, {784, 16}, {196, 196, 5, 33}}) {
      kernels::LaneSums sums;
      double first[16] = {}, second[16] = {};
      for (std::size_t n : calls) {
        std::vector<T> a(n), b(n);
        // Float values for both term types: their products are exact in double, so the reference
        // rounds once per addition however the compiler contracts it.
        for (auto& v : a) v = T(float(rng.uniform(-1, 1) * 1e3));
        for (auto& v : b) v = T(float(rng.uniform(-1, 1) * 1e-3));
        sums.add_products(n, [&](std::size_t i) { return a[i]; }, [&](std::size_t i) { return b[i]; });
        // add_squares(v, n) is add_products(n, v, v), also as rows of a plane (copied on the way).
        std::vector<T> plane(3 * (n + 5)), copied(3 * (n + 2), T(99));
        for (auto& v : plane) v = T(float(rng.uniform(-1, 1) * 1e2));
        kernels::LaneSums squares, products;
        squares.add_squares(plane.data(), n, 3, n + 5, copied.data(), n + 2);
        for (int row = 0; row < 3; ++row) {
          const T* v = plane.data() + row * (n + 5);
          products.add_products(n, [&](std::size_t i) { return v[i]; }, [&](std::size_t i) { return v[i]; });
          for (std::size_t i = 0; i < n + 2; ++i)
            BOOST_TEST(copied[row * (n + 2) + i] == (i < n ? v[i] : T(99)), "row " << row << " value " << i);
        }
        BOOST_TEST((squares.totals() == products.totals()), "add_squares over " << n << " values");
        for (std::size_t i = 0; i < n; ++i) {
          first[i % 16] += double(a[i]);
          second[i % 16] += double(a[i]) * double(b[i]);
        }
      }
      for (int width = 8; width > 0; width /= 2)
        for (int l = 0; l < width; ++l) first[l] += first[l + width], second[l] += second[l + width];
      const auto [sum, sum_of_products] = sums.totals();
      BOOST_TEST(std::bit_cast<std::uint64_t>(sum) == std::bit_cast<std::uint64_t>(first[0]),
                 sizeof(T) << "-byte terms, " << calls.size() << " calls: " << sum << " vs " << first[0]);
      BOOST_TEST(std::bit_cast<std::uint64_t>(sum_of_products) == std::bit_cast<std::uint64_t>(second[0]),
                 sizeof(T) << "-byte terms, " << calls.size() << " calls: " << sum_of_products << " vs " << second[0]);
    }
  };
  check(0.0f);
  check(0.0);
}

// panel_gemm against a double-precision product, over sizes that hit every register-tile edge:
// rows around multiples of 8, widths around multiples of 16 and 48, depths around panel_depth.
BOOST_AUTO_TEST_CASE(panel_gemm_matches_a_plain_product) {
  Rng rng(5);
  std::size_t checked = 0;
  for (std::size_t M : {1u, 7u, 8u, 13u, 17u})
    for (std::size_t K : {1u, 5u, 384u, 401u})
      for (std::size_t n : {1u, 15u, 16u, 17u, 47u, 48u, 49u, 100u})
        for (bool transposed_a : {false, true})
          for (bool packed : {false, true}) {
            std::vector<float> a(M * K), b(K * n), c(M * n, -7.0f);
            for (auto& v : a) v = float(rng.uniform(-1, 1));
            for (auto& v : b) v = float(rng.uniform(-1, 1));
            auto a_at = [&](std::size_t r, std::size_t k) { return transposed_a ? a[k * M + r] : a[r * K + k]; };
            const kernels::Strided<float> view = transposed_a ? kernels::Strided<float>{a.data(), 1, M}
                                                              : kernels::Strided<float>{a.data(), K, 1};
            const std::size_t panels = (n + kernels::panel_width - 1) / kernels::panel_width;
            std::vector<float> panel_data(panels * K * kernels::panel_width, 1e30f);  // junk past the width
            for (std::size_t k = 0; k < K; ++k)
              for (std::size_t j = 0; j < n; ++j)
                panel_data[(j / kernels::panel_width * K + k) * kernels::panel_width + j % kernels::panel_width] =
                    b[k * n + j];
            if (packed)
              kernels::panel_gemm<float>(M, K, view, panel_data.data(), kernels::panel_width, K * kernels::panel_width,
                                         n, c.data(), n);
            else
              kernels::panel_gemm<float>(M, K, view, b.data(), n, kernels::panel_width, n, c.data(), n);
            for (std::size_t r = 0; r < M; ++r)
              for (std::size_t j = 0; j < n; ++j) {
                double expected = 0;
                for (std::size_t k = 0; k < K; ++k) expected += double(a_at(r, k)) * b[k * n + j];
                BOOST_TEST(std::abs(c[r * n + j] - expected) < 1e-5 * (1 + std::sqrt(double(K))),
                           "M " << M << " K " << K << " n " << n << " (" << r << ", " << j << "): " << c[r * n + j]
                                << " vs " << expected);
                ++checked;
              }
          }
  BOOST_TEST(checked > 100000u);
}

// The weight-gradient form: C += A · Gᵀ with G (n × K) packed transposed, in panels of 48 or (as
// panel_width_for picks for 64 and 112 columns) 32; C starts non-zero.
BOOST_AUTO_TEST_CASE(panel_gemm_accumulates_a_transposed_pack) {
  Rng rng(6);
  BOOST_TEST(kernels::panel_width_for(64) == 32u);
  BOOST_TEST(kernels::panel_width_for(16) == kernels::panel_width);
  BOOST_TEST(kernels::panel_width_for(128) == kernels::panel_width);
  for (std::size_t M : {3u, 9u, 16u})
    for (std::size_t K : {7u, 390u})
      for (std::size_t n : {16u, 32u, 50u, 64u, 96u, 112u}) {
        std::vector<float> a(M * K), g(n * K), c(M * n);
        for (auto* v : {&a, &g, &c})
          for (auto& e : *v) e = float(rng.uniform(-1, 1));
        const std::vector<float> c0 = c;
        const std::size_t width = kernels::panel_width_for(n);
        std::vector<float> panels(kernels::whole_panels(n) * K);
        kernels::pack_transposed(g.data(), n, K, K, panels.data(), width);
        kernels::panel_gemm<float>(M, K, {a.data(), K, 1}, panels.data(), width, K * width, n, c.data(), n, true, width);
        for (std::size_t r = 0; r < M; ++r)
          for (std::size_t j = 0; j < n; ++j) {
            double expected = c0[r * n + j];
            for (std::size_t k = 0; k < K; ++k) expected += double(a[r * K + k]) * g[j * K + k];
            BOOST_TEST(std::abs(c[r * n + j] - expected) < 1e-5 * (1 + std::sqrt(double(K))));
          }
      }
}

// The strided input gradient by phases against the direct sum dx[c][iy][ix] = Σ w[m][c][ky][kx] ·
// dy[m][oy][ox] over iy = S·oy + ky − P, ix = S·ox + kx − P. dx starts as NaN, so a value no phase
// writes fails. Besides what conv_backward sends it (3×3 stride 2), the kernels it also handles:
// 1×1 stride 2 (phases no tap reaches, zeroed), a 7×7 stem, stride 3, inputs of one row.
template <int C, int H, int W, int K, int S, int P, int M>
void check_phase_input_gradient(std::size_t N) {
  using G = kernels::ConvGeometry<C, H, W, K, S, P>;
  Rng rng(12);
  std::vector<float> w(M * G::patch), dy(N * M * G::positions);
  std::vector<float> dx(N * G::image, std::numeric_limits<float>::quiet_NaN());
  for (auto* v : {&w, &dy})
    for (auto& e : *v) e = float(rng.uniform(-1, 1));
  kernels::phase_input_gradient<G, M>(dy.data(), N, w.data(), dx.data());
  std::vector<double> expected(dx.size(), 0.0);
  for (std::size_t n = 0; n < N; ++n)
    for (int m = 0; m < M; ++m)
      for (int c = 0; c < C; ++c)
        for (int ky = 0; ky < K; ++ky)
          for (int kx = 0; kx < K; ++kx)
            for (int oy = 0; oy < G::out_height; ++oy)
              for (int ox = 0; ox < G::out_width; ++ox) {
                const int iy = S * oy + ky - P, ix = S * ox + kx - P;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                expected[n * G::image + (std::size_t(c) * H + iy) * W + ix] +=
                    double(w[((std::size_t(m) * C + c) * K + ky) * K + kx]) *
                    dy[(n * M + m) * G::positions + std::size_t(oy) * G::out_width + ox];
              }
  const double tolerance = 1e-6 * std::sqrt(double(M) * K * K);
  std::size_t wrong = 0;
  for (std::size_t i = 0; i < dx.size(); ++i)
    if (!(std::abs(dx[i] - expected[i]) <= tolerance * (1 + std::abs(expected[i])))) ++wrong;
  BOOST_TEST(wrong == 0u, C << "×" << H << "×" << W << " K" << K << " S" << S << " → " << M << ", batch " << N);
}
BOOST_AUTO_TEST_CASE(phase_input_gradient_matches_the_direct_sum) {
  check_phase_input_gradient<4, 7, 7, 3, 2, 1, 8>(9);      // MNIST's last strided layer, 3 images a chunk
  check_phase_input_gradient<3, 9, 11, 3, 2, 1, 5>(5);
  check_phase_input_gradient<3, 7, 6, 1, 2, 0, 4>(9);      // 1×1: three phases of zeros
  check_phase_input_gradient<3, 20, 21, 7, 2, 3, 5>(2);    // dy bordered on both sides
  check_phase_input_gradient<2, 10, 30, 3, 3, 1, 3>(2);    // stride 3
  check_phase_input_gradient<2, 1, 5, 3, 2, 1, 3>(2);      // one row: phase row 0 unused
  check_phase_input_gradient<64, 14, 14, 3, 2, 1, 512>(1); // weights over 1 MiB: channels split
}

template <class>
struct ConvParameters;
template <int C, int M, int K, int S, int P, bool B>
struct ConvParameters<Conv2d<C, M, K, S, P, B>> {
  static constexpr int in = C, out = M, kernel = K, stride = S, padding = P;
};

// Float convolutions take other routes than the double ones the gradient checks use (panel
// kernel; the input gradient of a size-keeping stride-1 convolution as a convolution of dy with
// flipped weights, of a strided one by phases): their forward and backward must agree with
// double precision. The double forward, whose tiles are the float one's, is checked against the
// direct sum.
template <class Conv, ShapeType In>
void check_float_against_double(double tolerance = 1e-5, std::size_t batch = 3) {
  Model<Conv, In, float> single(4);
  Model<Conv, In, double> reference(4);
  auto& ws = single.network().weight.value;
  auto& wd = reference.network().weight.value;
  Rng rng(9);
  for (std::size_t i = 0; i < ws.size(); ++i) wd[i] = ws[i] = float(rng.uniform(-1, 1));
  Batch<In, float> xs(batch);
  Batch<In, double> xd(batch);
  for (std::size_t i = 0; i < xs.value_count(); ++i) xd.data()[i] = xs.data()[i] = float(rng.uniform(-1, 1));
  const auto& ys = single.forward(xs, Mode::train);
  const auto& yd = reference.forward(xd, Mode::train);
  {
    using Q = ConvParameters<Conv>;
    using Out = typename Model<Conv, In, double>::Output::shape;
    const auto& bias_values = reference.network().bias.value;
    double worst = 0;
    for (std::size_t n = 0; n < batch; ++n)
      for (int m = 0; m < Q::out; ++m)
        for (int oy = 0; oy < Out::height; ++oy)
          for (int ox = 0; ox < Out::width; ++ox) {
            double sum = bias_values.empty() ? 0.0 : bias_values[m];
            for (int c = 0; c < Q::in; ++c)
              for (int ky = 0; ky < Q::kernel; ++ky)
                for (int kx = 0; kx < Q::kernel; ++kx) {
                  const int iy = oy * Q::stride + ky - Q::padding, ix = ox * Q::stride + kx - Q::padding;
                  if (iy < 0 || iy >= In::height || ix < 0 || ix >= In::width) continue;
                  sum += wd[((std::size_t(m) * Q::in + c) * Q::kernel + ky) * Q::kernel + kx] *
                         xd.image(n)[(std::size_t(c) * In::height + iy) * In::width + ix];
                }
            worst = std::max(worst, std::abs(yd.image(n)[(std::size_t(m) * Out::height + oy) * Out::width + ox] - sum));
          }
    BOOST_TEST(worst < 1e-9, "the double forward is " << worst << " from the direct sum");
  }
  typename Model<Conv, In, float>::Output gs(batch);
  typename Model<Conv, In, double>::Output gd(batch);
  for (std::size_t i = 0; i < gs.value_count(); ++i) gd.data()[i] = gs.data()[i] = float(rng.uniform(-1, 1));
  Batch<In, float> dxs;
  Batch<In, double> dxd;
  single.zero_grad(), reference.zero_grad();
  single.backward(gs, &dxs);
  reference.backward(gd, &dxd);
  // Sums of up to ~100 products of values in [-1, 1]: float rounding stays far below 1e-5 of scale
  // (callers with longer sums pass a wider tolerance).
  auto close = [tolerance](double a, double b) { return std::abs(a - b) <= tolerance * (1 + std::abs(b)); };
  for (std::size_t i = 0; i < ys.value_count(); ++i) BOOST_TEST(close(ys.data()[i], yd.data()[i]), "y[" << i << "]");
  for (std::size_t i = 0; i < dxs.value_count(); ++i) BOOST_TEST(close(dxs.data()[i], dxd.data()[i]), "dx[" << i << "]");
  for (std::size_t i = 0; i < ws.size(); ++i)
    BOOST_TEST(close(single.network().weight.grad[i], reference.network().weight.grad[i]), "dw[" << i << "]");
  const auto& bias = single.network().bias.grad;  // empty without a bias
  for (std::size_t i = 0; i < bias.size(); ++i)
    BOOST_TEST(close(bias[i], reference.network().bias.grad[i]), "dbias[" << i << "]");
}
BOOST_AUTO_TEST_CASE(float_convolutions_agree_with_double) {
  check_float_against_double<Conv2d<5, 6, 3, 1, 1>, Shape<5, 9, 7>>();   // dx by flipped convolution
  check_float_against_double<Conv2d<4, 9, 1>, Shape<4, 6, 6>>();         // pointwise, dx likewise
  check_float_against_double<Conv2d<3, 4, 3, 2, 1>, Shape<3, 9, 9>>();   // strided: dx by phases
  check_float_against_double<Conv2d<2, 3, 5, 1, 2>, Shape<2, 6, 5>>();   // 5×5, padding 2
  check_float_against_double<Conv2d<2, 3, 7, 1, 3>, Shape<2, 5, 20>>();  // 7×7, bordered rows of 26
  // Short output rows are assembled by permutes, 16 columns from 32 inputs: rows 32 apart (one
  // row per permute), whole images per 16 columns, and a backward tile of more than 64 columns.
  check_float_against_double<Conv2d<2, 3, 3, 2, 1>, Shape<2, 14, 14>>();
  check_float_against_double<Conv2d<3, 4, 3, 1, 1>, Shape<3, 4, 4>>();
  // Stride-2 rows longer than a vector: strided copies into the patch rows, and out of them (col2im
  // at 1×1, the input gradient's phases at 3×3).
  check_float_against_double<Conv2d<2, 3, 3, 2, 1>, Shape<2, 6, 38>>();
  check_float_against_double<Conv2d<2, 3, 1, 2, 0>, Shape<2, 5, 40>>();
  // Rows of 8·P or more: the image is read in place (conv_forward_in_place), forward and dx.
  check_float_against_double<Conv2d<5, 6, 3, 1, 1>, Shape<5, 9, 10>>();
  check_float_against_double<Conv2d<3, 17, 5, 1, 2>, Shape<3, 7, 17>>();  // 8 + 8 + 1 rows, 2 panels
  check_float_against_double<Conv2d<2, 40, 3, 1, 1>, Shape<2, 6, 12>>();  // channels split in two tasks
  // Their weight gradient: tap correlation over a bordered image longer than one 1,024-value chunk
  // (1,264 values: chunks of 640 and 624), and (16 lane sums per weight over 1 MiB) the product
  // with panels of gᵀ.
  check_float_against_double<Conv2d<2, 5, 3, 1, 1>, Shape<2, 30, 40>>();
  check_float_against_double<Conv2d<32, 64, 3, 1, 1>, Shape<32, 8, 8>>();
  // ... and as that product for short images of 32 channels or more (a panel of 48 holding 32).
  check_float_against_double<Conv2d<3, 32, 3, 1, 1>, Shape<3, 14, 14>>();
  // Strided ones with rows of 8 or more are read in place too, from S×S phase planes: a 7×7 stem
  // (taps three planes apart), stride 3, and the panel-product weight gradient at stride 2.
  check_float_against_double<Conv2d<3, 5, 7, 2, 3>, Shape<3, 20, 21>>();
  check_float_against_double<Conv2d<2, 3, 3, 3, 1>, Shape<2, 10, 30>>();
  check_float_against_double<Conv2d<32, 64, 3, 2, 1>, Shape<32, 16, 18>>();
  check_float_against_double<Conv2d<2, 32, 3, 2, 1>, Shape<2, 28, 28>>();  // MNIST's 16→32, 2 channels
  // Weight gradients over 1 MiB, split by blocks of input channels, with dx by phases (stride 2)
  // or by the flipped convolution, and a bias; products of more than one 256-row block. Each dx
  // value sums 500–1,200 products, cancelling to ~0.1.
  check_float_against_double<Conv2d<64, 512, 3, 2, 1>, Shape<64, 14, 14>>(1e-4);
  check_float_against_double<Conv2d<64, 512, 3, 1, 1>, Shape<64, 5, 5>>(1e-4);
  check_float_against_double<Conv2d<512, 520, 1, 1, 0, true>, Shape<512, 3, 3>>(1e-4);
  // Several images per phase GEMM (batch 9: three per task), with the dropped columns between
  // them: MNIST's strided shapes and an odd-sized one.
  check_float_against_double<Conv2d<4, 8, 3, 2, 1>, Shape<4, 7, 7>>(1e-5, 9);
  check_float_against_double<Conv2d<3, 5, 3, 2, 1>, Shape<3, 14, 14>>(1e-5, 9);
  check_float_against_double<Conv2d<2, 3, 3, 2, 1>, Shape<2, 9, 11>>(1e-5, 9);
  // Forward tiles of 48 columns (a 720-value patch) whose remainder of one vector or less joins
  // the last tile, packed as 32-column panels: 49 columns as 32 + 17, then 48 + (32 + 18).
  check_float_against_double<Conv2d<80, 4, 3, 1, 1>, Shape<80, 7, 7>>(1e-5, 1);
  check_float_against_double<Conv2d<80, 4, 3, 1, 1>, Shape<80, 7, 7>>(1e-5, 2);
  // Winograd F(2×2, 3×3) weight gradients, and forwards (and input gradients, where M is a
  // multiple of 16 as well) of batches with too few 4×4 blocks for F(4×4, 3×3): blocks spanning
  // images, odd edges whose outside row and column are dropped (and have no gradient), an output
  // count that is not a whole vector, tasks split by channels (48 blocks: one task), a bias, and a
  // batch with fewer than a panel of blocks, which takes the direct kernels.
  static_assert(kernels::uses_winograd<kernels::ConvGeometry<32, 5, 7, 3, 1, 1>, 40, float> == kernels::has_panel_kernel<float>);
  check_float_against_double<Conv2d<32, 40, 3, 1, 1, true>, Shape<32, 5, 7>>(1e-5, 5);
  check_float_against_double<Conv2d<64, 64, 3, 1, 1>, Shape<64, 4, 4>>(1e-5, 12);
  check_float_against_double<Conv2d<32, 48, 3, 1, 1, true>, Shape<32, 7, 9>>(1e-4, 9);  // by F(4×4)
  check_float_against_double<Conv2d<32, 32, 3, 1, 1>, Shape<32, 7, 7>>(1e-5, 2);
  // F(4×4, 3×3) forwards, input gradients and (32+ channels on both sides) weight gradients:
  // MNIST's 16-channel 28×28 layer (49 blocks: three vectors and a lane), edges that leave a block
  // 1 row and 3 columns (9 × 11), tasks split by channels (54 blocks: two tiles, two splits), a
  // bias, and blocks spanning images (7 × 7). Its forward rounding is about 2e-6 of the outputs'
  // scale, not of each output (5× the direct sum's): outputs near zero are off by up to 4e-5, so
  // these pass a wider tolerance.
  static_assert(kernels::uses_winograd_4x4<kernels::ConvGeometry<16, 28, 28, 3, 1, 1>, 16, float> == kernels::has_panel_kernel<float>);
  check_float_against_double<Conv2d<16, 16, 3, 1, 1>, Shape<16, 28, 28>>(1e-4, 1);
  check_float_against_double<Conv2d<32, 40, 3, 1, 1, true>, Shape<32, 9, 11>>(1e-4, 6);
  check_float_against_double<Conv2d<64, 64, 3, 1, 1>, Shape<64, 7, 7>>(1e-4, 12);
}

// A Winograd forward with a channel transform (an eval-mode BatchNorm, the residual, ReLU) stores
// what the plain forward followed by ChannelTransform::store does, bit for bit: Sequential's fused
// and separate layers must agree. F(2×2, 3×3) at 5 × 7 (too few 4×4 blocks), F(4×4, 3×3) at 9 × 11.
template <class G, int M, std::size_t N>
void check_winograd_channel_transform() {
  static_assert(!kernels::has_panel_kernel<float> || kernels::uses_winograd_4x4<G, M, float>);
  Rng rng(13);
  std::vector<float> x(N * G::image), w(M * G::patch), residual(N * M * G::positions), scale(M), shift(M);
  for (auto* values : {&x, &w, &residual, &scale, &shift})
    for (auto& v : *values) v = float(rng.uniform(-1, 1));
  std::vector<float> plain(residual.size()), expected(residual.size()), fused(residual.size());
  kernels::conv_forward<G, M>(x.data(), N, w.data(), kernels::ChannelTransform<float>{}, plain.data());
  for (int flags = 0; flags < 16; ++flags) {
    const kernels::ChannelTransform<float> transform{flags & 1 ? scale.data() : nullptr, flags & 2 ? shift.data() : nullptr,
                                                     bool(flags & 8), flags & 4 ? residual.data() : nullptr};
    for (std::size_t n = 0; n < N; ++n)
      for (std::size_t m = 0; m < M; ++m) {
        const std::size_t offset = (n * M + m) * G::positions;
        transform.store(plain.data() + offset, G::positions, m, expected.data(), offset);
      }
    std::fill(fused.begin(), fused.end(), 99.0f);
    kernels::conv_forward<G, M>(x.data(), N, w.data(), transform, fused.data());
    for (std::size_t i = 0; i < fused.size(); ++i)
      BOOST_TEST(std::bit_cast<std::uint32_t>(fused[i]) == std::bit_cast<std::uint32_t>(expected[i]),
                 "flags " << flags << " value " << i << ": " << fused[i] << " vs " << expected[i]);
  }
}

// ChannelTransform::moments: Σy and Σy² per output channel, y before the map, against double sums
// of the plain forward's output, on every forward route: F(4×4) and F(2×2) (a block's values
// summed in float first: within 1e-6 of Σ|y| and Σy²), the in-place kernel at stride 1 and 2 and
// the tiled product (each value and square exact in double: within 1e-12). The stored values must
// be what ChannelTransform::store gives, bit for bit, with no map (a copy) and with every part of
// one (an eval-mode BatchNorm, Residual's shortcut, ReLU).
template <class G, int M, std::size_t N>
void check_convolution_moments(double tolerance) {
  Rng rng(17);
  std::vector<float> x(N * G::image), w(M * G::patch), y(N * M * G::positions), residual(y.size()), scale(M), shift(M);
  for (auto* values : {&x, &w, &residual, &scale, &shift})
    for (auto& v : *values) v = float(rng.uniform(-1, 1));
  kernels::conv_forward<G, M>(x.data(), N, w.data(), kernels::ChannelTransform<float>{}, y.data());
  for (const bool maps : {false, true}) {
    std::vector<double> moments(2 * M, -1.0);
    kernels::ChannelTransform<float> transform{maps ? scale.data() : nullptr, maps ? shift.data() : nullptr, maps,
                                               maps ? residual.data() : nullptr};
    std::vector<float> expected(y.size()), mapped(y.size(), 99.0f);
    for (std::size_t plane = 0; plane < N * M; ++plane)
      transform.store(y.data() + plane * G::positions, G::positions, plane % M, expected.data(), plane * G::positions);
    transform.moments = moments.data();
    kernels::conv_forward<G, M>(x.data(), N, w.data(), transform, mapped.data());
    BOOST_TEST(mapped == expected, tt::per_element());
    for (std::size_t m = 0; m < M; ++m) {
      double sum = 0, absolute = 0, squares = 0;
      for (std::size_t n = 0; n < N; ++n)
        for (std::size_t p = 0; p < G::positions; ++p) {
          const double v = y[(n * M + m) * G::positions + p];
          sum += v, absolute += std::abs(v), squares += v * v;
        }
      BOOST_TEST(std::abs(moments[2 * m] - sum) <= tolerance * absolute, "channel " << m << " Σy " << moments[2 * m] << " vs " << sum);
      BOOST_TEST(std::abs(moments[2 * m + 1] - squares) <= tolerance * squares,
                 "channel " << m << " Σy² " << moments[2 * m + 1] << " vs " << squares);
    }
  }
}
#if defined(__AVX512F__)
// The rows a Winograd input transform prefetches for a chunk of up to 16 blocks: every input a
// block's window reads (inside the image), and no row that none reads.
template <class G, int Tile>
void check_window_rows(std::size_t N) {
  using B = kernels::winograd::Blocks<G, Tile>;
  const std::size_t blocks = N * B::per_image;
  for (std::size_t first = 0; first < blocks; first += 5) {
    const std::size_t count = std::min<std::size_t>(16, blocks - first);
    const kernels::winograd::WindowRows<G, Tile> rows(first, count);
    std::map<std::size_t, std::pair<int, int>> rows_read;  // image → first and last row read
    for (std::size_t q = first; q < first + count; ++q) {
      const std::size_t n = q / B::per_image;
      const int top = int(q % B::per_image / B::columns) * Tile - 1, left = int(q % B::per_image % B::columns) * Tile - 1;
      for (int i = 0; i < Tile + 2; ++i)
        for (int j = 0; j < Tile + 2; ++j) {
          const int y = top + i, x = left + j;
          if (y < 0 || y >= G::height || x < 0 || x >= G::width) continue;
          BOOST_TEST(rows.covers(n * G::image + std::size_t(y) * G::width + std::size_t(x)),
                     "blocks from " << first << ": image " << n << " row " << y << " column " << x);
          auto [it, added] = rows_read.try_emplace(n, y, y);
          it->second = {std::min(it->second.first, y), std::max(it->second.second, y)};
        }
    }
    std::size_t values = 0;
    for (const auto& [n, range] : rows_read) values += std::size_t(range.second - range.first + 1) * G::width;
    BOOST_TEST(rows.values() == values, "blocks from " << first);
  }
}
BOOST_AUTO_TEST_CASE(winograd_prefetches_the_rows_its_windows_read) {
  check_window_rows<kernels::ConvGeometry<16, 28, 28, 3, 1, 1>, 4>(3);  // 49 blocks an image
  check_window_rows<kernels::ConvGeometry<8, 9, 11, 3, 1, 1>, 4>(4);    // edges
  check_window_rows<kernels::ConvGeometry<8, 7, 7, 3, 1, 1>, 4>(9);     // 4 blocks an image
  check_window_rows<kernels::ConvGeometry<8, 4, 4, 3, 1, 1>, 4>(20);    // 1 block an image
  check_window_rows<kernels::ConvGeometry<8, 14, 14, 3, 1, 1>, 2>(2);   // F(2×2)
  check_window_rows<kernels::ConvGeometry<8, 5, 7, 3, 1, 1>, 2>(5);
}
#endif

BOOST_AUTO_TEST_CASE(convolution_moments_are_the_sums_of_its_outputs) {
  const double winograd = kernels::has_panel_kernel<float> ? 1e-6 : 1e-12;
  check_convolution_moments<kernels::ConvGeometry<16, 28, 28, 3, 1, 1>, 16, 1>(winograd);  // F(4×4), 49 blocks
  check_convolution_moments<kernels::ConvGeometry<32, 9, 11, 3, 1, 1>, 40, 6>(winograd);   // F(4×4), edges, splits
  check_convolution_moments<kernels::ConvGeometry<32, 5, 7, 3, 1, 1>, 40, 6>(winograd);    // F(2×2)
  check_convolution_moments<kernels::ConvGeometry<1, 28, 28, 3, 1, 1>, 16, 3>(1e-12);      // MNIST's stem, in place
  check_convolution_moments<kernels::ConvGeometry<2, 28, 28, 3, 2, 1>, 32, 3>(1e-12);      // stride 2, in place
  check_convolution_moments<kernels::ConvGeometry<4, 7, 7, 3, 2, 1>, 8, 9>(1e-12);         // tiles spanning images
  check_convolution_moments<kernels::ConvGeometry<2, 5, 40, 1, 2, 0>, 3, 2>(1e-12);        // 1×1, stride 2
}

// In train mode Sequential has a bias-free convolution take the next BatchNorm's statistics as it
// stores its output; outputs, running statistics and gradients must be those of the layers run
// one by one (which sum the same values in another order: equal to a few units in the last place).
BOOST_AUTO_TEST_CASE(train_mode_convolution_moments_match_the_layers_run_one_by_one) {
  using In = Shape<16, 9, 11>;
  Model<Sequential<Conv2d<16, 32, 3, 1, 1>, BatchNorm2d<32>, ReLU>, In> fused(5);
  Model<Conv2d<16, 32, 3, 1, 1>, In> conv;
  Model<BatchNorm2d<32>, Shape<32, 9, 11>> bn;
  Model<ReLU, Shape<32, 9, 11>> relu;
  conv.network().weight.value = fused.network().layer<0>().weight.value;
  Rng rng(6);
  Batch<In> x(6);  // 54 blocks of 4×4: F(4×4) with the AVX-512 kernels
  for (auto& v : x.values()) v = float(rng.uniform(-1, 3));  // a mean well away from 0
  for (int step = 0; step < 2; ++step) {
    const auto& y = fused.forward(x, Mode::train);
    const auto& expected = relu.forward(bn.forward(conv.forward(x, Mode::train), Mode::train), Mode::train);
    const auto close = [](const auto& a, const auto& b, double tolerance) {
      for (std::size_t i = 0; i < a.size(); ++i)
        if (std::abs(double(a[i]) - double(b[i])) > tolerance * (1 + std::abs(double(b[i])))) return false;
      return a.size() == b.size();
    };
    BOOST_TEST(close(values_of(y), values_of(expected), 1e-5));
    const auto& norm = fused.network().layer<1>();
    BOOST_TEST(close(norm.running_mean.value, bn.network().running_mean.value, 1e-6));
    BOOST_TEST(close(norm.running_var.value, bn.network().running_var.value, 1e-6));
    BOOST_TEST(std::count(norm.running_mean.value.begin(), norm.running_mean.value.end(), 0.0f) == 0);
    Batch<Shape<32, 9, 11>> dy(6), dhidden, dnormalised;
    for (auto& v : dy.values()) v = float(rng.uniform(-1, 1));
    Batch<In> dx, dx_expected;
    fused.zero_grad(), conv.zero_grad(), bn.zero_grad();
    fused.backward(dy, &dx);
    relu.backward(dy, &dhidden);
    bn.backward(dhidden, &dnormalised);
    conv.backward(dnormalised, &dx_expected);
    BOOST_TEST(close(values_of(dx), values_of(dx_expected), 1e-4));
    BOOST_TEST(close(fused.network().layer<0>().weight.grad, conv.network().weight.grad, 1e-4));
    BOOST_TEST(close(norm.weight.grad, bn.network().weight.grad, 1e-4));
  }
}

BOOST_AUTO_TEST_CASE(winograd_forward_applies_the_channel_transform_as_store_does) {
  using TooFewBlocks = kernels::ConvGeometry<32, 5, 7, 3, 1, 1>;  // 4 blocks of 4×4 per image, 12 of 2×2
  using Enough = kernels::ConvGeometry<32, 9, 11, 3, 1, 1>;       // 9 of 4×4
  BOOST_TEST(kernels::winograd_4x4_blocks<TooFewBlocks>(6) < kernels::panel_width);
  BOOST_TEST(kernels::winograd_blocks<TooFewBlocks>(6) >= kernels::panel_width);
  BOOST_TEST(kernels::winograd_4x4_blocks<Enough>(6) >= kernels::panel_width);
  check_winograd_channel_transform<TooFewBlocks, 40, 6>();
  check_winograd_channel_transform<Enough, 40, 6>();
}

BOOST_AUTO_TEST_SUITE_END()

