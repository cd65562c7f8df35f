// The seed article's experiment: train a ResNet on MNIST-style IDX data with SGD, print the test
// loss and accuracy every 100 iterations, then save the weights (safetensors, PyTorch names), the
// curves (CSV and SVG) and everything needed to resume exactly. `train_mnist --help` lists the flags.
#include <CLI/CLI.hpp>
#include <ctnn/ctnn.hpp>
#include <ctnn/io/checkpoint.hpp>
#include <ctnn/io/idx.hpp>
#include <ctnn/optim/adam.hpp>
#include <ctnn/optim/schedule.hpp>
#include <ctnn/optim/sgd.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <numeric>
#include <regex>
#include <sstream>
#include <string>
#include <type_traits>

#include "support/chart.hpp"
#include "support/cli.hpp"
#include "support/evaluation.hpp"
#include "support/errors.hpp"
#include "support/models.hpp"
#include "support/progress.hpp"
#include <ctnn/threads.hpp>

namespace fs = std::filesystem;
using examples::MnistImage;

namespace {

constexpr int exit_bad_usage = 2;
constexpr int exit_diverged = 3;
constexpr int exit_interrupted = 130;

volatile std::sig_atomic_t interrupt_requested = 0;
extern "C" void on_interrupt(int) {
  interrupt_requested = 1;
  std::signal(SIGINT, SIG_DFL);  // a second Ctrl-C ends the program at once
}

// Everything that defines a run; saved with the checkpoint so --resume continues the same run.
struct Options {
  std::string data = "data/mnist";
  std::string model = "mnist-resnet18";
  std::string optimizer = "sgd";
  std::string schedule = "constant";
  std::string out = "runs/mnist";
  std::string resume;
  int epochs = 1;
  std::size_t batch_size = 128;
  std::size_t eval_batch_size = 128;
  double lr = 0.1;
  double momentum = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
  double gamma = 0.1;
  int step_size = 1;
  std::vector<int> milestones;
  std::int64_t warmup = 0;
  std::uint64_t seed = 0;
  int threads = 0;
  std::size_t eval_every = 100;
  std::size_t recompute_bn = 4096;
  std::size_t limit_train = 0;
  std::size_t limit_test = 0;
  std::int64_t stop_after = 0;
  bool progress = true;
};

// The options that shape the computation; a resumed run must not change them.
nlohmann::json run_definition(const Options& o) {
  return {{"model", o.model},         {"optimizer", o.optimizer}, {"schedule", o.schedule},   {"batch_size", o.batch_size},
          {"lr", o.lr},               {"momentum", o.momentum},   {"weight_decay", o.weight_decay},
          {"nesterov", o.nesterov},   {"gamma", o.gamma},         {"step_size", o.step_size}, {"milestones", o.milestones},
          {"warmup", o.warmup},       {"seed", o.seed},           {"eval_every", o.eval_every},
          {"limit_train", o.limit_train}, {"limit_test", o.limit_test}, {"data", o.data},
          {"eval_batch_size", o.eval_batch_size}, {"epochs", o.epochs}, {"recompute_bn", o.recompute_bn}};
}

struct CurvePoint {
  std::int64_t iteration;
  int epoch;
  double lr, train_loss, test_loss, test_accuracy;
};

// Where a run stands: enough to continue it bit for bit.
struct Position {
  int epoch = 0;               // current epoch (0-based)
  std::size_t batch = 0;       // next batch within the epoch
  std::int64_t iteration = 0;  // optimizer steps so far
  std::string shuffle_state;   // the shuffle generator at the start of `epoch`
  double loss_sum = 0;         // training losses since the last evaluation (for the curve's mean)
  std::size_t loss_count = 0;
};

std::string exact(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%a", v);
  return buf;
}

std::unique_ptr<ctnn::Optimizer<float>> make_optimizer(const Options& o, std::vector<ctnn::NamedParameter<float>> params) {
  if (o.optimizer == "sgd")
    return std::make_unique<ctnn::SGD<float>>(
        std::move(params), ctnn::SgdOptions{.lr = o.lr, .momentum = o.momentum, .weight_decay = o.weight_decay,
                                            .nesterov = o.nesterov});
  const ctnn::AdamOptions adam{.lr = o.lr, .weight_decay = o.weight_decay};
  if (o.optimizer == "adam") return std::make_unique<ctnn::Adam<float>>(std::move(params), adam);
  return std::make_unique<ctnn::AdamW<float>>(std::move(params), adam);
}

ctnn::LrSchedule make_schedule(const Options& o, std::int64_t iterations_per_epoch) {
  const std::int64_t total = iterations_per_epoch * o.epochs;
  if (o.schedule == "step") return ctnn::StepLR{o.lr, o.step_size * iterations_per_epoch, o.gamma};
  if (o.schedule == "multistep") {
    std::vector<std::int64_t> at;
    for (int m : o.milestones) at.push_back(m * iterations_per_epoch);
    return ctnn::MultiStepLR{o.lr, at, o.gamma};
  }
  if (o.schedule == "cosine") {
    if (o.warmup > 0) return ctnn::WarmupCosineLR{o.lr, o.warmup, std::max<std::int64_t>(1, total - o.warmup)};
    return ctnn::CosineAnnealingLR{o.lr, std::max<std::int64_t>(1, total)};
  }
  if (o.warmup > 0) return ctnn::LinearLR{o.lr, 1.0 / 3.0, 1.0, o.warmup};
  return [lr = o.lr](std::int64_t) { return lr; };
}

std::string curves_csv(const std::vector<CurvePoint>& curve) {
  std::ostringstream out;
  out << "iteration,epoch,lr,train_loss,test_loss,test_accuracy\n";
  out.precision(8);
  for (const auto& p : curve)
    out << p.iteration << ',' << p.epoch << ',' << p.lr << ',' << p.train_loss << ',' << p.test_loss << ','
        << p.test_accuracy << '\n';
  return out.str();
}

std::vector<CurvePoint> parse_curves_csv(const std::string& text) {
  std::vector<CurvePoint> curve;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    CurvePoint p{};
    char comma;
    std::istringstream row(line);
    if (!(row >> p.iteration >> comma >> p.epoch >> comma >> p.lr >> comma >> p.train_loss >> comma >> p.test_loss >>
          comma >> p.test_accuracy))
      throw std::runtime_error("malformed curve row '" + line + "' in the saved training state");
    curve.push_back(p);
  }
  return curve;
}

