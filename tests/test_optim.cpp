// Optimizers and learning-rate schedules against PyTorch 1.13: tests/fixtures/optim.json holds
// what torch.optim computed (tools/make_optimizer_fixtures.py), so torch is not needed here.
#define BOOST_TEST_MODULE optim
#include <boost/test/unit_test.hpp>

#include <ctnn/ctnn.hpp>
#include <ctnn/optim/adam.hpp>
#include <ctnn/optim/schedule.hpp>
#include <ctnn/optim/sgd.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

using json = nlohmann::json;
using Net = ctnn::Sequential<ctnn::Linear<3, 2>>;
using TinyModel = ctnn::Model<Net, ctnn::Shape<3, 1, 1>>;

namespace {

const json& fixture() {
  static const json data = [] {
    std::ifstream in(CTNN_FIXTURES_DIR "/optim.json");
    BOOST_REQUIRE_MESSAGE(in, "cannot open " CTNN_FIXTURES_DIR "/optim.json");
    return json::parse(in);
  }();
  return data;
}

template <class T>
std::unique_ptr<ctnn::Optimizer<T>> make_optimizer(const json& c, std::vector<ctnn::NamedParameter<T>> params) {
  const json& o = c["options"];
  const std::string kind = c["optimizer"];
  if (kind == "SGD") {
    ctnn::SgdOptions s;
    s.lr = o["lr"];
    s.momentum = o.value("momentum", 0.0);
    s.dampening = o.value("dampening", 0.0);
    s.weight_decay = o.value("weight_decay", 0.0);
    s.nesterov = o.value("nesterov", false);
    s.maximize = o.value("maximize", false);
    return std::make_unique<ctnn::SGD<T>>(std::move(params), s);
  }
  ctnn::AdamOptions a;
  a.lr = o["lr"];
  if (o.contains("betas")) {
    a.beta1 = o["betas"][0];
    a.beta2 = o["betas"][1];
  }
  a.eps = o.value("eps", 1e-8);
  if (o.contains("weight_decay")) a.weight_decay = o["weight_decay"].get<double>();
  a.amsgrad = o.value("amsgrad", false);
  if (kind == "Adam") return std::make_unique<ctnn::Adam<T>>(std::move(params), a);
  BOOST_REQUIRE(kind == "AdamW");
  return std::make_unique<ctnn::AdamW<T>>(std::move(params), a);
}

template <class T>
void assign(std::span<T> out, const json& values) {
  BOOST_REQUIRE_EQUAL(out.size(), values.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = T(values[i].get<double>());
}

// |a - b| <= abs + rel·|b|, reporting the worst offender.
template <class Values>
void check_close(const Values& actual, const json& expected, double rel, double abs, const std::string& what) {
  BOOST_REQUIRE_EQUAL(actual.size(), expected.size());
  double worst = 0;
  std::size_t at = 0;
  for (std::size_t i = 0; i < actual.size(); ++i) {
    const double e = expected[i].get<double>();
    const double excess = std::abs(double(actual[i]) - e) / (abs + rel * std::abs(e));
    if (excess > worst) worst = excess, at = i;
  }
  BOOST_TEST(worst <= 1.0, what << ": element " << at << " is " << double(actual[at]) << ", PyTorch has "
                                << expected[at].get<double>() << " (" << worst << "x the tolerance)");
}

// Runs `case_name` from the fixture's initial parameters and gradients on the parameters `params`
// point to, comparing every step with PyTorch's `dtype` run and the final state.
template <class T>
void run_case(const json& c, const std::string& dtype, std::vector<ctnn::NamedParameter<T>> params, double rel,
              double abs) {
  BOOST_TEST_CONTEXT(c["name"].get<std::string>() << " in " << dtype) {
    for (auto& p : params) assign(std::span<T>(p.parameter->value), c["initial"][p.name]);
    auto optimizer = make_optimizer<T>(c, params);
    BOOST_TEST(optimizer->kind() == c["optimizer"].get<std::string>());
    const json& reference = c[dtype];
    const int steps = fixture()["steps"];
    for (int step = 0; step < steps; ++step) {
      if (!c["lrs"].is_null()) optimizer->set_lr(c["lrs"][step]);
      for (auto& p : params) assign(std::span<T>(p.parameter->grad), c["grads"][step][p.name]);
      optimizer->step();
      for (auto& p : params)
        check_close(p.parameter->value, reference["after_step"][step][p.name], rel, abs,
                    p.name + " after step " + std::to_string(step + 1));
    }
    BOOST_TEST(optimizer->step_count() == steps);
    std::size_t tensors = 0;
    optimizer->visit_state([&](const std::string& name, auto& entry) {
      if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, ctnn::Counter>) {
        BOOST_TEST(name == "step");
        if (reference.contains("final_state_step")) BOOST_TEST(entry.value == reference["final_state_step"].get<int>());
      } else {
        ++tensors;
        BOOST_REQUIRE_MESSAGE(reference["final_state"].contains(name), "PyTorch has no state " << name);
        check_close(entry.value, reference["final_state"][name], rel, abs, "state " + name);
      }
    });
    BOOST_TEST(tensors == reference["final_state"].size());
  }
}

std::vector<ctnn::NamedParameter<double>> double_parameters(std::vector<ctnn::Parameter<double>>& storage) {
  storage.clear();
  storage.emplace_back(std::vector<std::int64_t>{2, 3});
  storage.emplace_back(std::vector<std::int64_t>{2});
  return {{"0.weight", &storage[0]}, {"0.bias", &storage[1]}};
}

}  // namespace

