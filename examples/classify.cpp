// Classifies one image file (PGM, PNG, or anything stb_image reads) with a trained checkpoint and
// prints the three most likely classes. The image is converted to grayscale and must be 28×28,
// white digit on black as in MNIST (--invert for dark-on-light drawings).
#include <CLI/CLI.hpp>
#include <ctnn/ctnn.hpp>
#include <ctnn/io/checkpoint.hpp>
#include <stb_image.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <numeric>

#include "support/checkpoint_model.hpp"
#include "support/errors.hpp"
#include "support/models.hpp"

int main(int argc, char** argv) {
  std::string checkpoint = "runs/mnist", image_path, model_name;
  bool invert = false;
  CLI::App app{"Classify one 28x28 image with a trained checkpoint; prints the top-3 classes."};
  app.option_defaults()->always_capture_default();
  app.add_option("image", image_path, "image file (PGM, PNG, ...)")->required()->check(CLI::ExistingFile);
  app.add_option("--checkpoint", checkpoint, "model.safetensors, or the trainer's output directory")->check(CLI::ExistingPath);
  app.add_option("--model", model_name, "network (default: as recorded in the checkpoint)")
      ->check(CLI::IsMember(examples::model_names()));
  app.add_flag("--invert", invert, "invert the gray levels (for a dark digit on a light background)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }
  return examples::report_errors("classify", [&] {
    int width = 0, height = 0, channels = 0;
    std::unique_ptr<unsigned char, void (*)(void*)> pixels(stbi_load(image_path.c_str(), &width, &height, &channels, 1),
                                                            stbi_image_free);
    if (!pixels) throw ctnn::io_error(image_path + ": cannot read the image (" + stbi_failure_reason() + ")");
    if (width != 28 || height != 28)
      throw ctnn::io_error(image_path + ": the image is " + std::to_string(width) + "x" + std::to_string(height) +
                               " but the network takes 28x28 grayscale images");
    return examples::with_checkpoint_model(checkpoint, model_name, [&](auto& model, const std::string& name) {
      using M = std::decay_t<decltype(model)>;
      typename M::Input x(1);
      for (int i = 0; i < 28 * 28; ++i) x.data()[i] = float(invert ? 255 - pixels.get()[i] : pixels.get()[i]) / 255.0f;
      typename M::Output probabilities;
      ctnn::softmax(model.forward(x, ctnn::Mode::eval), probabilities);
      std::vector<int> order(M::output_shape::channels);
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + 3, order.end(),
                        [&](int a, int b) { return probabilities.data()[a] > probabilities.data()[b]; });
      std::printf("%s (%s):\n", image_path.c_str(), name.c_str());
      for (int k = 0; k < 3; ++k) std::printf("  %d  %.4f\n", order[k], probabilities.data()[order[k]]);
      return 0;
    });
  });
}
