// SIGHUP in a worker: the master has checked the new certificate and settings; each worker
// loads them again (a TLS context cannot cross fork(), the settings cannot cross the
// channel whole) and keeps what it had should that fail (the files changed in between).
#include <spdlog/spdlog.h>

#include "common/log.hpp"
#include "config/reload.hpp"
#include "worker/worker_loop.hpp"

namespace iotsocket::worker {

std::string Worker::reload_tls(const std::string& payload) noexcept {
  const auto files = channel::decode_tls_files(payload);
  if (tls_ == nullptr || !files) return "no TLS context to replace";
  auto made = make_server_context(files->cert, files->key);
  if (!made) {
    spdlog::error("reload refused, the running certificate stays: tls: {}", made.error());
    return "tls: " + made.error();
  }
  // Keys inherited from the master: every worker's tickets resume on every other.
  if (!copy_ticket_keys(tls_, made->get())) spdlog::warn("reload: cannot carry the session-ticket keys over");
  reloaded_tls_ = std::move(*made);
  tls_ = reloaded_tls_.get();
  spdlog::info("reload: new handshakes use {}", files->cert);
  return {};
}

std::string Worker::reload_settings() noexcept {
  auto loaded = config::load_file(config_.path);
  if (!loaded) {
    const std::string why = loaded.error().front().to_string();
    spdlog::error("reload: this worker keeps its settings: {}", why);
    return why;
  }
  const config::Config merged = config::with_reloadable(config_, *loaded);
  if (merged.devices.sqlite != config_.devices.sqlite) {
    auto opened = DeviceRegistry::open(merged.devices.sqlite, DeviceRegistry::Mode::read_write);
    if (!opened) {
      spdlog::error("reload: this worker keeps its settings: devices.sqlite: {}", opened.error());
      return "devices.sqlite: " + opened.error();
    }
    registry_ = std::move(*opened);
  }
  config_ = merged;
  limits_ = session_limits(config_);  // for connections accepted from now on
  log::set_level(log::parse_level(config_.log.level).value_or(spdlog::level::info));
  spdlog::info("reload: settings applied");
  return {};
}

}  // namespace iotsocket::worker
