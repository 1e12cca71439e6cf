// Reader: walks a parsed YAML document into typed values and collects every problem on the
// way (file, line:column, dotted key, what was expected) instead of stopping at the first.
// Internal to config/; the schema (schema.cpp) says which key goes where.
#pragma once

#include <yaml-cpp/yaml.h>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "config/config.hpp"

namespace iotsocket::config {

// Where a value sits: its dotted key and its 1-based place in the file.
struct Where {
  std::string key;
  int line = 0;
  int column = 0;
};

// Turns a yaml-cpp mark (0-based, -1 when unknown) into our 1-based place (0 when unknown).
Where where_of(std::string key, const YAML::Mark& mark);

class Reader {
 public:
  // One key of a mapping and what to do with its value.
  struct Field {
    std::string_view name;
    std::function<void(const YAML::Node& value, const Where& where)> read;
  };

  // `base_dir` resolves relative paths (see path()).
  Reader(std::string file, const std::filesystem::path& base_dir);

  void error(const Where& where, std::string message);
  bool failed() const noexcept { return !errors_.empty(); }
  // The problems found so far, in the order of their places in the file.
  std::vector<ConfigError> take_errors();

  // Hands each entry of the mapping `node` to the field of the same name. Reports a node
  // that is not a mapping, unknown keys (naming the allowed ones) and repeated keys. An
  // empty value (a section whose keys are all commented out) is an empty mapping.
  void mapping(const YAML::Node& node, const Where& where, std::span<const Field> fields);

  // A scalar's text, or nullopt after reporting "expected <what>, got ...". With
  // `plain_only`, a quoted scalar is refused too ("5" is a string, not a number).
  std::optional<std::string> scalar(const YAML::Node& node, const Where& where,
                                    std::string_view what, bool plain_only = false);

  // Typed values. Each stores into `out` only a valid value and reports anything else, so
  // `out` keeps its default when the key is wrong.
  void boolean(const YAML::Node& node, const Where& where, bool& out);
  void integer(const YAML::Node& node, const Where& where, std::uint64_t min, std::uint64_t max,
               std::uint64_t& out);
  template <class T>
  void integer(const YAML::Node& node, const Where& where, T min, T max, T& out) {
    static_assert(std::is_unsigned_v<T>);
    std::uint64_t value = out;
    integer(node, where, min, max, value);
    out = static_cast<T>(value);  // within [min, max] by construction
  }
  void duration(const YAML::Node& node, const Where& where, Duration& out);
  // A positive size.
  void size(const YAML::Node& node, const Where& where, std::uint64_t& out);
  // A non-empty string.
  void text(const YAML::Node& node, const Where& where, std::string& out);
  // A file or directory name; a relative one is taken relative to the base directory, and
  // the result is absolute and lexically normal. Empty only with `allow_empty`.
  void path(const YAML::Node& node, const Where& where, std::string& out, bool allow_empty = false);
  // The index of the name in `allowed` that the scalar equals.
  std::optional<std::size_t> pick(const YAML::Node& node, const Where& where,
                                  std::span<const std::string_view> allowed);
  // One of a fixed set of names.
  template <class T>
  void choice(const YAML::Node& node, const Where& where,
              std::span<const std::pair<std::string_view, T>> names, T& out) {
    std::vector<std::string_view> allowed;
    for (const auto& [name, value] : names) allowed.push_back(name);
    if (const auto index = pick(node, where, allowed)) out = names[*index].second;
  }

  // The place of `key` if it was seen in the file, else of its nearest enclosing key that
  // was (for rules across keys, which may be about a key left at its default).
  Where locate(const std::string& key) const;
  // Records the place of a key that mapping() did not see (e.g. an item of a list).
  void remember(const Where& where);

 private:
  void read_entry(const YAML::Node& key, const YAML::Node& value, const Where& parent,
                  std::span<const Field> fields, std::map<std::string, int>& seen);

  std::string file_;
  std::filesystem::path base_dir_;
  std::vector<ConfigError> errors_;
  std::map<std::string, Where, std::less<>> places_;
};

// How a node looks, for "expected X, got Y": "nothing", "a list", "a mapping", "'text'".
std::string describe(const YAML::Node& node);

// "a, b or c"
std::string join_names(std::span<const std::string_view> names);

}  // namespace iotsocket::config
