// Numerical parity with PyTorch: ctnn must compute what PyTorch computes, on the reference values
// tools/make_reference_fixtures.py stored in tests/fixtures (see tests/fixtures/README.md).
// Errors are "max |ctnn − PyTorch| / max |PyTorch|" over a whole tensor (or a gradient's stored
// sample, relative to the gradient's absmax), within max(1e-4, 10 · f32err) — f32err being how far
// PyTorch's own float32 result is from float64, stored with every quantity; for the MNIST net
// that is 1e-4 throughout.
//
// Every network also runs in double. The double run is held to the same tolerance, so a wrong
// layer (padding, pooling, shortcut, BN semantics) fails regardless of float rounding. The
// float run may exceed it only on a gradient, and only by what ctnn's own float-vs-double
// difference explains (capped at 10%): float rounding can move a value that is within a few ulps
// of a ReLU kink or of a max-pool rival to the other side, which re-routes the gradient of
// everything upstream, and PyTorch's f32err cannot see that. Both fixtures have such spots:
// resnet18.safetensors a max-pool window in conv1's channel 35 (values 3 ulps apart), and the
// MNIST file a residual ReLU input in layer3.1 at 4e-7 of the layer's range, which flips with
// some builds (for example -O3 with the float-lane BatchNorm sums of d05bc88).
#define BOOST_TEST_MODULE parity
#include <boost/test/unit_test.hpp>

#include <ctnn/ctnn.hpp>
#include <ctnn/io/checkpoint.hpp>
#include <ctnn/io/safetensors.hpp>

#include <cmath>
#include <cstdlib>
#include <map>

using namespace ctnn;

namespace {

constexpr double tolerance = 1e-4;

// CTNN_PARITY_FIXTURES=<dir> checks against fixtures generated elsewhere (another PyTorch build,
// other inputs) without rebuilding; by default the committed tests/fixtures are used.
std::string fixture_path(const std::string& name) {
  const char* dir = std::getenv("CTNN_PARITY_FIXTURES");
  return std::string(dir && *dir ? dir : CTNN_FIXTURES_DIR) + "/parity/" + name;
}

// Files are read once per process: each is used by a float and a double run.
const SafetensorsFile& fixture(const std::string& name) {
  static std::map<std::string, SafetensorsFile> cache;
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, read_safetensors(fixture_path(name))).first;
  return it->second;
}

std::vector<float> floats(const SafetensorsFile& file, const std::string& name) {
  const TensorEntry* t = file.find(name);
  if (!t) BOOST_FAIL(file.source << " has no tensor '" << name << "'");
  return as_float(*t);
}

std::int64_t integer(const SafetensorsFile& file, const std::string& name) {
  const TensorEntry* t = file.find(name);
  if (!t) BOOST_FAIL(file.source << " has no tensor '" << name << "'");
  return as_int64(*t).at(0);
}

std::vector<int> labels_of(const SafetensorsFile& file) {
  const auto values = as_int64(file.at("labels"));
  return {values.begin(), values.end()};
}

template <class Input>
Input input_of(const SafetensorsFile& ref) {
  const std::vector<float> values = floats(ref, "input");
  BOOST_REQUIRE_EQUAL(values.size() % Input::shape::size, 0u);
  Input x(values.size() / Input::shape::size);
  std::copy(values.begin(), values.end(), x.data());
  return x;
}

// The tensors of `file` whose names start with `prefix`, renamed without it (e.g. "state.").
SafetensorsFile with_prefix(const SafetensorsFile& file, const std::string& prefix) {
  SafetensorsFile out{file.source + " [" + prefix + "*]", file.metadata, {}};
  for (const auto& t : file.tensors)
    if (t.name.starts_with(prefix)) out.tensors.push_back({t.name.substr(prefix.size()), t.dtype, t.shape, t.bytes});
  return out;
}

// The README's rule: a float32 implementation cannot be closer to PyTorch than PyTorch's own
// float32 result is to float64 (f32err.<q>), so allow max(1e-4, 10 · f32err).
double tolerance_for(const SafetensorsFile& ref, const std::string& quantity) {
  const TensorEntry* e = ref.find("f32err." + quantity);
  return e ? std::max(tolerance, 10.0 * double(as_float(*e).at(0))) : tolerance;
}

