// Model checkpoints: a model's state_dict() as a safetensors file, under PyTorch's names, so the
// same file loads into PyTorch (load_state_dict(strict=True)) and into ctnn.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <span>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ctnn/io/error.hpp"
#include "ctnn/io/safetensors.hpp"
#include "ctnn/model.hpp"

namespace ctnn {

/// How load() treats a file that does not match the model exactly.
struct LoadOptions {
  /// true: any missing, unexpected or mismatched tensor is an error and nothing is loaded.
  /// false: tensors that match are loaded; the rest are listed in the LoadReport.
  bool strict = true;
  /// false: a float tensor holding NaN or Inf counts as mismatched (a diverged or corrupt save).
  bool allow_non_finite = false;
};

/// What load() did, by state_dict() name.
struct LoadReport {
  std::vector<std::string> loaded;      // assigned from the file
  std::vector<std::string> missing;     // in the model, absent from the file (left unchanged)
  std::vector<std::string> unexpected;  // in the file, unknown to the model (ignored)
  std::vector<std::string> mismatched;  // in both, but another shape, an unusable dtype or NaN/Inf (left unchanged)
  std::vector<std::string> problems;    // one sentence per missing, unexpected or mismatched tensor

  bool complete() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
};

namespace detail {

template <class T>
constexpr Dtype dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "checkpoints hold float or double models");
  return std::is_same_v<T, float> ? Dtype::F32 : Dtype::F64;
}

// The checked and converted value one model tensor will receive (ready = false: leave it alone).
template <class T>
struct Staged {
  bool ready = false;
  std::vector<T> floats;
  std::int64_t count = 0;
};

inline std::string join_problems(const std::vector<std::string>& problems) {
  constexpr std::size_t shown = 12;  // a wholly different model would otherwise produce pages
  std::string text;
  for (std::size_t i = 0; i < problems.size() && i < shown; ++i) text += "\n  " + problems[i];
  if (problems.size() > shown) text += "\n  ... and " + std::to_string(problems.size() - shown) + " more";
  return text;
}

}  // namespace detail

/// Writes every parameter and buffer of `model` under its PyTorch state_dict() name: floats as F32
/// (F64 for a double model), num_batches_tracked as 0-d I64. Atomic: the previous file at `path`
/// survives any failure. `metadata` is stored in "__metadata__"; "format": "pt" is added unless given.
template <class Description, ShapeType In, class T>
void save(Model<Description, In, T>& model, const std::filesystem::path& path,
          std::map<std::string, std::string> metadata = {}) {
  // First collect names and counters so the views below point at storage that no longer moves.
  std::vector<std::string> names;
  std::vector<std::int64_t> counters;
  model.visit([&](const std::string& name, auto& entry) {
    names.push_back(name);
    if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, Counter>) counters.push_back(entry.value);
  });
  std::vector<TensorView> views;
  views.reserve(names.size());
  std::size_t counter_index = 0;
  model.visit([&](const std::string&, auto& entry) {
    const std::string& name = names[views.size()];
    if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, Counter>) {
      views.emplace_back(name, Dtype::I64, std::span<const std::int64_t>(),
                         std::as_bytes(std::span<const std::int64_t>(&counters[counter_index++], 1)));
    } else {
      views.emplace_back(name, detail::dtype_of<T>(), std::span<const std::int64_t>(entry.dims),
                         std::as_bytes(std::span<const T>(entry.value.data(), entry.value.size())));
    }
  });
  metadata.try_emplace("format", "pt");  // what PyTorch's safetensors tools expect of a state_dict
  write_safetensors(path, std::span<const TensorView>(views), metadata);
}

