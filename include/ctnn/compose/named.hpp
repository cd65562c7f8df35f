#pragma once

#include <algorithm>
#include <string>
#include <string_view>

#include "ctnn/module.hpp"

namespace ctnn {

/// A string literal usable as a template argument: Named<"conv1", ...>.
template <std::size_t N>
struct FixedString {
  char chars[N]{};
  constexpr FixedString(const char (&s)[N]) { std::copy_n(s, N, chars); }
  constexpr std::string_view view() const { return {chars, N - 1}; }
};

/// Named<"name", Layer>: Layer with its parameters under "name." (a PyTorch module attribute).
/// Shape, counts and arithmetic are Layer's. PyTorch: self.name = Layer(...).
template <FixedString Name, class Layer>
struct Named {
  static constexpr std::string_view name = Name.view();
  using layer = Layer;

  template <ShapeType In, class T>
  class Module : public Bind<Layer, In, T> {
    using Inner = Bind<Layer, In, T>;

   public:
    template <class F>
    void visit(F&& f, const std::string& prefix) {
      Inner::visit(f, join_name(prefix, name));
    }
    template <class F>
    static void describe(F&& f, const std::string& prefix) {
      Inner::describe(f, join_name(prefix, name));
    }
  };
};

template <class L>
inline constexpr bool is_named = false;
template <FixedString Name, class L>
inline constexpr bool is_named<Named<Name, L>> = true;

/// The prefix a container gives its I-th child: a Named child names itself, others get the index
/// (as in PyTorch's nn.Sequential).
template <class Child>
std::string child_prefix(const std::string& prefix, std::size_t index) {
  if constexpr (is_named<Child>) return prefix;
  else return join_name(prefix, std::to_string(index));
}

}  // namespace ctnn