// Products and sums kept apart so the compiler cannot contract them into an FMA, which would
// round differently from Python's (and flip a float32 value now and then).
double mul(double a, double b) {
  volatile double r = a * b;
  return r;
}
double add(double a, double b) {
  volatile double r = a + b;
  return r;
}

// s_i = sin(0.731 · h_i + 1.37 · k), h_i = i² mod 65521, for state_dict() entry k.
double formula_sin(std::uint64_t i, std::int64_t k) {
  const std::uint64_t h = (i * i) % 65521;
  return std::sin(add(mul(0.731, double(h)), mul(1.37, double(k))));
}

// Fills every parameter and buffer by the README's formula, keyed by state_dict() position k.
template <class M>
void formula_state(M& model) {
  std::int64_t k = 0;
  model.visit([&](const std::string& name, auto& entry) {
    using E = std::decay_t<decltype(entry)>;
    if constexpr (std::is_same_v<E, Counter>) {
      entry.value = k;
    } else {
      const std::string attribute = name.substr(name.rfind('.') + 1);
      const auto& d = entry.dims;
      const bool linear = name.starts_with("fc.");
      const double conv_scale = d.size() == 4 ? mul(std::sqrt(6.0 / double(d[1] * d[2] * d[3])), 0.5) : 0.0;
      for (std::size_t i = 0; i < entry.value.size(); ++i) {
        const double s = formula_sin(i, k);
        const double v = [&] {
          if (d.size() == 4) return mul(s, conv_scale);
          if (linear && attribute == "weight") return s / std::sqrt(double(d[1]));
          if (attribute == "weight") return add(1.0, mul(0.2, s));
          if (attribute == "bias" || attribute == "running_mean") return mul(0.1, s);
          if (attribute == "running_var") return add(1.0, mul(0.5, s));
          throw std::logic_error("no formula for " + name);
        }();
        entry.value[i] = float(v);  // the README's float32 value, also in a double model
      }
    }
    ++k;
  });
}

// Everything one ctnn run yields that the fixture has a reference for, kept in double.
struct GradientSummary {
  std::vector<double> sample;
  double absmax = 0, sumsq = 0;
};
struct Run {
  std::vector<double> eval_logits, train_logits;
  double eval_loss = 0, train_loss = 0;
  std::vector<std::pair<std::string, std::vector<double>>> buffers;  // after the train forward
  std::vector<std::pair<std::string, std::int64_t>> counters;
  std::vector<std::pair<std::string, GradientSummary>> eval_grads, train_grads;  // torchvision files
  std::vector<std::pair<std::string, std::vector<double>>> full_grads;            // MNIST: whole gradients
};

// The README's gradient sample (flat indices (j · 2654435761 + 12345) mod numel, or all of a
// tensor under 64 values), absmax and sum of squares, for every parameter.
template <class M>
std::vector<std::pair<std::string, GradientSummary>> summarize_gradients(M& model) {
  std::vector<std::pair<std::string, GradientSummary>> out;
  model.visit(OnParameters{[&](const std::string& name, auto& p) {
    GradientSummary g;
    if (p.grad.size() < 64) {
      g.sample.assign(p.grad.begin(), p.grad.end());
    } else {
      for (std::uint64_t j = 0; j < 64; ++j) g.sample.push_back(p.grad[(j * 2654435761u + 12345u) % p.grad.size()]);
    }
    for (const auto v : p.grad) {
      g.absmax = std::max(g.absmax, std::abs(double(v)));
      g.sumsq += double(v) * double(v);
    }
    out.emplace_back(name, std::move(g));
  }});
  return out;
}

// BN buffers and counters after the train forward.
template <class M, class T>
void capture_buffers(M& model, Run& run) {
  model.visit([&](const std::string& name, auto& entry) {
    using E = std::decay_t<decltype(entry)>;
    if constexpr (std::is_same_v<E, Counter>) run.counters.emplace_back(name, entry.value);
    else if constexpr (std::is_same_v<E, Buffer<T>>)
      run.buffers.emplace_back(name, std::vector<double>(entry.value.begin(), entry.value.end()));
  });
}