BOOST_AUTO_TEST_CASE(fixture_is_from_pytorch) {
  BOOST_TEST(fixture()["torch_version"].get<std::string>().rfind("1.13", 0) == 0u);
  BOOST_TEST(fixture()["optimizers"].size() >= 12u);
  BOOST_TEST(fixture()["schedules"].size() >= 9u);
}

BOOST_AUTO_TEST_CASE(named_parameters_follow_the_state_dict) {
  TinyModel model(1);
  const auto params = ctnn::named_parameters(model);
  BOOST_REQUIRE_EQUAL(params.size(), 2u);
  BOOST_TEST(params[0].name == "0.weight");
  BOOST_TEST(params[1].name == "0.bias");
  BOOST_TEST(params[0].parameter->size() == 6u);
}

// Float64 runs agree with PyTorch to rounding: any difference in the formulas would show.
BOOST_AUTO_TEST_CASE(optimizers_match_pytorch_in_float64) {
  for (const auto& c : fixture()["optimizers"]) {
    std::vector<ctnn::Parameter<double>> storage;
    run_case<double>(c, "float64", double_parameters(storage), 1e-12, 1e-15);
  }
}

// Float32 runs on a real model's parameters (collected by name from Model::visit).
BOOST_AUTO_TEST_CASE(optimizers_match_pytorch_in_float32_on_a_model) {
  for (const auto& c : fixture()["optimizers"]) {
    TinyModel model(7);
    run_case<float>(c, "float32", ctnn::named_parameters(model), 2e-6, 1e-7);
  }
}

