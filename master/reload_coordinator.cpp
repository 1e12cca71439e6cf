#include "master/reload_coordinator.hpp"

#include <spdlog/spdlog.h>

#include "common/log.hpp"
#include "config/reload.hpp"

namespace iotsocket::master {

ReloadCoordinator::ReloadCoordinator(RunningSettings running, WorkerPool& pool, ServiceNotify& notify)
    : running_(running), pool_(pool), notify_(notify), answers_due_(pool.size(), 0) {}

void ReloadCoordinator::reload() {
  config::Config& config = running_.config;
  spdlog::info("SIGHUP: reloading {}", config.path);
  // Nothing before the first READY=1.
  if (notify_.said_ready()) notify_.reloading();
  pending_ = true;
  struct AnswersAwaited {
    ReloadCoordinator& coordinator;
    ~AnswersAwaited() { coordinator.finish_when_answered(); }
  } awaited{*this};
  auto loaded = config::load_file(config.path);
  if (!loaded) {
    for (const auto& error : loaded.error()) {
      spdlog::error("reload refused, the running settings stay: {}", error.to_string());
    }
    return;
  }
  const config::Config& next = *loaded;
  const bool new_tls = config.tls.enabled && next.tls.enabled;
  SslCtx made_tls;
  if (new_tls) {
    auto made = make_server_context(next.tls.cert, next.tls.key);
    if (!made) {
      spdlog::error("reload refused, the running certificate stays: tls: {}", made.error());
      return;
    }
    made_tls = std::move(*made);
  }
  if (!apply_reloadable(next)) return;
  if (new_tls) take_certificate(next, std::move(made_tls));
}

// False (and nothing changed) when the new registry cannot be opened.
bool ReloadCoordinator::apply_reloadable(const config::Config& next) {
  config::Config& config = running_.config;
  std::optional<DeviceRegistry> registry;
  if (next.devices.sqlite != config.devices.sqlite) {
    auto opened = DeviceRegistry::open(next.devices.sqlite, DeviceRegistry::Mode::read_write);
    if (!opened) {
      spdlog::error("reload refused, the running settings stay: devices.sqlite: {}", opened.error());
      return false;
    }
    registry.emplace(std::move(*opened));
  }
  for (const std::string& name : config::restart_only_changes(config, next)) {
    spdlog::warn("reload: {} changed in {}; it takes effect at the next restart", name, next.path);
  }
  const config::Config merged = config::with_reloadable(config, next);
  const std::vector<std::string> changed = config::reloadable_changes(config, merged);
  config = merged;  // in place: delivery, the caps and workers forked from now on see it
  if (registry) running_.registry = std::move(*registry);
  running_.offline.set_bounds(config.push.offline_max,
                              std::chrono::duration_cast<std::chrono::seconds>(config.push.offline_max_age));
  log::set_level(log::parse_level(config.log.level).value_or(spdlog::level::info));
  for (const std::string& name : changed) spdlog::info("reload: {} changed; in effect now", name);
  if (!changed.empty()) ask_workers(channel::Cmd::reload_settings);
  return true;
}

void ReloadCoordinator::take_certificate(const config::Config& next, SslCtx made) {
  for (const std::string& warning : certificate_warnings(made.get(), next.tls.cert, next.tls.key)) {
    spdlog::warn("tls: {}", warning);
  }
  // The running ticket keys go on, so that devices resume their sessions on any worker.
  if (!copy_ticket_keys(running_.tls, made.get())) {
    spdlog::warn("reload: cannot carry the session-ticket keys over");
  }
  running_.reloaded_tls = std::move(made);
  running_.tls = running_.reloaded_tls.get();  // for workers forked from now on
  ask_workers(channel::Cmd::reload_tls,
              channel::encode_tls_files({.cert = next.tls.cert, .key = next.tls.key}));
  spdlog::info("reload: certificate {} for new connections", next.tls.cert);
}

void ReloadCoordinator::ask_workers(channel::Cmd cmd, const std::string& payload) {
  for (std::uint32_t worker : pool_.send_all(cmd, payload)) {
    ++answers_due_[worker];
    workers_asked_ = true;
  }
}

void ReloadCoordinator::answered(std::uint32_t worker, const std::string& failure) {
  if (answers_due_[worker] > 0) --answers_due_[worker];
  if (!failure.empty()) failures_.push_back("worker " + std::to_string(worker) + ": " + failure);
  finish_when_answered();
}

void ReloadCoordinator::worker_gone(std::uint32_t worker) {
  answers_due_[worker] = 0;
  finish_when_answered();
}

void ReloadCoordinator::finish_when_answered() {
  if (!pending_) return;
  for (std::uint32_t due : answers_due_) {
    if (due > 0) return;
  }
  pending_ = false;
  if (failures_.empty()) {
    if (workers_asked_) spdlog::info("reload: done, every worker has taken it");
  } else {
    std::string failures;
    for (const std::string& f : failures_) failures += (failures.empty() ? "" : "; ") + f;
    spdlog::error("reload: done, but {} workers kept what they had: {}", failures_.size(), failures);
    failures_.clear();
  }
  workers_asked_ = false;
  if (notify_.said_ready()) notify_.reloaded();
}

}  // namespace iotsocket::master
