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
#include "master/master.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>

#include <spdlog/spdlog.h>

#include "common/counted.hpp"
#include "common/event_sink.hpp"
#include "common/log.hpp"
#include "common/registry.hpp"
#include "config/host_port.hpp"
#include "master/acceptor.hpp"
#include "master/metrics_server.hpp"
#include "master/metrics_snapshot.hpp"
#include "master/metrics_text.hpp"
#include "master/offline_queue.hpp"
#include "master/push_delivery.hpp"
#include "master/push_fifo.hpp"
#include "master/push_intake.hpp"
#include "master/reload_coordinator.hpp"
#include "master/service_notify.hpp"
#include "master/worker_pool.hpp"
#include "protocol/time.hpp"
#include "shm/device_table.hpp"
#include "shm/worker_totals.hpp"
#include "worker/worker.hpp"

namespace iotsocket::master {
namespace {

using std::chrono::steady_clock;
using namespace std::chrono_literals;

// Beyond the drain period, for the workers to place what they hold and exit.
constexpr auto kShutdownGrace = 30s;
constexpr auto kStopNowGrace = 5s;
constexpr auto kOfflineExpiryInterval = 60s;

constexpr std::uint64_t kSignalTag = 1ULL << 62;
constexpr std::uint64_t kListenerTag = 1ULL << 61;
constexpr std::uint64_t kWorkerTag = 1ULL << 60;
constexpr std::uint64_t kPushSourceTag = 1ULL << 59;
constexpr std::uint64_t kMetricsTag = 1ULL << 58;

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
  void tick(steady_clock::time_point now);
  int timeout_ms(steady_clock::time_point now) const;
  bool finished(steady_clock::time_point now);

  // signals
  void on_signal();
  void begin_shutdown();
  void stop_now();
  void reopen_log();

  // what the workers say (WorkerPool passes it on)
  void ready(std::uint32_t worker) override;
  void connection_closed(std::uint32_t, const IpKey& ip) override { acceptor_->connection_closed(ip); }
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

