#include "common/log.hpp"

#include <memory>
#include <string>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace iotsocket::log {
namespace {

// What init() was given, for reopen().
struct Current {
  std::string process_name;
  spdlog::level::level_enum level = spdlog::level::info;
  std::string file;
};
Current& current() {
  static Current c;
  return c;
}

void install(spdlog::sink_ptr sink) {
  const Current& c = current();
  auto logger = std::make_shared<spdlog::logger>(c.process_name, std::move(sink));
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %n: %v");
  logger->set_level(c.level);
  // Every line is written at once, in one write(): the master and the workers append to the
  // same file (O_APPEND), and whole lines from several processes never interleave. (stderr
  // is unbuffered anyway.)
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

// Plain (not _mt) sinks: every process is single-threaded. spdlog reports an open failure
// by exception; it ends here, at startup or at SIGUSR1, never on the data plane.
std::shared_ptr<spdlog::sinks::basic_file_sink_st> open_file(const std::string& file,
                                                             std::string& error) {
  try {
    return std::make_shared<spdlog::sinks::basic_file_sink_st>(file, /*truncate=*/false);
  } catch (const spdlog::spdlog_ex& e) {
    error = e.what();
    return nullptr;
  }
}

}  // namespace

std::optional<spdlog::level::level_enum> parse_level(std::string_view text) {
  static constexpr std::pair<std::string_view, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off},
  };
  for (const auto& [name, level] : kLevels) {
    if (name == text) return level;
  }
  return std::nullopt;
}

std::optional<std::string> init(std::string_view process_name, spdlog::level::level_enum level,
                                const std::string& file) {
  current() = Current{std::string(process_name), level, file};
  if (!file.empty()) {
    std::string error;
    if (auto sink = open_file(file, error)) {
      install(std::move(sink));
      return std::nullopt;
    }
    current().file.clear();
    install(std::make_shared<spdlog::sinks::stderr_sink_st>());
    return error;
  }
  install(std::make_shared<spdlog::sinks::stderr_sink_st>());
  return std::nullopt;
}

std::optional<std::string> reopen() {
  const std::string& path = current().file;
  if (path.empty()) return std::nullopt;
  spdlog::default_logger()->flush();
  std::string error;
  auto sink = open_file(path, error);
  if (!sink) return error;
  install(std::move(sink));
  return std::nullopt;
}

void set_level(spdlog::level::level_enum level) {
  current().level = level;
  spdlog::default_logger()->set_level(level);
}

const std::string& file() { return current().file; }

}  // namespace iotsocket::log