void write_charts(const fs::path& file, const std::vector<CurvePoint>& curve, const std::string& model) {
  examples::Series accuracy{"test accuracy", "#d62728", {}}, test_loss{"test loss", "#1f77b4", {}},
      train_loss{"train loss", "#ff7f0e", {}};
  for (const auto& p : curve) {
    accuracy.points.emplace_back(double(p.iteration), p.test_accuracy);
    test_loss.points.emplace_back(double(p.iteration), p.test_loss);
    train_loss.points.emplace_back(double(p.iteration), p.train_loss);
  }
  const std::vector<examples::Panel> panels{
      {model + ": test accuracy", "iteration", "accuracy", {accuracy}},
      {model + ": loss", "iteration", "mean cross-entropy", {train_loss, test_loss}}};
  ctnn::write_file_atomically(file, [&](std::ostream& out) { examples::write_svg(out, panels); });
}

// One self-contained file holds the model ("model."), the optimizer state ("optimizer.") and the
// position, so a resume never mixes two saves. model.safetensors beside it holds the weights alone
// under PyTorch's names, for evaluate, classify and PyTorch.
template <class M>
void save_training_state(const fs::path& dir, M& model, ctnn::Optimizer<float>& optimizer, const Position& at,
                         const Options& o, const std::vector<CurvePoint>& curve) {
  std::vector<ctnn::TensorEntry> entries;
  auto add = [&](const std::string& name, auto& entry) {
    using E = std::decay_t<decltype(entry)>;
    if constexpr (std::is_same_v<E, ctnn::Counter>) {
      entries.push_back(ctnn::make_tensor<std::int64_t>(name, {}, std::vector<std::int64_t>{entry.value}, ctnn::Dtype::I64));
    } else {
      entries.push_back(ctnn::make_tensor<float>(name, entry.dims, std::span<const float>(entry.value.data(), entry.value.size()),
                                                 ctnn::Dtype::F32));
    }
  };
  model.visit([&](const std::string& name, auto& entry) { add("model." + name, entry); });
  optimizer.visit_state([&](const std::string& name, auto& entry) { add("optimizer." + name, entry); });
  const std::map<std::string, std::string> metadata{
      {"ctnn.run", run_definition(o).dump()},         {"ctnn.optimizer", optimizer.kind()},
      {"ctnn.epoch", std::to_string(at.epoch)},        {"ctnn.batch", std::to_string(at.batch)},
      {"ctnn.iteration", std::to_string(at.iteration)}, {"ctnn.shuffle_state", at.shuffle_state},
      {"ctnn.loss_sum", exact(at.loss_sum)},            {"ctnn.loss_count", std::to_string(at.loss_count)},
      {"ctnn.curves", curves_csv(curve)}};
  ctnn::write_safetensors(dir / "training_state.safetensors", entries, metadata);
  ctnn::save(model, dir / "model.safetensors",
             {{"ctnn.model", o.model}, {"ctnn.iteration", std::to_string(at.iteration)}});
  ctnn::write_file_atomically(dir / "curves.csv", [&](std::ostream& out) { out << curves_csv(curve); });
  write_charts(dir / "curves.svg", curve, o.model);
}

