// The seed article's second program: load trained weights and measure test accuracy (and, here,
// the accuracy of each class). `evaluate --help` lists the flags.
#include <CLI/CLI.hpp>
#include <ctnn/ctnn.hpp>
#include <ctnn/io/checkpoint.hpp>
#include <ctnn/io/idx.hpp>
#include <ctnn/threads.hpp>

#include <cstdio>

#include "support/checkpoint_model.hpp"
#include "support/cli.hpp"
#include "support/evaluation.hpp"
#include "support/errors.hpp"
#include "support/models.hpp"

int main(int argc, char** argv) {
  std::string checkpoint = "runs/mnist", data = "data/mnist", model_name;
  std::size_t batch = 20, limit = 0;
  int threads = 0;
  CLI::App app{"Evaluate a checkpoint on the test set of an MNIST-style directory."};
  app.option_defaults()->always_capture_default();
  app.add_option("--checkpoint", checkpoint, "model.safetensors, or the trainer's output directory")->check(CLI::ExistingPath);
  app.add_option("--data", data, "directory with the MNIST IDX files (raw or .gz)");
  app.add_option("--model", model_name, "network (default: as recorded in the checkpoint)")
      ->check(CLI::IsMember(examples::model_names()));
  app.add_option("--batch-size", batch, "test batch size")->check(examples::positive);
  app.add_option("--limit", limit, "evaluate only the first N test images (0: all)");
  app.add_option("--threads", threads, "worker threads (0: one per core)")->check(examples::non_negative);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return examples::report_errors("evaluate", [&] {
    ctnn::set_num_threads(std::size_t(threads));
    return examples::with_checkpoint_model(checkpoint, model_name, [&](auto& model, const std::string& name) {
      const auto test = ctnn::load_mnist_directory<examples::MnistImage>(data, 10).test;
      const examples::Evaluation e = examples::evaluate(model, test, batch, limit);
      std::printf("%s: %s on %zu test images of %s\n", examples::checkpoint_file(checkpoint).c_str(), name.c_str(), e.predictions.size(), data.c_str());
      std::printf("test accuracy: %.4f\ntest loss: %.4f\n", e.accuracy, e.loss);
      examples::print_class_accuracy(e);
      return 0;
    });
  });
}
