// iotsocketd: the server. Loads the config, prepares what the processes share (TLS context,
// listening sockets, FIFOs, spool directory, pid file), then runs the master, which forks
// the workers. Startup errors name the file, the key and what was expected, and exit 1.
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "common/log.hpp"
#include "common/tls.hpp"
#include "config/config.hpp"
#include "master/listeners.hpp"
#include "master/master.hpp"

namespace {

using namespace iotsocket;

// Descriptors the configured connections need, plus room for listeners, channels, FIFOs,
// the registry and the spool.
constexpr rlim_t kFdHeadroom = 256;

void raise_fd_limit(const config::Config& config) {
  const rlim_t wanted = rlim_t{config.limits.max_connections} + kFdHeadroom;
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= wanted) return;
  const rlim_t granted = std::min(wanted, limit.rlim_max);
  limit.rlim_cur = granted;
  if (::setrlimit(RLIMIT_NOFILE, &limit) != 0 || granted < wanted) {
    spdlog::warn("limits.max_connections is {} but the open-file limit is {} (hard limit {}); "
                 "about {} connections fit. Raise LimitNOFILE / ulimit -n to serve them all.",
                 config.limits.max_connections, limit.rlim_cur, limit.rlim_max,
                 limit.rlim_cur > kFdHeadroom ? limit.rlim_cur - kFdHeadroom : 0);
  }
}

// The FIFOs are created when missing (mode 0660: the backend joins the group); a path that
// exists and is not a FIFO is an error, never replaced.
bool ensure_fifo(const std::string& path, const char* key) {
  struct stat st{};
  if (::stat(path.c_str(), &st) == 0) {
    if (S_ISFIFO(st.st_mode)) return true;
    spdlog::critical("{}: {} exists and is not a FIFO", key, path);
    return false;
  }
  if (::mkfifo(path.c_str(), 0660) != 0 && errno != EEXIST) {
    spdlog::critical("{}: cannot create FIFO {}: {}", key, path, std::strerror(errno));
    return false;
  }
  return true;
}

bool prepare_runtime(const config::Config& config) {
  std::error_code ec;
  std::filesystem::create_directories(config.spool.dir, ec);
  if (ec) {
    spdlog::critical("spool.dir: cannot create {}: {}", config.spool.dir, ec.message());
    return false;
  }
  if (!ensure_fifo(config.fifo.inbound, "fifo.inbound") || !ensure_fifo(config.fifo.push, "fifo.push")) {
    return false;
  }
  if (!config.fifo.events.empty() && !ensure_fifo(config.fifo.events, "fifo.events")) return false;
  std::ofstream pid(config.runtime.pid_file, std::ios::trunc);
  if (!pid || !(pid << ::getpid() << '\n')) {
    spdlog::critical("runtime.pid_file: cannot write {}: {}", config.runtime.pid_file,
                     std::strerror(errno));
    return false;
  }
  return true;
}

// With the files the server opens at start (--check-config too): a missing certificate or
// a spool.dir that is a file is named with its key and line before anything starts.
std::optional<config::Config> load_config(const std::string& path) {
  auto loaded = config::load_file(path, config::FileChecks::server);
  if (!loaded) {
    for (const auto& error : loaded.error()) std::cerr << error.to_string() << '\n';
    return std::nullopt;
  }
  return std::move(*loaded);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"iotsocketd: TLS socket server for IoT device fleets (IOT/1.1)"};
  std::string config_path = "/etc/iotsocket/iotsocket.yaml";
  bool check_only = false;
  app.add_option("-c,--config", config_path, "configuration file (YAML)");
  app.add_flag("--check-config", check_only, "validate the configuration and exit 0 (OK) or 1");
  app.set_version_flag("-v,--version", std::string("iotsocketd ") + IOTSOCKET_VERSION);
  CLI11_PARSE(app, argc, argv);

  auto config = load_config(config_path);
  if (!config) return 1;
  const auto level = log::parse_level(config->log.level).value_or(spdlog::level::info);
  // --check-config reports to the terminal (or ExecStartPre's journal), never to the file.
  if (auto error = log::init("master", level, check_only ? std::string() : config->log.file)) {
    spdlog::critical("log.file: cannot open {}: {}", config->log.file, *error);
    return 1;
  }

  SslCtx tls;
  if (config->tls.enabled) {
    auto made = make_server_context(config->tls.cert, config->tls.key);
    if (!made) {
      spdlog::critical("tls: {}", made.error());
      return 1;
    }
    tls = std::move(*made);
    for (const std::string& warning : certificate_warnings(tls.get(), config->tls.cert, config->tls.key)) {
      spdlog::warn("tls: {}", warning);
    }
  }
  if (check_only) {
    std::cout << "configuration OK\n";
    return 0;
  }
  if (!config->tls.enabled) {
    spdlog::warn("tls.enabled is false: devices connect in PLAIN TCP (tests, closed networks only)");
  }
  ::signal(SIGPIPE, SIG_IGN);  // a vanished peer or FIFO reader is an EPIPE, handled in place
  raise_fd_limit(*config);
  if (!prepare_runtime(*config)) return 1;
  auto listeners = master::bind_listeners(config->listen);
  if (!listeners) {
    spdlog::critical("listen: {}", listeners.error());
    return 1;
  }
  int code = master::run(master::MasterSetup{
      .config = &*config, .tls = tls.get(), .listeners = std::move(*listeners)});
  std::error_code ignored;
  std::filesystem::remove(config->runtime.pid_file, ignored);
  return code;
}