// Restores model, optimizer, position and curve from dir/training_state.safetensors; nothing is
// changed unless the whole file checks out.
template <class M>
void load_training_state(const fs::path& dir, M& model, ctnn::Optimizer<float>& optimizer, Position& at,
                         std::vector<CurvePoint>& curve) {
  const fs::path path = dir / "training_state.safetensors";
  const ctnn::SafetensorsFile file = ctnn::read_safetensors(path);
  auto meta = [&](const char* key) -> const std::string& {
    const auto it = file.metadata.find(key);
    if (it == file.metadata.end()) throw std::runtime_error(path.string() + ": no '" + key + "' in its metadata");
    return it->second;
  };
  if (meta("ctnn.optimizer") != optimizer.kind())
    throw std::runtime_error(path.string() + ": holds " + meta("ctnn.optimizer") + " state, not " + optimizer.kind());

  ctnn::SafetensorsFile model_part{path.string() + " (model.*)", {}, {}};
  for (const auto& t : file.tensors)
    if (t.name.starts_with("model.")) model_part.tensors.push_back({t.name.substr(6), t.dtype, t.shape, t.bytes});

  // Check the optimizer tensors before anything is assigned.
  std::vector<std::pair<ctnn::Buffer<float>*, std::vector<float>>> buffers;
  std::int64_t steps = -1;
  std::vector<std::string> problems;
  optimizer.visit_state([&](const std::string& name, auto& entry) {
    const ctnn::TensorEntry* t = file.find("optimizer." + name);
    if (!t) return problems.push_back("missing optimizer." + name);
    if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, ctnn::Counter>) {
      steps = ctnn::as_int64(*t).at(0);
    } else {
      if (t->shape != entry.dims) return problems.push_back("optimizer." + name + " has another shape");
      buffers.emplace_back(&entry, ctnn::as_float(*t));
    }
  });
  if (!problems.empty()) throw std::runtime_error(path.string() + ": " + problems.front());
  Position restored{std::stoi(meta("ctnn.epoch")), std::stoul(meta("ctnn.batch")), std::stoll(meta("ctnn.iteration")),
                    meta("ctnn.shuffle_state"), std::strtod(meta("ctnn.loss_sum").c_str(), nullptr),
                    std::stoul(meta("ctnn.loss_count"))};
  std::vector<CurvePoint> restored_curve = parse_curves_csv(meta("ctnn.curves"));

  ctnn::load(model, model_part);  // strict; throws before assigning anything
  for (auto& [buffer, values] : buffers) std::copy(values.begin(), values.end(), buffer->value.begin());
  optimizer.visit_state([&](const std::string&, auto& entry) {
    if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, ctnn::Counter>) entry.value = steps;
  });
  at = restored;
  curve = std::move(restored_curve);
}

