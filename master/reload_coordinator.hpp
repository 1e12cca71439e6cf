// SIGHUP, nginx-style: the new config, certificate and registry are built and checked in
// full first; any failure is logged and the running settings all stay. Then the reloadable
// settings are applied (config/reload.hpp) and the workers told, who read the file again
// for theirs and load the certificate for new handshakes; connected devices keep their
// connections. Restart-only settings that changed are named in the log. systemd hears
// RELOADING=1 at once and READY=1 when every worker has answered (or at once when the
// reload is refused: the service is as it was).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/registry.hpp"
#include "common/tls.hpp"
#include "config/config.hpp"
#include "master/offline_queue.hpp"
#include "master/service_notify.hpp"
#include "master/worker_pool.hpp"

namespace iotsocket::master {

// What a reload may change: the master's, changed in place.
struct RunningSettings {
  config::Config& config;
  SSL_CTX*& tls;         // what new workers inherit: main's context, or the last reload's
  SslCtx& reloaded_tls;  // owns the last reload's context
  DeviceRegistry& registry;
  OfflineQueue& offline;
};

class ReloadCoordinator {
 public:
  ReloadCoordinator(RunningSettings running, WorkerPool& pool, ServiceNotify& notify);

  // SIGHUP.
  void reload();
  // Worker `worker` answered a reload_tls or reload_settings: "" or why it kept its own.
  void answered(std::uint32_t worker, const std::string& failure);
  // A worker that died owes nothing: its replacement starts with the settings of now.
  void worker_gone(std::uint32_t worker);

 private:
  bool apply_reloadable(const config::Config& next);
  void take_certificate(const config::Config& next, SslCtx made);
  void ask_workers(channel::Cmd cmd, const std::string& payload = {});
  void finish_when_answered();

  RunningSettings running_;
  WorkerPool& pool_;
  ServiceNotify& notify_;
  bool pending_ = false;        // RELOADING=1 said; READY=1 when every worker has answered
  bool workers_asked_ = false;  // this reload sent them something to do
  std::vector<std::uint32_t> answers_due_;  // per worker
  std::vector<std::string> failures_;
};

}  // namespace iotsocket::master