// Eval forward + backward, then train forward + backward, of the formula model in precision T.
// Also checks that the generated weights equal the fixture's formula_head (bit for bit).
template <class Description, class T>
Run run_torchvision(const SafetensorsFile& ref) {
  using M = Model<Description, Shape<3, 64, 64>, T>;
  const auto x = input_of<typename M::Input>(ref);
  const std::vector<int> labels = labels_of(ref);

  M model;
  formula_state(model);
  std::int64_t mismatches = 0;
  model.visit([&](const std::string& name, auto& entry) {
    if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, Counter>) {
      mismatches += entry.value != integer(ref, "formula_head." + name);
    } else {
      const std::vector<float> head = floats(ref, "formula_head." + name);
      for (std::size_t i = 0; i < head.size(); ++i) mismatches += head[i] != float(entry.value[i]);
    }
  });
  BOOST_TEST(mismatches == 0, ref.source << ": " << mismatches << " generated values differ from formula_head");

  Run run;
  typename M::Output grad;
  model.zero_grad();
  const auto& eval_logits = model.forward(x, Mode::eval);  // uses, and leaves, the running statistics
  run.eval_logits.assign(eval_logits.values().begin(), eval_logits.values().end());
  run.eval_loss = cross_entropy(eval_logits, std::span<const int>(labels), &grad);
  model.backward(grad);
  run.eval_grads = summarize_gradients(model);

  model.zero_grad();
  const auto& train_logits = model.forward(x, Mode::train);  // updates the running statistics
  run.train_logits.assign(train_logits.values().begin(), train_logits.values().end());
  run.train_loss = cross_entropy(train_logits, std::span<const int>(labels), &grad);
  model.backward(grad);
  run.train_grads = summarize_gradients(model);
  capture_buffers<M, T>(model, run);
  return run;
}

// The MNIST file stores the whole PyTorch state: load it (strictly) instead of generating it.
template <class T>
Run run_mnist(const SafetensorsFile& ref) {
  using M = Model<MnistResNet18<>, Shape<1, 28, 28>, T>;
  const SafetensorsFile state = with_prefix(ref, "state.");
  const auto x = input_of<typename M::Input>(ref);
  const std::vector<int> labels = labels_of(ref);
  M model(99);
  const LoadReport report = load(model, state);  // strict: every key, shape and dtype must match
  BOOST_TEST(report.loaded == model.state_names());

  Run run;
  const auto& eval_logits = model.forward(x, Mode::eval);
  run.eval_logits.assign(eval_logits.values().begin(), eval_logits.values().end());

  model.zero_grad();
  const auto& train_logits = model.forward(x, Mode::train);
  run.train_logits.assign(train_logits.values().begin(), train_logits.values().end());
  typename M::Output grad;
  run.train_loss = cross_entropy(train_logits, std::span<const int>(labels), &grad);
  model.backward(grad);
  model.visit(OnParameters{[&](const std::string& name, auto& p) {
    run.full_grads.emplace_back(name, std::vector<double>(p.grad.begin(), p.grad.end()));
  }});
  capture_buffers<M, T>(model, run);
  return run;
}

template <class A, class B>
double max_difference(const A& a, const B& b) {
  BOOST_REQUIRE_EQUAL(a.size(), b.size());
  double e = 0;
  for (std::size_t i = 0; i < a.size(); ++i) e = std::max(e, std::abs(double(a[i]) - double(b[i])));
  return e;
}
template <class A>
double max_abs(const A& a) {
  double m = 0;
  for (const auto v : a) m = std::max(m, std::abs(double(v)));
  return m;
}

// Compares one quantity of the float and the double run with PyTorch's (see the top of the file):
// the double run within `tol`; the float run within `tol` or, where `may_widen` (gradients only),
// within ten times its own difference from the double run, if that difference is below
// `max_rounding_effect` (or 10 · tol): a re-routed gradient moves by a few percent, a broken float
// path by more.
struct Comparison {
  static constexpr double max_rounding_effect = 0.1;
  explicit Comparison(std::string f) : file(std::move(f)) {}
  std::string file;
  int widened = 0;
  double worst = 0;  // largest error / tolerance of the float run
  std::string worst_name;

