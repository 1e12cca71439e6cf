// The master's start: the signals, the device state, the push path, the metrics endpoint,
// and the fork of each worker (what the child keeps, and what it runs).
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include <spdlog/spdlog.h>

#include "common/log.hpp"
#include "config/host_port.hpp"
#include "master/master_process.hpp"
#include "master/metrics_snapshot.hpp"
#include "master/push_fifo.hpp"
#include "worker/worker.hpp"

namespace iotsocket::master {

bool Master::start() {
  if (!open_signals()) return false;
  if (!open_device_state()) return false;
  acceptor_.emplace(std::move(listeners_), epoll_.get(), kListenerTag, pool_, config_, *table_);
  if (!open_push_path() || !open_metrics()) return false;
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
  auto render = [this, families = std::make_shared<metrics::Families>()] {
    return families->render(metrics_snapshot());
  };
  auto server = MetricsServer::open(*config::parse_host_port(config_.metrics.listen), render);
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

}  // namespace iotsocket::master
