// Central finite differences against a module's analytic gradients, in double precision.
#pragma once

#include <boost/test/unit_test.hpp>
#include <ctnn/ctnn.hpp>

#include <cmath>
#include <string>
#include <vector>

namespace ctnn::testing {

template <class B>
void fill_random(B& batch, Rng& rng, double low = -1.0, double high = 1.0) {
  for (auto& v : batch.values()) v = typename B::scalar(rng.uniform(low, high));
}

/// Checks d(sum(y · w))/d(input) and /d(every parameter) of Model<Description, In, double> against
/// central differences, for a batch of `batch` random images in `mode`. Parameters get random
/// non-trivial values first (BatchNorm scale and shift included).
template <class Description, ShapeType In>
void check_gradients(Mode mode, std::size_t batch = 3, std::uint64_t seed = 1, double tolerance = 1e-6) {
  using M = Model<Description, In, double>;
  M model(seed);
  Rng rng(seed + 100);
  std::vector<Parameter<double>*> params;
  std::vector<std::string> names;
  model.visit([&](const std::string& name, auto& entry) {
    using E = std::decay_t<decltype(entry)>;
    if constexpr (std::is_same_v<E, Parameter<double>>) {
      for (auto& v : entry.value) v += rng.uniform(-0.5, 0.5);
      params.push_back(&entry);
      names.push_back(name);
    } else if constexpr (std::is_same_v<E, Buffer<double>>) {
      // Non-default running statistics so eval mode is not an identity.
      for (auto& v : entry.value) v = name.ends_with("running_var") ? rng.uniform(0.5, 2.0) : rng.uniform(-0.5, 0.5);
    }
  });

  typename M::Input x(batch), dx;
  fill_random(x, rng);
  typename M::Output weights(batch);
  fill_random(weights, rng);

  auto loss = [&] {
    const auto& y = model.forward(x, mode);
    double sum = 0;
    for (std::size_t i = 0; i < y.value_count(); ++i) sum += y.data()[i] * weights.data()[i];
    return sum;
  };
  loss();
  model.zero_grad();
  model.backward(weights, &dx);

  auto check = [&](double& value, double analytic, const std::string& what) {
    const double h = 1e-6, saved = value;
    value = saved + h;
    const double up = loss();
    value = saved - h;
    const double down = loss();
    value = saved;
    const double numeric = (up - down) / (2 * h);
    const double error = std::abs(numeric - analytic) / std::max(1.0, std::abs(numeric));
    BOOST_TEST(error < tolerance, what << ": analytic " << analytic << " vs numeric " << numeric);
  };
  for (std::size_t i = 0; i < x.value_count(); ++i) check(x.data()[i], dx.data()[i], "d/dx[" + std::to_string(i) + "]");
  for (std::size_t p = 0; p < params.size(); ++p) {
    // Large tensors are spot-checked at a fixed spread of indices.
    const std::size_t n = params[p]->size(), step = std::max<std::size_t>(1, n / 40);
    for (std::size_t i = 0; i < n; i += step)
      check(params[p]->value[i], params[p]->grad[i], "d/d" + names[p] + "[" + std::to_string(i) + "]");
  }
}

}  // namespace ctnn::testing
