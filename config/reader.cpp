#include "config/reader.hpp"

#include <algorithm>
#include <system_error>

#include "config/units.hpp"

namespace iotsocket::config {
namespace {

std::string child_key(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "." + std::string(name);
}

// yaml-cpp gives the tag "!" to quoted scalars and "?" to plain ones.
bool is_quoted(const YAML::Node& node) { return node.Tag() == "!"; }

std::string names_of(std::span<const Reader::Field> fields) {
  std::vector<std::string_view> names;
  for (const auto& field : fields) names.push_back(field.name);
  return join_names(names);
}

}  // namespace

std::string describe(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Null:
      return "nothing";
    case YAML::NodeType::Sequence:
      return "a list";
    case YAML::NodeType::Map:
      return "a mapping";
    case YAML::NodeType::Scalar:
      return "'" + node.Scalar() + "'";
    case YAML::NodeType::Undefined:
      break;
  }
  return "nothing";
}

Where where_of(std::string key, const YAML::Mark& mark) {
  if (mark.line < 0 || mark.column < 0) return Where{std::move(key), 0, 0};
  return Where{std::move(key), mark.line + 1, mark.column + 1};
}

std::string join_names(std::span<const std::string_view> names) {
  std::string out;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? " or " : ", ";
    out += names[i];
  }
  return out;
}

Reader::Reader(std::string file, const std::filesystem::path& base_dir) : file_(std::move(file)) {
  // Absolute now, so that the daemon can chdir later and a reload from elsewhere reads the
  // same files.
  std::error_code ec;
  base_dir_ = std::filesystem::absolute(base_dir, ec);
  if (ec) base_dir_ = base_dir;
  places_.emplace("", Where{"", 1, 1});
}

void Reader::error(const Where& where, std::string message) {
  errors_.push_back(ConfigError{file_, where.line, where.column, where.key, std::move(message)});
}

std::vector<ConfigError> Reader::take_errors() {
  std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
    return std::pair(a.line, a.column) < std::pair(b.line, b.column);
  });
  return std::move(errors_);
}

void Reader::mapping(const YAML::Node& node, const Where& where, std::span<const Field> fields) {
  if (node.IsNull()) return;  // "tls:" with its keys commented out: all defaults
  if (!node.IsMap()) {
    std::vector<std::string_view> names;
    for (const Field& field : fields) names.push_back(field.name);
    error(where,
          "expected a mapping with the keys " + join_names(names) + ", got " + describe(node));
    return;
  }
  std::map<std::string, int> seen;  // key → line of its first appearance
  for (auto it = node.begin(); it != node.end(); ++it) {
    read_entry(it->first, it->second, where, fields, seen);
  }
}

void Reader::read_entry(const YAML::Node& key, const YAML::Node& value, const Where& parent,
                        std::span<const Field> fields, std::map<std::string, int>& seen) {
  if (!key.IsScalar()) {
    error(where_of(parent.key, key.Mark()), "keys must be plain names, got " + describe(key));
    return;
  }
  const std::string& name = key.Scalar();
  const Where key_place = where_of(child_key(parent.key, name), key.Mark());
  const auto [first, inserted] = seen.emplace(name, key_place.line);
  if (!inserted) {
    error(key_place, "repeated key (first at line " + std::to_string(first->second) + ")");
    return;
  }
  const auto field =
      std::find_if(fields.begin(), fields.end(), [&](const Field& f) { return f.name == name; });
  if (field == fields.end()) {
    error(key_place, "unknown key '" + name + "'; allowed here: " + names_of(fields));
    return;
  }
  // An empty value ("idle:") has no place of its own worth showing; its key has.
  const Where value_place = value.IsNull() ? key_place : where_of(key_place.key, value.Mark());
  remember(value_place);
  field->read(value, value_place);
}

std::optional<std::string> Reader::scalar(const YAML::Node& node, const Where& where,
                                          std::string_view what, bool plain_only) {
  if (node.IsScalar() && !(plain_only && is_quoted(node))) return node.Scalar();
  const std::string got = node.IsScalar() ? "a quoted string" : describe(node);
  error(where, "expected " + std::string(what) + ", got " + got);
  return std::nullopt;
}

void Reader::boolean(const YAML::Node& node, const Where& where, bool& out) {
  // YAML 1.2 booleans only: yes/no/on/off are the YAML 1.1 surprises we do not want.
  static constexpr std::pair<std::string_view, bool> kNames[] = {{"true", true}, {"false", false},
                                                                 {"True", true}, {"False", false},
                                                                 {"TRUE", true}, {"FALSE", false}};
  const auto text = scalar(node, where, "true or false", true);
  if (!text) return;
  for (const auto& [name, value] : kNames) {
    if (name == *text) {
      out = value;
      return;
    }
  }
  error(where, "expected true or false, got '" + *text + "'");
}

void Reader::integer(const YAML::Node& node, const Where& where, std::uint64_t min,
                     std::uint64_t max, std::uint64_t& out) {
  const std::string what = "an integer from " + std::to_string(min) + " to " + std::to_string(max);
  const auto text = scalar(node, where, what, true);
  if (!text) return;
  const auto value = parse_unsigned(*text);
  if (!value || *value < min || *value > max) {
    error(where, "expected " + what + ", got '" + *text + "'");
    return;
  }
  out = *value;
}

void Reader::duration(const YAML::Node& node, const Where& where, Duration& out) {
  const auto text = scalar(node, where, "a duration like 90s");
  if (!text) return;
  auto parsed = parse_duration(*text);
  if (!parsed) return error(where, parsed.error());
  out = *parsed;
}

void Reader::size(const YAML::Node& node, const Where& where, std::uint64_t& out) {
  const auto text = scalar(node, where, "a size like 64MiB");
  if (!text) return;
  auto parsed = parse_size(*text);
  if (!parsed) return error(where, parsed.error());
  if (*parsed == 0) return error(where, "expected a positive size, got '" + *text + "'");
  out = *parsed;
}

void Reader::text(const YAML::Node& node, const Where& where, std::string& out) {
  const auto value = scalar(node, where, "a non-empty string");
  if (!value) return;
  if (value->empty()) return error(where, "expected a non-empty string, got ''");
  out = *value;
}

void Reader::path(const YAML::Node& node, const Where& where, std::string& out, bool allow_empty) {
  const auto value = scalar(node, where, "a path");
  if (!value) return;
  if (value->empty()) {
    if (!allow_empty) return error(where, "expected a path, got ''");
    out.clear();
    return;
  }
  out = (base_dir_ / *value).lexically_normal().string();  // an absolute value stays as is
}

std::optional<std::size_t> Reader::pick(const YAML::Node& node, const Where& where,
                                        std::span<const std::string_view> allowed) {
  const std::string what = "one of " + join_names(allowed);
  const auto text = scalar(node, where, what);
  if (!text) return std::nullopt;
  const auto it = std::find(allowed.begin(), allowed.end(), *text);
  if (it != allowed.end()) return static_cast<std::size_t>(it - allowed.begin());
  error(where, "expected " + what + ", got '" + *text + "'");
  return std::nullopt;
}

Where Reader::locate(const std::string& key) const {
  std::string_view prefix = key;
  while (true) {
    if (const auto it = places_.find(prefix); it != places_.end()) {
      return Where{key, it->second.line, it->second.column};
    }
    if (prefix.empty()) return Where{key, 0, 0};
    const auto dot = prefix.rfind('.');
    prefix = prefix.substr(0, dot == std::string_view::npos ? 0 : dot);
  }
}

void Reader::remember(const Where& where) { places_.insert_or_assign(where.key, where); }

}  // namespace iotsocket::config