// The run definition stored in a checkpoint directory, for --resume.
nlohmann::json saved_run(const fs::path& dir) {
  const ctnn::SafetensorsFile file = ctnn::read_safetensors(dir / "training_state.safetensors");
  const auto it = file.metadata.find("ctnn.run");
  if (it == file.metadata.end()) throw std::runtime_error((dir / "training_state.safetensors").string() + ": no run definition");
  return nlohmann::json::parse(it->second);
}

std::vector<std::size_t> shuffled(std::size_t n, ctnn::Rng& rng) {
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[rng.below(i)]);
  return order;
}

template <class Description>
int train(const Options& o) {
  using M = ctnn::Model<Description, MnistImage>;
  auto sets = ctnn::load_mnist_directory<MnistImage>(o.data, 10);
  const std::size_t train_count = o.limit_train ? std::min(o.limit_train, sets.train.size()) : sets.train.size();
  const std::size_t test_count = o.limit_test ? std::min(o.limit_test, sets.test.size()) : sets.test.size();
  const std::size_t batches = (train_count + o.batch_size - 1) / o.batch_size;
  std::printf("ctnn: %s, %zu parameters, %zu training / %zu test images from %s\n", o.model.c_str(), M::parameter_count,
              train_count, test_count, o.data.c_str());
  std::printf("ctnn: %s lr %g momentum %g weight decay %g, schedule %s, batch %zu, %d epoch(s), %d thread(s)\n",
              o.optimizer.c_str(), o.lr, o.momentum, o.weight_decay, o.schedule.c_str(), o.batch_size, o.epochs,
              int(ctnn::num_threads()));
  if (o.recompute_bn >= 2)
    std::printf("ctnn: BatchNorm statistics recomputed over %zu training images before each evaluation (--recompute-bn)\n",
                std::min(o.recompute_bn, train_count));

  M model(o.seed);
  auto optimizer = make_optimizer(o, ctnn::named_parameters(model));
  const ctnn::LrSchedule schedule = make_schedule(o, std::int64_t(batches));
  ctnn::Rng shuffle_rng(o.seed ^ 0x5eed5eed5eedULL);
  Position at{0, 0, 0, shuffle_rng.state()};
  std::vector<CurvePoint> curve;
  const fs::path out = o.out;
  fs::create_directories(out);
  // A run killed mid-save (SIGKILL, power loss) leaves a hidden half-written temporary per file.
  for (const char* name : {"training_state.safetensors", "model.safetensors", "curves.csv", "curves.svg"})
    if (const std::size_t n = ctnn::AtomicFile::remove_orphans(out / name))
      std::printf("ctnn: removed %zu unfinished temporary file(s) of %s left by a killed run\n", n, name);
  if (!o.resume.empty()) {
    load_training_state(o.resume, model, *optimizer, at, curve);
    shuffle_rng.restore(at.shuffle_state);
    std::printf("ctnn: resumed from %s at epoch %d, batch %zu (iteration %lld)\n", o.resume.c_str(), at.epoch + 1,
                at.batch, (long long)at.iteration);
  }

  examples::Progress progress(o.progress);
  typename M::Input images;
  typename M::Output grad;
  std::vector<int> labels;
  std::int64_t last_saved = -1;
  // Stops the run, keeping the last checkpoint: a diverged state is never saved over a good one.
  auto stop_diverged = [&](const std::string& what) {
    progress.finish();
    std::fprintf(stderr, "train_mnist: %s at epoch %d, batch %zu (iteration %lld); training stopped.\ntrain_mnist: %s\n",
                 what.c_str(), at.epoch + 1, at.batch, (long long)at.iteration,
                 last_saved >= 0 ? ("the last good checkpoint (iteration " + std::to_string(last_saved) + ") in " +
                                    out.string() + " is kept; try a lower --lr")
                                       .c_str()
                                 : "no checkpoint was written yet; try a lower --lr");
    return exit_diverged;
  };
  auto non_finite = [](const char* what, double value) {
    return std::string(what) + " became " + (std::isnan(value) ? "NaN" : "infinite");
  };
  // The name of the first parameter or buffer holding NaN or Inf, or "" when all are finite.
  auto first_non_finite_tensor = [&] {
    std::string found;
    model.visit([&](const std::string& name, auto& entry) {
      if constexpr (!std::is_same_v<std::decay_t<decltype(entry)>, ctnn::Counter>)
        if (found.empty() && !std::all_of(entry.value.begin(), entry.value.end(), [](float v) { return std::isfinite(v); }))
          found = name;
    });
    return found;
  };
  // Saves, unless the model itself has diverged: returns what went wrong then, "" after a save.
  auto checkpoint = [&]() -> std::string {
    if (const std::string bad = first_non_finite_tensor(); !bad.empty()) return "tensor '" + bad + "' became NaN or infinite";
    save_training_state(out, model, *optimizer, at, o, curve);
    last_saved = at.iteration;
    return {};
  };
  // BatchNorm statistics for the weights as they are (ctnn::update_bn), from training images
  // spread evenly over the set, in batches of batch-size to 2 × batch-size − 1 images.
  typename M::Input statistics_images;
  std::vector<std::size_t> statistics_indices;
  auto recompute_bn = [&] {
    const std::size_t n = std::min(o.recompute_bn, train_count), parts = std::max<std::size_t>(1, n / o.batch_size);
    if (n < 2) return;
    std::size_t part = 0;
    ctnn::update_bn(model, [&]() -> const typename M::Input* {
      if (part == parts) return nullptr;
      statistics_indices.clear();
      for (std::size_t i = part * n / parts; i < (part + 1) * n / parts; ++i) statistics_indices.push_back(i * train_count / n);
      ++part;
      sets.train.fill_batch(std::span<const std::size_t>(statistics_indices), statistics_images, labels);
      return &statistics_images;
    });
  };
  auto evaluate_now = [&] {
    recompute_bn();
    const examples::Evaluation e = examples::evaluate(model, sets.test, o.eval_batch_size, test_count);
    const double train_loss = at.loss_count ? at.loss_sum / double(at.loss_count) : NAN;
    const int epoch = std::min(at.epoch, o.epochs - 1) + 1;  // the final evaluation belongs to the last epoch
    curve.push_back({at.iteration, epoch, optimizer->lr(), train_loss, e.loss, e.accuracy});
    progress.log("Epoch: %d | iteration %lld | train loss %.4f | test loss %.4f | test accuracy %.4f\n", epoch,
                 (long long)at.iteration, train_loss, e.loss, e.accuracy);
    at.loss_sum = 0, at.loss_count = 0;
    return e;
  };

  std::fflush(stdout);  // the header, before the first progress line ten seconds later when piped
  for (; at.epoch < o.epochs; ++at.epoch, at.batch = 0, at.shuffle_state = shuffle_rng.state()) {
    const std::vector<std::size_t> order = shuffled(train_count, shuffle_rng);
    progress.start("epoch " + std::to_string(at.epoch + 1) + "/" + std::to_string(o.epochs), batches, at.batch);
    std::size_t images_seen = 0;
    for (; at.batch < batches; ++at.batch) {
      const std::size_t begin = at.batch * o.batch_size, n = std::min(o.batch_size, train_count - begin);
      sets.train.fill_batch(std::span<const std::size_t>(order.data() + begin, n), images, labels);
      optimizer->set_lr(schedule(at.iteration));
      const float loss = ctnn::cross_entropy(model.forward(images, ctnn::Mode::train), std::span<const int>(labels), &grad);
      if (!std::isfinite(loss)) return stop_diverged(non_finite("the loss", loss));
      optimizer->zero_grad();
      model.backward(grad);
      optimizer->step();
      ++at.iteration;
      at.loss_sum += loss, ++at.loss_count, images_seen += n;
      progress.update(at.batch + 1, images_seen, loss);

      const bool evaluate_here = o.eval_every && at.batch % o.eval_every == 0;
      if (evaluate_here) {
        // Finite weights can still overflow in the forward pass: a model whose test loss is not
        // finite has diverged too, and is not saved over the last good checkpoint.
        if (const double test_loss = evaluate_now().loss; !std::isfinite(test_loss))
          return stop_diverged(non_finite("the test loss", test_loss));
        ++at.batch;  // the checkpoint resumes after this batch
        if (const std::string diverged = checkpoint(); !diverged.empty()) return stop_diverged(diverged);
        --at.batch;
      }
      if (interrupt_requested || (o.stop_after && at.iteration >= o.stop_after)) {
        ++at.batch;
        if (at.batch == batches) ++at.epoch, at.batch = 0, at.shuffle_state = shuffle_rng.state();
        if (const std::string diverged = checkpoint(); !diverged.empty()) return stop_diverged(diverged);
        progress.finish();
        std::printf("%s after iteration %lld; checkpoint saved in %s (continue with --resume %s)\n",
                    interrupt_requested ? "interrupted" : "stopped as asked", (long long)at.iteration, out.c_str(),
                    out.c_str());
        return interrupt_requested ? exit_interrupted : 0;
      }
    }
    progress.finish();
  }

  const examples::Evaluation final_eval = evaluate_now();
  if (!std::isfinite(final_eval.loss)) return stop_diverged(non_finite("the test loss", final_eval.loss));
  if (const std::string diverged = checkpoint(); !diverged.empty()) return stop_diverged(diverged);
  std::printf("test accuracy: %.4f (%zu images)\n", final_eval.accuracy, test_count);
  examples::print_confusion(final_eval);
  std::printf("real value     [");
  for (std::size_t i = 0; i < std::min<std::size_t>(10, test_count); ++i) std::printf(i ? " %d" : "%d", sets.test.labels[i]);
  std::printf("]\npredicted value [");
  for (std::size_t i = 0; i < std::min<std::size_t>(10, test_count); ++i) std::printf(i ? " %d" : "%d", final_eval.predictions[i]);
  std::printf("]\nwrote %s/{model.safetensors, training_state.safetensors, curves.csv, curves.svg}\n", out.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Train a ResNet on MNIST-style IDX data, as the seed article does (defaults reproduce it)."};
  app.option_defaults()->always_capture_default();
  app.add_option("--data", o.data, "directory with the four MNIST IDX files (raw or .gz)");
  app.add_option("--model", o.model, "network")->check(CLI::IsMember(examples::model_names()));
  app.add_option("--epochs", o.epochs, "passes over the training set")->check(examples::positive);
  app.add_option("--batch-size", o.batch_size, "training batch size")->check(examples::between(2, 65536));
  app.add_option("--eval-batch-size", o.eval_batch_size, "test batch size")->check(examples::positive);
  app.add_option("--lr", o.lr, "learning rate")->check(examples::non_negative);
  app.add_option("--momentum", o.momentum, "SGD momentum")->check(examples::between(0, 1));
  app.add_option("--weight-decay", o.weight_decay, "L2 penalty (decoupled for adamw)")->check(examples::non_negative);
  app.add_flag("--nesterov", o.nesterov, "Nesterov momentum (SGD)");
  app.add_option("--optimizer", o.optimizer, "sgd, adam or adamw")->check(CLI::IsMember({"sgd", "adam", "adamw"}));
  app.add_option("--schedule", o.schedule, "learning-rate schedule: constant, step, multistep or cosine")
      ->check(CLI::IsMember({"constant", "step", "multistep", "cosine"}));
  app.add_option("--step-size", o.step_size, "epochs between decays (step)")->check(examples::positive);
  app.add_option("--milestones", o.milestones, "epochs at which to decay (multistep)")->delimiter(',');
  app.add_option("--gamma", o.gamma, "decay factor (step, multistep)")->check(examples::positive);
  app.add_option("--warmup", o.warmup, "iterations of linear warm-up from lr/3")->check(examples::non_negative);
  app.add_option("--seed", o.seed, "seed of the initial weights and the shuffling");
  app.add_option("--threads", o.threads, "worker threads (0: one per core)")->check(examples::non_negative);
  app.add_option("--eval-every", o.eval_every, "evaluate and checkpoint every N batches (0: only at the end)");
  app.add_option("--recompute-bn", o.recompute_bn,
                 "before each evaluation and checkpoint, recompute BatchNorm's running statistics over N training "
                 "images (torch.optim.swa_utils.update_bn; 0: keep the momentum averages, as PyTorch's model.eval())")
      ->check(examples::zero_or_between(2, 1e9));
  app.add_option("--out", o.out, "output directory");
  app.add_option("--resume", o.resume, "continue the run saved in this directory")->check(CLI::ExistingDirectory);
  app.add_option("--limit-train", o.limit_train, "use only the first N training images (0: all)");
  app.add_option("--limit-test", o.limit_test, "use only the first N test images (0: all)");
  app.add_option("--stop-after", o.stop_after, "stop with a checkpoint after N iterations, as an interruption would");
  app.add_flag("!--no-progress", o.progress, "plain log lines instead of a progress bar");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : exit_bad_usage;
  }

  return examples::report_errors("train_mnist", [&] {
    if (!o.resume.empty()) {
      // The saved run definition wins; a flag that contradicts it is a mistake, not a new run.
      const nlohmann::json saved = saved_run(o.resume);
      const nlohmann::json given = run_definition(o);
      for (const auto& [key, value] : saved.items()) {
        const std::string flag = "--" + std::regex_replace(key, std::regex("_"), "-");
        if (key != "epochs" && app.count(flag) && given.at(key) != value) {
          std::fprintf(stderr, "train_mnist: %s %s contradicts the run being resumed (%s %s)\n", flag.c_str(),
                       given.at(key).dump().c_str(), flag.c_str(), value.dump().c_str());
          return exit_bad_usage;
        }
      }
      const int epochs = app.count("--epochs") ? o.epochs : saved.at("epochs").get<int>();
      Options resumed = o;
      saved.at("model").get_to(resumed.model), saved.at("optimizer").get_to(resumed.optimizer);
      saved.at("schedule").get_to(resumed.schedule), saved.at("batch_size").get_to(resumed.batch_size);
      saved.at("lr").get_to(resumed.lr), saved.at("momentum").get_to(resumed.momentum);
      saved.at("weight_decay").get_to(resumed.weight_decay), saved.at("nesterov").get_to(resumed.nesterov);
      saved.at("gamma").get_to(resumed.gamma), saved.at("step_size").get_to(resumed.step_size);
      saved.at("milestones").get_to(resumed.milestones), saved.at("warmup").get_to(resumed.warmup);
      saved.at("seed").get_to(resumed.seed), saved.at("eval_every").get_to(resumed.eval_every);
      saved.at("limit_train").get_to(resumed.limit_train), saved.at("limit_test").get_to(resumed.limit_test);
      saved.at("eval_batch_size").get_to(resumed.eval_batch_size);
      resumed.recompute_bn = saved.value("recompute_bn", std::size_t{0});  // runs saved before the flag kept the averages
      if (!app.count("--data")) saved.at("data").get_to(resumed.data);
      if (!app.count("--out")) resumed.out = o.resume;
      resumed.epochs = epochs;
      o = resumed;
    }
    ctnn::set_num_threads(std::size_t(o.threads));
    std::signal(SIGINT, on_interrupt);
    return examples::with_model(o.model, [&]<class Description>() { return train<Description>(o); });
  });
}
