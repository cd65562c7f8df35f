// The networks the example programs can train and load, chosen by name at run time.
#pragma once

#include <ctnn/ctnn.hpp>

#include <stdexcept>
#include <string>
#include <vector>

namespace examples {

using MnistImage = ctnn::Shape<1, 28, 28>;

inline const std::vector<std::string>& model_names() {
  static const std::vector<std::string> names{"mnist-resnet18", "resnet18", "resnet34", "resnet50"};
  return names;
}

/// Calls f.template operator()<Description>() for the named network (10 classes, 1×28×28 input):
/// the seed's MNIST ResNet18, or torchvision's layout with one input channel as the seed's first listing.
template <class F>
decltype(auto) with_model(const std::string& name, F&& f) {
  if (name == "mnist-resnet18") return f.template operator()<ctnn::MnistResNet18<10>>();
  if (name == "resnet18") return f.template operator()<ctnn::ResNet18<10, 1>>();
  if (name == "resnet34") return f.template operator()<ctnn::ResNet34<10, 1>>();
  if (name == "resnet50") return f.template operator()<ctnn::ResNet50<10, 1>>();
  throw std::invalid_argument("unknown model '" + name + "'");
}

}  // namespace examples
