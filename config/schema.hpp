// The config file's schema: which key fills which field of Config, and the rules that
// involve more than one key. Internal to config/.
#pragma once

#include <yaml-cpp/yaml.h>

#include <array>
#include <string_view>

#include "config/config.hpp"
#include "config/reader.hpp"

namespace iotsocket::config {

// More workers than this is a typo, not a machine.
inline constexpr unsigned kMaxWorkers = 1024;
// The largest clock difference a deployment may allow (docs/PROTOCOL.md's TIME check).
inline constexpr Duration kMaxTimeTolerance = std::chrono::seconds(60);

// The names of common/log.hpp parse_level (a test keeps the two lists equal; config/ does
// not link spdlog for one list of names).
inline constexpr std::array<std::string_view, 7> kLogLevels{"trace", "debug",    "info", "warn",
                                                            "error", "critical", "off"};

// Fills a Config from the document's top-level mapping; keys not in the file keep their
// defaults. Problems go to `reader`.
Config read_config(Reader& reader, const YAML::Node& root);

// The rules across keys (TLS needs its files, per_ip within max_connections, ...).
void check_config(Reader& reader, const Config& config);

}  // namespace iotsocket::config