// Saving the state after 2 steps and restoring it into a new optimizer gives bit-for-bit the
// parameters of an uninterrupted 5-step run.
BOOST_AUTO_TEST_CASE(state_round_trip_resumes_exactly) {
  for (const auto& c : fixture()["optimizers"]) {
    BOOST_TEST_CONTEXT(c["name"].get<std::string>()) {
      TinyModel straight(3), resumed(3);
      auto run = [&](TinyModel& model, ctnn::Optimizer<float>& opt, int from, int to) {
        for (int step = from; step < to; ++step) {
          if (!c["lrs"].is_null()) opt.set_lr(c["lrs"][step]);
          for (auto& p : ctnn::named_parameters(model)) assign(std::span<float>(p.parameter->grad), c["grads"][step][p.name]);
          opt.step();
        }
      };
      auto a = make_optimizer<float>(c, ctnn::named_parameters(straight));
      run(straight, *a, 0, 5);

      std::map<std::string, std::vector<float>> saved;
      std::int64_t saved_steps = -1;
      {
        auto b = make_optimizer<float>(c, ctnn::named_parameters(resumed));
        run(resumed, *b, 0, 2);
        b->visit_state([&](const std::string& name, auto& entry) {
          if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, ctnn::Counter>) saved_steps = entry.value;
          else saved[name].assign(entry.value.begin(), entry.value.end());
        });
      }
      BOOST_TEST(saved_steps == 2);
      auto restored = make_optimizer<float>(c, ctnn::named_parameters(resumed));
      restored->visit_state([&](const std::string& name, auto& entry) {
        if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, ctnn::Counter>) {
          entry.value = saved_steps;
        } else {
          BOOST_REQUIRE(saved.count(name));
          BOOST_REQUIRE_EQUAL(entry.value.size(), saved[name].size());
          std::copy(saved[name].begin(), saved[name].end(), entry.value.begin());
        }
      });
      run(resumed, *restored, 2, 5);
      const auto x = ctnn::named_parameters(straight), y = ctnn::named_parameters(resumed);
      for (std::size_t i = 0; i < x.size(); ++i)
        BOOST_TEST(x[i].parameter->value == y[i].parameter->value, boost::test_tools::per_element());
    }
  }
}

BOOST_AUTO_TEST_CASE(state_names_and_shapes) {
  TinyModel model(1);
  ctnn::SGD sgd(model, {.lr = 0.1, .momentum = 0.9});
  static_assert(std::is_same_v<decltype(sgd), ctnn::SGD<float>>);
  std::vector<std::string> names;
  sgd.visit_state([&](const std::string& name, auto& entry) {
    names.push_back(name);
    if constexpr (!std::is_same_v<std::decay_t<decltype(entry)>, ctnn::Counter>)
      BOOST_TEST(entry.dims == (name == "0.weight.momentum_buffer" ? std::vector<std::int64_t>{2, 3}
                                                                   : std::vector<std::int64_t>{2}));
  });
  BOOST_TEST((names == std::vector<std::string>{"0.weight.momentum_buffer", "0.bias.momentum_buffer", "step"}));

  ctnn::SGD plain(model, {.lr = 0.1});  // no momentum, no buffers
  names.clear();
  plain.visit_state([&](const std::string& name, auto&) { names.push_back(name); });
  BOOST_TEST((names == std::vector<std::string>{"step"}));

  ctnn::AdamW adamw(model, {.lr = 1e-3, .amsgrad = true});
  BOOST_TEST(*adamw.options().weight_decay == 0.01);  // PyTorch's AdamW default
  ctnn::Adam adam(model);
  BOOST_TEST(*adam.options().weight_decay == 0.0);
  names.clear();
  adamw.visit_state([&](const std::string& name, auto&) { names.push_back(name); });
  BOOST_TEST((names == std::vector<std::string>{"0.weight.exp_avg", "0.bias.exp_avg", "0.weight.exp_avg_sq",
                                                "0.bias.exp_avg_sq", "0.weight.max_exp_avg_sq", "0.bias.max_exp_avg_sq",
                                                "step"}));
}

