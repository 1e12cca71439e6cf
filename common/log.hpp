// Logging: spdlog, one line per event, to stderr (so that journald or the terminal keeps it)
// or, with log.file, appended to a file that SIGUSR1 reopens (after logrotate moved it).
// Each process names itself ("master", "worker 1", "iotsocketctl"); call sites use
// spdlog::info(...) and friends directly.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <spdlog/spdlog.h>

namespace iotsocket::log {

// Parses "trace", "debug", "info", "warn", "error", "critical" or "off".
std::optional<spdlog::level::level_enum> parse_level(std::string_view text);

// Installs the default logger: "<time> <level> <process>: <message>" to stderr, or to
// `file` when it is not empty. Safe to call again (e.g. in a forked worker, to rename the
// process). On a file that cannot be opened, returns why and logs to stderr instead.
std::optional<std::string> init(std::string_view process_name, spdlog::level::level_enum level,
                                const std::string& file = {});

// Opens the log file again by its name (SIGUSR1). Nothing to do when logging to stderr.
// On failure the logger keeps writing to the file it had, and the reason is returned.
std::optional<std::string> reopen();

// Changes the level (a reload); reopen() keeps it.
void set_level(spdlog::level::level_enum level);

// The file logs go to; empty for stderr.
const std::string& file();

}  // namespace iotsocket::log