  template <class F32, class F64, class Ref>
  void check(const std::string& what, const F32& f32, const F64& f64, const Ref& ref, double tol, double scale,
             bool may_widen) {
    if (scale <= 0) scale = 1;
    const double semantic = max_difference(f64, ref) / scale;
    BOOST_TEST(semantic <= tol, file << " " << what << ": ctnn (double) differs from PyTorch by " << semantic
                                     << " relative, tolerance " << tol);
    const double error = max_difference(f32, ref) / scale;
    const double own = max_difference(f32, f64) / scale;
    double allowed = tol;
    // Where PyTorch's own float32 result is unreliable (ResNet50's chaotic train-mode gradients,
    // f32err up to 0.46) ctnn's may be as unreliable, so the cap grows with the tolerance.
    if (may_widen && error > tol && 10 * own > tol && own <= std::max(max_rounding_effect, 10 * tol)) {
      allowed = 10 * own;
      ++widened;
      BOOST_TEST_MESSAGE(file << " " << what << ": float error " << error << " exceeds " << tol
                              << " but ctnn's own float-vs-double difference is " << own
                              << " (float32 rounding re-routed or amplified it); allowing " << allowed);
    }
    BOOST_TEST(error <= allowed, file << " " << what << ": ctnn (float) differs from PyTorch by " << error
                                      << " relative, tolerance " << allowed << " (own float-vs-double " << own << ")");
    if (error / tol > worst) worst = error / tol, worst_name = what;
  }

  void gradients(const SafetensorsFile& ref, const std::string& prefix, const std::string& f32err_prefix,
                 const std::vector<std::pair<std::string, GradientSummary>>& f32,
                 const std::vector<std::pair<std::string, GradientSummary>>& f64) {
    BOOST_REQUIRE_EQUAL(f32.size(), f64.size());
    for (std::size_t i = 0; i < f32.size(); ++i) {
      const std::string& name = f32[i].first;
      const GradientSummary &a = f32[i].second, &b = f64[i].second;
      const double tol = tolerance_for(ref, f32err_prefix + name);
      const double absmax = floats(ref, prefix + "_absmax." + name).at(0);
      const double sumsq = as_float(ref.at(prefix + "_sumsq." + name)).at(0);
      check(prefix + " sample of " + name, a.sample, b.sample, floats(ref, prefix + "_sample." + name), tol, absmax,
            true);
      check(prefix + " absmax of " + name, std::vector<double>{a.absmax}, std::vector<double>{b.absmax},
            std::vector<double>{absmax}, tol, absmax, true);
      // A sum of squares doubles relative errors; compare its square root.
      check(prefix + " norm of " + name, std::vector<double>{std::sqrt(a.sumsq)}, std::vector<double>{std::sqrt(b.sumsq)},
            std::vector<double>{std::sqrt(sumsq)}, tol, std::sqrt(sumsq), true);
    }
  }
};

// Logits, losses and buffers: forward results, never widened (a near-tie changes them by no more
// than its gap).
void check_forward(Comparison& c, const SafetensorsFile& ref, const Run& f32, const Run& f64, bool has_eval_loss) {
  const std::vector<float> eval_logits = floats(ref, "eval.logits"), train_logits = floats(ref, "train.logits");
  c.check("eval logits", f32.eval_logits, f64.eval_logits, eval_logits, tolerance_for(ref, "eval.logits"),
          max_abs(eval_logits), false);
  c.check("train logits", f32.train_logits, f64.train_logits, train_logits, tolerance_for(ref, "train.logits"),
          max_abs(train_logits), false);
  const double train_loss = floats(ref, "train.loss").at(0);
  c.check("train loss", std::vector<double>{f32.train_loss}, std::vector<double>{f64.train_loss},
          std::vector<double>{train_loss}, tolerance_for(ref, "train.loss"), train_loss, false);
  if (has_eval_loss) {
    const double eval_loss = floats(ref, "eval.loss").at(0);
    c.check("eval loss", std::vector<double>{f32.eval_loss}, std::vector<double>{f64.eval_loss},
            std::vector<double>{eval_loss}, tolerance_for(ref, "eval.loss"), eval_loss, false);
  }
  BOOST_REQUIRE_EQUAL(f32.buffers.size(), f64.buffers.size());
  for (std::size_t i = 0; i < f32.buffers.size(); ++i) {
    const std::string& name = f32.buffers[i].first;
    const std::vector<float> want = floats(ref, "after_train." + name);
    c.check(name + " after the train forward", f32.buffers[i].second, f64.buffers[i].second, want, tolerance,
            max_abs(want), false);
  }
  for (const auto& [name, value] : f32.counters) BOOST_TEST(value == integer(ref, "after_train." + name), name);
  BOOST_TEST(f32.buffers.size() == 2 * f32.counters.size());
  BOOST_TEST(!f32.counters.empty());
}