/// Loads tensors from `file` into `model` by state_dict() name. Float tensors accept F32, F64,
/// F16 and BF16 (converted); num_batches_tracked accepts any integer dtype; shapes must equal
/// the model's exactly, and values must be finite (unless options.allow_non_finite). Everything
/// is checked and converted before the first assignment, so when this throws (io_error; always
/// in strict mode on any mismatch) the model is exactly as it was.
template <class Description, ShapeType In, class T>
LoadReport load(Model<Description, In, T>& model, const SafetensorsFile& file, LoadOptions options = {}) {
  std::unordered_map<std::string_view, const TensorEntry*> by_name;
  for (const auto& t : file.tensors) by_name.emplace(t.name, &t);

  LoadReport report;
  std::vector<detail::Staged<T>> staged;
  std::unordered_set<std::string_view> used;
  model.visit([&](const std::string& name, auto& entry) {
    using Entry = std::decay_t<decltype(entry)>;
    constexpr bool is_counter = std::is_same_v<Entry, Counter>;
    auto& stage = staged.emplace_back();
    const auto found = by_name.find(name);
    if (found == by_name.end()) {
      report.missing.push_back(name);
      report.problems.push_back("tensor '" + name + "' is missing from the file");
      return;
    }
    used.insert(found->first);
    const TensorEntry& t = *found->second;
    const std::vector<std::int64_t> expected = [&] {
      if constexpr (is_counter) return std::vector<std::int64_t>{};
      else return entry.dims;
    }();
    const bool dtype_ok = is_counter ? is_integer(t.dtype) : is_floating(t.dtype);
    if (t.shape != expected || !dtype_ok) {
      report.mismatched.push_back(name);
      std::string problem = "tensor '" + name + "': the file has " + std::string(dtype_name(t.dtype)) + " " +
                            dims_string(t.shape) + ", the model needs " + (is_counter ? "integer " : "floating-point ") +
                            dims_string(expected);
      if (t.shape != expected) problem += " (shape differs)";
      if (!dtype_ok) problem += " (wrong dtype)";
      report.problems.push_back(std::move(problem));
      return;
    }
    if constexpr (is_counter) {
      // Any integer dtype will do, but a U64 count above INT64_MAX has no int64 value: the tensor
      // is as unusable as one of a wrong dtype, so a non-strict load reports it instead of throwing.
      if (t.dtype == Dtype::U64) {
        const auto value = detail::load_le<std::uint64_t>(t.bytes.data());
        if (value > std::uint64_t(std::numeric_limits<std::int64_t>::max())) {
          report.mismatched.push_back(name);
          report.problems.push_back("tensor '" + name + "': U64 value " + std::to_string(value) +
                                    " does not fit the model's int64 counter");
          return;
        }
      }
      stage.count = as_int64(t).at(0);
    } else {
      stage.floats.resize(entry.value.size());
      convert_floats<T>(t, stage.floats);
      const auto bad = std::find_if(stage.floats.begin(), stage.floats.end(), [](T v) { return !std::isfinite(v); });
      if (!options.allow_non_finite && bad != stage.floats.end()) {
        report.mismatched.push_back(name);
        report.problems.push_back("tensor '" + name + "' holds " + (std::isnan(*bad) ? "NaN" : "an infinite value") +
                                  " at element " + std::to_string(bad - stage.floats.begin()) +
                                  " (saved from a diverged run, or corrupt)");
        stage.floats = {};
        return;
      }
    }
    stage.ready = true;
    report.loaded.push_back(name);
  });
  for (const auto& t : file.tensors) {
    if (used.count(t.name)) continue;
    report.unexpected.push_back(t.name);
    report.problems.push_back("tensor '" + t.name + "' (" + std::string(dtype_name(t.dtype)) + " " +
                              dims_string(t.shape) + ") in the file is not part of the model");
  }
  if (options.strict && !report.complete())
    throw io_error("ctnn::load: " + file.source + " does not match the model (" +
                   std::to_string(report.missing.size()) + " missing, " + std::to_string(report.unexpected.size()) +
                   " unexpected, " + std::to_string(report.mismatched.size()) +
                   " mismatched; strict load, the model is unchanged):" + detail::join_problems(report.problems));

  // Nothing below can fail: every value is converted and every size is known to match.
  std::size_t index = 0;
  model.visit([&](const std::string&, auto& entry) {
    auto& stage = staged[index++];
    if (!stage.ready) return;
    if constexpr (std::is_same_v<std::decay_t<decltype(entry)>, Counter>) entry.value = stage.count;
    else std::copy(stage.floats.begin(), stage.floats.end(), entry.value.begin());
  });
  return report;
}

/// Reads `path` (see read_safetensors: a corrupt file throws io_error) and loads it into `model`
/// as load(model, file, options) does; on any throw the model is unchanged.
template <class Description, ShapeType In, class T>
LoadReport load(Model<Description, In, T>& model, const std::filesystem::path& path, LoadOptions options = {}) {
  return load(model, read_safetensors(path), options);
}

}  // namespace ctnn
