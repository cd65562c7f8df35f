// Which network a checkpoint holds: the trainer records it in the file's metadata.
#pragma once

#include <ctnn/io/checkpoint.hpp>
#include <ctnn/io/safetensors.hpp>

#include <filesystem>
#include <string>

#include "models.hpp"

namespace examples {

/// A checkpoint path may name the file or the trainer's output directory (then model.safetensors in it).
inline std::filesystem::path checkpoint_file(const std::filesystem::path& given) {
  return std::filesystem::is_directory(given) ? given / "model.safetensors" : given;
}

/// The --model given, or else the "ctnn.model" the trainer wrote into the checkpoint's metadata.
inline std::string model_of(const ctnn::SafetensorsFile& file, const std::string& given) {
  if (!given.empty()) return given;
  const auto it = file.metadata.find("ctnn.model");
  if (it == file.metadata.end())
    throw std::runtime_error(file.source + ": the checkpoint does not say which network it holds; pass --model");
  return it->second;
}

/// Reads the checkpoint at `path`, builds the network it holds (or `given`), loads it strictly and
/// returns f(model, name): the shared start of evaluate and classify.
template <class F>
int with_checkpoint_model(const std::filesystem::path& path, const std::string& given, F&& f) {
  const ctnn::SafetensorsFile file = ctnn::read_safetensors(checkpoint_file(path));
  const std::string name = model_of(file, given);
  return with_model(name, [&]<class Description>() {
    ctnn::Model<Description, MnistImage> model;
    ctnn::load(model, file);
    return f(model, name);
  });
}

}  // namespace examples
