// The master's loop: it wires the parts and hands each event to its owner. Signals arrive
// through a signalfd (the handlers only record, the loop acts); listeners, worker channels,
// the push source and the signalfd share one epoll set.
//
//   accept -> Acceptor (caps, parking) -> least-loaded ready worker (WorkerPool) -> SCM_RIGHTS
//   push source -> PushIntake -> PushDelivery -> the holding worker's channel, or the offline
//                  queue; settled, handed back or requeued there too
//   worker channels -> WorkerPool -> this class's WorkerEvents -> the part that owns each
//   SIGCHLD -> WorkerPool reaps; a dead worker's devices are released in the table, its
//              pushes requeued (PushDelivery), and it is respawned
//   SIGTERM / SIGINT -> stop accepting; workers close their connections over the drain
//                       period, say drained, get finish (nothing follows it), exit; then exit
//   SIGHUP -> ReloadCoordinator (config/reload.hpp; README "Reloading"); SIGUSR1 -> reopen log.file
//   metrics.listen -> MetricsServer (its own epoll set, one descriptor here)
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/counted.hpp"
#include "common/log.hpp"
#include "master/master_process.hpp"
#include "master/metrics_snapshot.hpp"
#include "shm/worker_totals.hpp"

namespace iotsocket::master {
namespace {

using std::chrono::steady_clock;
using namespace std::chrono_literals;

// Beyond the drain period, for the workers to place what they hold and exit.
constexpr auto kShutdownGrace = 30s;
constexpr auto kStopNowGrace = 5s;
constexpr auto kOfflineExpiryInterval = 60s;
// Registry lookups per second for the queued pushes of removed devices: about 1% of the
// loop's time, and a round over 100,000 queued devices in under two minutes.
constexpr std::size_t kRemovalChecksPerSecond = 1024;

}  // namespace

// ---- the loop -------------------------------------------------------------------------

int Master::run() {
  if (!start()) return 1;
  epoll_event events[64];
  while (!finished(steady_clock::now())) {
    tick(steady_clock::now());
    const int n = ::epoll_wait(epoll_.get(), events, 64, timeout_ms(steady_clock::now()));
    if (n < 0 && errno != EINTR) {
      spdlog::critical("epoll_wait failed: {}", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) on_event(events[i]);
  }
  intake_->log_held_back_before_exit(steady_clock::now());
  delivery_->log_held_back_before_exit(steady_clock::now());
  events_.flush_before_exit(1s);
  table_->unlink();
  spdlog::info("stopped");
  return 0;
}

void Master::on_event(const epoll_event& event) {
  const std::uint64_t tag = event.data.u64;
  const auto index = static_cast<std::uint32_t>(tag & 0xffffffff);
  if (tag == kSignalTag) {
    on_signal();
  } else if (tag & kListenerTag) {
    acceptor_->on_listener(index);
  } else if (tag & kWorkerTag) {
    pool_.on_channel(index, event.events, *this);
  } else if (tag == kPushSourceTag) {
    intake_->on_readable();
  } else if (tag == kMetricsTag) {
    metrics_->on_ready(steady_clock::now());
  }
}

void Master::tick(steady_clock::time_point now) {
  notify_.watchdog(now);
  if (metrics_) metrics_->expire(now);
  events_.flush();
  acceptor_->tick(now);
  intake_->resume_when_drained();
  if (now >= next_expiry_) {
    next_expiry_ = now + kOfflineExpiryInterval;
    delivery_->expire(std::chrono::system_clock::now());
  }
  pool_.respawn_due(now);
  if (now >= next_tick_) {
    next_tick_ = now + 1s;
    if (notify_.said_ready()) notify_.status(status_text());
    acceptor_->log_refusals();
    intake_->log_held_back(now);
    delivery_->log_held_back(now);
    delivery_->drop_removed(kRemovalChecksPerSecond);
  }
}

int Master::timeout_ms(steady_clock::time_point now) const {
  auto until = std::min(next_tick_, notify_.next_watchdog());
  if (const auto wakeup = acceptor_->next_wakeup(now)) until = std::min(until, *wakeup);
  if (const auto retry = events_.retry_in()) until = std::min(until, now + *retry);
  if (const auto respawn = pool_.next_respawn()) until = std::min(until, *respawn);
  if (stopping_) until = std::min(until, stop_deadline_);
  if (until <= now) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(until - now).count());
}

// Stopping, and every worker has exited; those that overstay are killed.
bool Master::finished(steady_clock::time_point now) {
  if (!stopping_) return false;
  if (pool_.all_exited()) return true;
  if (now >= stop_deadline_) {
    spdlog::error("workers did not stop in time; killing them");
    pool_.kill_all(SIGKILL);
    stop_deadline_ = now + 5s;
  }
  return false;
}

// ---- signals --------------------------------------------------------------------------

void Master::on_signal() {
  signalfd_siginfo info;
  while (::read(signals_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    switch (info.ssi_signo) {
      case SIGCHLD:
        pool_.reap(*this);
        break;
      case SIGTERM:
      case SIGINT:
        if (stopping_) {
          stop_now();
        } else {
          spdlog::info("{}: stopping", ::strsignal(static_cast<int>(info.ssi_signo)));
          begin_shutdown();
        }
        break;
      case SIGHUP:
        if (stopping_) {
          spdlog::info("SIGHUP while stopping: ignored");
        } else {
          reload_->reload();
        }
        break;
      case SIGUSR1:
        reopen_log();
        break;
      default:
        break;
    }
  }
}

void Master::begin_shutdown() {
  notify_.stopping();
  stopping_ = true;
  pool_.stop();
  stop_deadline_ = steady_clock::now() + config_.shutdown.drain + kShutdownGrace;
  acceptor_->stop();
  spdlog::info("draining {} connections over {} ms (shutdown.drain)", acceptor_->connections(),
               config_.shutdown.drain.count());
  pool_.send_all(channel::Cmd::shutdown);
}

// A second SIGTERM/SIGINT: no more waiting. Workers close what is left at once and still
// place every inbound record and hand back every unsent push before they exit.
void Master::stop_now() {
  spdlog::warn("second stop signal: closing every connection now");
  pool_.send_all(channel::Cmd::stop_now);
  stop_deadline_ = std::min(stop_deadline_, steady_clock::now() + kStopNowGrace);
}

void Master::reopen_log() {
  if (log::file().empty()) {
    spdlog::info("SIGUSR1: logging goes to stderr; nothing to reopen");
    return;
  }
  if (auto error = log::reopen()) {
    spdlog::error("SIGUSR1: cannot reopen {}: {}; logging goes on to the file it had",
                  log::file(), *error);
    return;
  }
  spdlog::info("SIGUSR1: reopened {}", log::file());
  pool_.send_all(channel::Cmd::reopen_log);
}

// ---- what the workers say -------------------------------------------------------------

void Master::ready(std::uint32_t) {
  announce_ready_when_all_are();
  tick(steady_clock::now());  // accept from now on
}

// One call per part that held something of the worker; the pool clears the rest.
void Master::gone(std::uint32_t worker, const WorkerProcess& process, int) {
  acceptor_->worker_gone(process);
  reload_->worker_gone(worker);
  const std::size_t freed = delivery_->worker_gone(worker);
  if (freed > 0) spdlog::info("worker {}: {} devices released from the device table", worker, freed);
  table_->counters(worker).clear_gauges();  // before the respawn
}

// ---- service state --------------------------------------------------------------------

std::string Master::status_text() const {
  const std::string connections = counted(acceptor_->connections(), "connection", "connections");
  if (stopping_) return "stopping: " + connections + " left to close";
  return connections + ", " + std::to_string(pool_.ready_count()) + " of " +
         counted(pool_.size(), "worker", "workers") + " ready";
}

// READY=1 once, when every worker has said ready the first time (the listeners are bound
// before the workers start).
void Master::announce_ready_when_all_are() {
  if (notify_.said_ready() || pool_.ready_count() < pool_.size()) return;
  notify_.ready(status_text());
}

metrics::Snapshot Master::metrics_snapshot() const {
  const PushDelivery::Counts& pushes = delivery_->counts();
  const RefusalCounts refused = acceptor_->refused();
  return metrics::Snapshot{
      .workers = shm::sum_workers(*table_),
      .master = {.pushes_routed = pushes.routed,
                 .pushes_queued = pushes.queued,
                 .pushes_refused = pushes.refused,
                 .pushes_expired = pushes.expired,
                 .pushes_evicted = pushes.evicted,
                 .offline_queued = offline_->total(),
                 .refused_max_connections = refused.max_connections,
                 .refused_per_ip = refused.per_ip,
                 .refused_workers_behind = refused.workers_behind,
                 .worker_restarts = pool_.restarts(),
                 .workers = static_cast<std::uint32_t>(pool_.size()),
                 .workers_ready = pool_.ready_count(),
                 .certificate_not_after = metrics::certificate_not_after(tls_)}};
}

int run(MasterSetup setup) {
  Master master(std::move(setup));
  return master.run();
}

}  // namespace iotsocket::master