void finish(Comparison& c) {
  BOOST_TEST_MESSAGE(c.file << ": worst float error / base tolerance " << c.worst << " (" << c.worst_name << "), "
                            << c.widened << " gradient checks widened by float32 near-ties");
}

template <class Description>
void check_torchvision(const std::string& file) {
  const SafetensorsFile& ref = fixture(file);
  const Run f32 = run_torchvision<Description, float>(ref);
  const Run f64 = run_torchvision<Description, double>(ref);
  Comparison c(file);
  check_forward(c, ref, f32, f64, true);
  c.gradients(ref, "eval_grad", "eval_grad.", f32.eval_grads, f64.eval_grads);
  c.gradients(ref, "grad", "grad.", f32.train_grads, f64.train_grads);
  finish(c);
}

}  // namespace

// (a) The seed's MNIST network: its whole PyTorch state and every full gradient are stored.
BOOST_AUTO_TEST_CASE(mnist_eval_train_gradients_and_running_statistics) {
  const SafetensorsFile& ref = fixture("mnist_resnet18.safetensors");
  const Run f32 = run_mnist<float>(ref);
  const Run f64 = run_mnist<double>(ref);
  Comparison c("mnist_resnet18.safetensors");
  check_forward(c, ref, f32, f64, false);
  BOOST_TEST(f32.full_grads.size() == 62u);
  for (std::size_t i = 0; i < f32.full_grads.size(); ++i) {
    const std::string& name = f32.full_grads[i].first;
    const std::vector<float> want = floats(ref, "grad." + name);
    c.check("gradient of " + name, f32.full_grads[i].second, f64.full_grads[i].second, want,
            tolerance_for(ref, "grad." + name), max_abs(want), true);
  }
  finish(c);
}

// (c) A state_dict PyTorch saved loads strictly into the MNIST alias and gives PyTorch's logits.
BOOST_AUTO_TEST_CASE(pytorch_saved_state_dict_loads_strictly) {
  using Mnist = Model<MnistResNet18<>, Shape<1, 28, 28>>;
  const SafetensorsFile& ref = fixture("mnist_resnet18.safetensors");
  Mnist model(7);
  const LoadReport report = load(model, fixture_path("pytorch_saved_mnist.safetensors"));
  BOOST_TEST(report.complete());
  BOOST_TEST(report.loaded == model.state_names());
  const std::vector<float> want = floats(ref, "eval.logits");
  const auto& logits = model.forward(input_of<Mnist::Input>(ref), Mode::eval);
  const double error = max_difference(logits.values(), want) / max_abs(want);
  BOOST_TEST(error <= tolerance, "eval logits after loading PyTorch's state_dict: relative error " << error);
}

// (b) torchvision ResNet18 / ResNet50 with formula weights (3×64×64 input, 1000 classes). Only
// inputs and outputs are stored; the weights are generated here as the fixture script does.
BOOST_AUTO_TEST_CASE(resnet18_formula_weights) { check_torchvision<ResNet18<>>("resnet18.safetensors"); }

BOOST_AUTO_TEST_CASE(resnet50_formula_weights) { check_torchvision<ResNet50<>>("resnet50.safetensors"); }
