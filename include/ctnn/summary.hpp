#pragma once

#include <cstdio>
#include <ostream>
#include <string>
#include <vector>

#include "ctnn/module.hpp"

namespace ctnn {

/// Prints one row per leaf layer of ModelType — PyTorch name, layer, output shape, parameters,
/// multiply-adds per image — then the totals. Everything printed is known at compile time.
template <class ModelType>
void summary(std::ostream& os) {
  std::vector<LayerRow> rows;
  ModelType::describe([&](const LayerRow& row) { rows.push_back(row); });
  std::size_t name_width = 4, desc_width = 5;
  for (const auto& r : rows) {
    name_width = std::max(name_width, r.name.size());
    desc_width = std::max(desc_width, r.description.size());
  }
  auto line = [&](const std::string& name, const std::string& desc, const std::string& shape, const std::string& params,
                  const std::string& macs) {
    char buf[64];
    os << name << std::string(name_width + 2 - name.size(), ' ') << desc
       << std::string(desc_width + 2 - desc.size(), ' ');
    std::snprintf(buf, sizeof buf, "%-16s %12s %15s\n", shape.c_str(), params.c_str(), macs.c_str());
    os << buf;
  };
  line("name", "layer", "output", "parameters", "multiply-adds");
  for (const auto& r : rows)
    line(r.name, r.description, r.output_shape, std::to_string(r.parameters), std::to_string(r.multiply_adds));
  os << "input " << shape_string<typename ModelType::input_shape>() << ", output "
     << shape_string<typename ModelType::output_shape>() << "\n"
     << "total parameters: " << ModelType::parameter_count << "\n"
     << "total multiply-adds per image: " << ModelType::multiply_adds << "\n";
}

}  // namespace ctnn