  steady_clock::time_point next_tick_{};
  steady_clock::time_point next_expiry_{};
  bool stopping_ = false;
  steady_clock::time_point stop_deadline_{};
};

// ---- start ----------------------------------------------------------------------------

bool Master::start() {
  if (!open_signals()) return false;
  acceptor_.emplace(std::move(listeners_), epoll_.get(), kListenerTag, pool_, config_);
  if (!open_device_state() || !open_push_path() || !open_metrics()) return false;
  reload_.emplace(RunningSettings{.config = config_, .tls = tls_, .reloaded_tls = reloaded_tls_,
                                  .registry = *registry_, .offline = *offline_},
                  pool_, notify_);
  for (std::uint32_t i = 0; i < pool_.size(); ++i) {
    if (!pool_.spawn(i)) return false;
  }
  spdlog::info("started {} workers, max {} connections, {} per source address", pool_.size(),
               config_.limits.max_connections, config_.limits.per_ip);
  return true;
}

bool Master::open_signals() {
  sigset_t set;
  sigemptyset(&set);
  for (int s : {SIGCHLD, SIGTERM, SIGINT, SIGHUP, SIGUSR1}) sigaddset(&set, s);
  // Blocked here and so in every worker: workers act on the master's channel only.
  ::sigprocmask(SIG_BLOCK, &set, nullptr);
  signals_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
  if (!epoll_ || !signals_) {
    spdlog::critical("epoll/signalfd setup failed: {}", std::strerror(errno));
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kSignalTag;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, signals_.get(), &ev);
  return true;
}

// The registry and the device table.
bool Master::open_device_state() {
  auto registry = DeviceRegistry::open(config_.devices.sqlite, DeviceRegistry::Mode::read_write);
  if (!registry) {
    spdlog::critical("cannot open the device registry: {}", registry.error());
    return false;
  }
  registry_.emplace(std::move(*registry));
  // A segment still there is one a run left behind that did not stop cleanly: its live
  // devices' last marks never reached the registry, so logins start above anything that
  // run could have accepted (TIME may run up to the tolerance ahead of the clock).
  if (shm::DeviceTable::attach(config_.runtime.shm_name)) {
    replay_floor_ = protocol::to_time(std::chrono::system_clock::now()) +
                    std::chrono::duration_cast<protocol::Tick>(config_.protocol.time_tolerance);
  }
  auto table = shm::DeviceTable::create(config_.runtime.shm_name, config_.limits.max_devices,
                                       static_cast<std::uint32_t>(pool_.size()));
  if (!table) {
    spdlog::critical("runtime.shm_name: {}", table.error());
    return false;
  }
  table_.emplace(std::move(*table));
  return true;
}

bool Master::open_push_path() {
  auto offline = OfflineQueue::open(OfflineOptions{
      .path = config::offline_db_path(config_),
      .max_per_device = config_.push.offline_max,
      .max_age = std::chrono::duration_cast<std::chrono::seconds>(config_.push.offline_max_age)});
  if (!offline) {
    spdlog::critical("push.offline_db: {}", offline.error());
    return false;
  }
  offline_.emplace(std::move(*offline));
  if (offline_->total() > 0) {
    spdlog::info("offline queue {}: {} pushes wait for their devices", offline_->path(),
                 offline_->total());
  }
  auto fifo = PushFifo::open(config_.fifo.push);
  if (!fifo) {
    spdlog::critical("{}", fifo.error());
    return false;
  }
  delivery_.emplace(config_, *table_, *offline_, *registry_, events_, pool_.size(), pool_);
  intake_.emplace(std::make_unique<PushFifo>(std::move(*fifo)), epoll_.get(), kPushSourceTag,
                  *delivery_, pool_);
  return true;
}

bool Master::open_metrics() {
  if (config_.metrics.listen.empty()) return true;
  auto server = MetricsServer::open(*config::parse_host_port(config_.metrics.listen),
                                    [this] { return metrics::render(metrics_snapshot()); });
  if (!server) {
    spdlog::critical("metrics.listen: {}", server.error());
    return false;
  }
  metrics_.emplace(std::move(*server));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kMetricsTag;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, metrics_->fd(), &ev);
  spdlog::info("metrics on {}", metrics_->name());
  return true;
}

pid_t Master::fork_worker(std::uint32_t index, std::uint32_t generation, Fd worker_end) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;  // the master (or -1)
  // Only the master speaks to systemd.
  for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) ::unsetenv(name);
  // The child keeps only its own channel end and the table's mapping: no listeners, no
  // other channels, no SQLite connection carried across fork().
  acceptor_.reset();
  pool_.close_in_child();
  signals_.reset();
  epoll_.reset();
  reload_.reset();
  intake_.reset();
  delivery_.reset();
  metrics_.reset();
  offline_.reset();
  registry_.reset();
  events_ = EventSink{};  // the worker opens its own
  log::init("worker " + std::to_string(index),
            log::parse_level(config_.log.level).value_or(spdlog::level::info), log::file());
  const int code = worker::run(worker::WorkerSetup{.config = &config_,
                                                   .tls = tls_,
                                                   .table = &*table_,
                                                   .channel = std::move(worker_end),
                                                   .index = index,
                                                   .replay_floor = replay_floor_,
                                                   .generation = generation});
  spdlog::default_logger()->flush();
  ::_exit(code);
}

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
  // Its devices are free to log in elsewhere at once. Their replay marks in the table are
  // current: a worker raises the mark before the frame goes anywhere, so a frame it died
  // before marking reached no backend either.
  const std::size_t freed = table_->release_worker(worker, protocol::Time{});
  if (freed > 0) spdlog::info("worker {}: {} devices released from the device table", worker, freed);
  delivery_->worker_gone(worker);
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
                 .worker_restarts = pool_.restarts(),
                 .workers = static_cast<std::uint32_t>(pool_.size()),
                 .workers_ready = pool_.ready_count(),
                 .certificate_not_after = metrics::certificate_not_after(tls_)}};
}

}  // namespace

int run(MasterSetup setup) {
  Master master(std::move(setup));
  return master.run();
}

}  // namespace iotsocket::master