BOOST_AUTO_TEST_CASE(zero_grad_and_lr) {
  TinyModel model(1);
  std::unique_ptr<ctnn::Optimizer<float>> opt = std::make_unique<ctnn::SGD<float>>(ctnn::named_parameters(model), ctnn::SgdOptions{.lr = 0.5});
  for (auto& p : opt->parameters()) std::fill(p.parameter->grad.begin(), p.parameter->grad.end(), 1.0f);
  const float before = opt->parameters()[0].parameter->value[0];
  opt->step();
  BOOST_TEST(opt->parameters()[0].parameter->value[0] == before - 0.5f);
  opt->set_lr(0.25);
  BOOST_TEST(opt->lr() == 0.25);
  opt->zero_grad();
  for (auto& p : opt->parameters())
    for (float g : p.parameter->grad) BOOST_TEST(g == 0.0f);
  BOOST_CHECK_THROW(opt->set_lr(-1), std::invalid_argument);
  BOOST_CHECK_THROW(opt->set_lr(NAN), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(invalid_hyperparameters_are_refused) {
  TinyModel model(1);
  BOOST_CHECK_THROW(ctnn::SGD(model, {.lr = -0.1}), std::invalid_argument);
  BOOST_CHECK_THROW(ctnn::SGD(model, {.lr = 0.1, .momentum = -1}), std::invalid_argument);
  BOOST_CHECK_THROW(ctnn::SGD(model, {.lr = 0.1, .nesterov = true}), std::invalid_argument);
  BOOST_CHECK_THROW(ctnn::SGD(model, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                    std::invalid_argument);
  BOOST_CHECK_THROW(ctnn::Adam(model, {.beta1 = 1.0}), std::invalid_argument);
  BOOST_CHECK_THROW(ctnn::Adam(model, {.beta2 = -0.1}), std::invalid_argument);
  BOOST_CHECK_THROW(ctnn::AdamW(model, {.eps = -1}), std::invalid_argument);
  BOOST_CHECK_THROW(ctnn::AdamW(model, {.weight_decay = -0.5}), std::invalid_argument);
}

BOOST_AUTO_TEST_CASE(schedules_match_pytorch) {
  for (const auto& c : fixture()["schedules"]) {
    const std::string name = c["name"];
    const json& s = c["schedule"];
    ctnn::LrSchedule schedule;
    if (name.rfind("step", 0) == 0)
      schedule = ctnn::StepLR{s["base_lr"], s["step_size"], s.value("gamma", 0.1)};
    else if (name == "multistep")
      schedule = ctnn::MultiStepLR{s["base_lr"], s["milestones"].get<std::vector<std::int64_t>>(), s["gamma"]};
    else if (name.rfind("cosine", 0) == 0)
      schedule = ctnn::CosineAnnealingLR{s["base_lr"], s["t_max"], s.value("eta_min", 0.0)};
    else if (name.rfind("linear", 0) == 0)
      schedule = ctnn::LinearLR{s["base_lr"], s.value("start_factor", 1.0 / 3.0), s.value("end_factor", 1.0),
                                s.value("total_iters", std::int64_t{5})};
    else if (name == "warmup_cosine")
      schedule = ctnn::WarmupCosineLR{s["base_lr"], s["warmup_iters"], s["t_max"], s["start_factor"], s["eta_min"]};
    BOOST_REQUIRE_MESSAGE(schedule, "unknown schedule case " << name);
    std::vector<double> ours;
    for (std::size_t t = 0; t < c["lrs"].size(); ++t) ours.push_back(schedule(std::int64_t(t)));
    check_close(ours, c["lrs"], 1e-12, 1e-15, "schedule " + name);
  }
}

BOOST_AUTO_TEST_CASE(schedules_refuse_nonsense) {
  BOOST_CHECK_THROW((ctnn::StepLR{0.1, 0})(1), std::invalid_argument);
  BOOST_CHECK_THROW((ctnn::CosineAnnealingLR{0.1, 0})(1), std::invalid_argument);
  BOOST_CHECK_THROW((ctnn::LinearLR{0.1, 0.0, 1.0, 5})(1), std::invalid_argument);
  BOOST_CHECK_THROW((ctnn::WarmupCosineLR{0.1, 0, 10})(1), std::invalid_argument);
}
