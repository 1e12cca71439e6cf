// The master process as one object: it owns the parts (docs/ARCHITECTURE.md "The master")
// and wires them. master.cpp runs its loop and passes each event to its owner;
// master_start.cpp opens what it needs and forks the workers. Internal to master/: the
// rest of the program calls master::run() (master.hpp).
#pragma once

#include <openssl/ssl.h>
#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "common/event_sink.hpp"
#include "common/fd.hpp"
#include "common/registry.hpp"
#include "common/tls.hpp"
#include "config/config.hpp"
#include "master/acceptor.hpp"
#include "master/master.hpp"
#include "master/metrics_server.hpp"
#include "master/metrics_families.hpp"
#include "master/offline_queue.hpp"
#include "master/push_delivery.hpp"
#include "master/push_intake.hpp"
#include "master/reload_coordinator.hpp"
#include "master/service_notify.hpp"
#include "master/worker_pool.hpp"
#include "protocol/time.hpp"
#include "shm/device_table.hpp"

namespace iotsocket::master {

// epoll data of each kind of descriptor in the master's set.
inline constexpr std::uint64_t kSignalTag = 1ULL << 62;
inline constexpr std::uint64_t kListenerTag = 1ULL << 61;
inline constexpr std::uint64_t kWorkerTag = 1ULL << 60;
inline constexpr std::uint64_t kPushSourceTag = 1ULL << 59;
inline constexpr std::uint64_t kMetricsTag = 1ULL << 58;

class Master final : public WorkerEvents {
 public:
  explicit Master(MasterSetup setup)
      : config_(*setup.config),
        tls_(setup.tls),
        listeners_(std::move(setup.listeners)),
        events_(EventSinkOptions{.path = config_.fifo.events}),
        epoll_(::epoll_create1(EPOLL_CLOEXEC)),
        pool_(config::effective_workers(config_), epoll_.get(), kWorkerTag, events_,
              [this](std::uint32_t index, std::uint32_t generation, Fd worker_end) {
                return fork_worker(index, generation, std::move(worker_end));
              }) {}

  int run();

 private:
  // start
  bool start();
  bool open_signals();
  bool open_device_state();
  bool open_push_path();
  bool open_metrics();
  pid_t fork_worker(std::uint32_t index, std::uint32_t generation, Fd worker_end);

  // the loop
  void on_event(const epoll_event& event);
  void tick(std::chrono::steady_clock::time_point now);
  int timeout_ms(std::chrono::steady_clock::time_point now) const;
  bool finished(std::chrono::steady_clock::time_point now);

  // signals
  void on_signal();
  void begin_shutdown();
  void stop_now();
  void reopen_log();

  // what the workers say (WorkerPool passes it on)
  void ready(std::uint32_t worker) override;
  void connection_closed(std::uint32_t, const IpKey& ip, bool counted) override {
    acceptor_->connection_closed(ip, counted);
  }
  void device_online(std::uint32_t worker, const channel::Message& m) override {
    delivery_->device_online(worker, m);
  }
  void push_returned(std::uint32_t worker, const channel::Message& m, std::string payload) override {
    delivery_->returned(worker, m, std::move(payload));
  }
  void pushes_settled(std::uint32_t worker, std::span<const std::uint64_t> seqs) override {
    delivery_->settled(worker, seqs);
  }
  void fence_passed(std::uint32_t worker, const channel::Message& m) override {
    delivery_->fence_passed(worker, m);
  }
  void reloaded(std::uint32_t worker, const std::string& failure) override {
    reload_->answered(worker, failure);
  }
  void gone(std::uint32_t worker, const WorkerProcess& process, int status) override;

  // service state
  std::string status_text() const;
  void announce_ready_when_all_are();
  metrics::Snapshot metrics_snapshot() const;

  config::Config config_;  // the running settings; a reload changes the reloadable ones
  SSL_CTX* tls_;          // what new workers inherit: main's context, or the last reload's
  SslCtx reloaded_tls_;   // owns the last reload's context
  std::vector<Listener> listeners_;  // until start() hands them to the acceptor
  ServiceNotify notify_;
  EventSink events_;  // push_queued, push_expired (the workers write the other events)
  Fd epoll_;
  Fd signals_;
  std::optional<DeviceRegistry> registry_;
  std::optional<shm::DeviceTable> table_;
  std::optional<OfflineQueue> offline_;
  // Logins refuse TIMEs at or below this (after a run that did not stop cleanly).
  protocol::Time replay_floor_{};
  WorkerPool pool_;
  std::optional<Acceptor> acceptor_;
  std::optional<PushDelivery> delivery_;
  std::optional<PushIntake> intake_;
  std::optional<ReloadCoordinator> reload_;
  std::optional<MetricsServer> metrics_;

  std::chrono::steady_clock::time_point next_tick_{};
  std::chrono::steady_clock::time_point next_expiry_{};
  bool stopping_ = false;
  std::chrono::steady_clock::time_point stop_deadline_{};
};

}  // namespace iotsocket::master
