// The master's loop. Signals arrive through a signalfd (the handlers only record, the loop
// acts); listeners, worker channels and the signalfd share one epoll set.
//
//   accept -> caps (max_connections, per source IP) -> least-loaded Ready worker -> SCM_RIGHTS
//   SIGCHLD -> reap, release the dead worker's devices in the registry, respawn
//   SIGTERM / SIGINT -> stop accepting; workers close their connections over the drain
//                       period, say drained, get finish (nothing follows it), exit; then exit
//   SIGHUP -> reload (config/reload.hpp; README "Reloading"); SIGUSR1 -> reopen log.file
//   push FIFO -> PushRouter -> the holding worker's channel, or the offline queue
//   metrics.listen -> MetricsServer (its own epoll set, one descriptor here)
#include "master/master.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <deque>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "common/channel.hpp"
#include "common/counted.hpp"
#include "common/event_sink.hpp"
#include "common/log.hpp"
#include "common/tls.hpp"
#include "common/net.hpp"
#include "common/registry.hpp"
#include "config/host_port.hpp"
#include "master/in_flight.hpp"
#include "master/metrics_server.hpp"
#include "master/metrics_snapshot.hpp"
#include "master/metrics_text.hpp"
#include "config/reload.hpp"
#include "master/offline_queue.hpp"
#include "master/push_fifo.hpp"
#include "master/push_router.hpp"
#include "master/service_notify.hpp"
#include "protocol/time.hpp"
#include "shm/device_table.hpp"
#include "shm/worker_totals.hpp"
#include "worker/worker.hpp"

namespace iotsocket::master {
namespace {

using std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kAcceptBatch = 64;
constexpr auto kAcceptPauseOnFdShortage = 100ms;
constexpr auto kRespawnDelayAfterCrashLoop = 1s;
// Beyond the drain period, for the workers to place what they hold and exit.
constexpr auto kShutdownGrace = 30s;
constexpr auto kStopNowGrace = 5s;
// Accepted sockets waiting for room in a worker's channel (a burst of thousands of
// connects); accepting pauses while this many wait, and the kernel's backlog holds the rest.
constexpr std::size_t kMaxParked = 1024;
constexpr auto kParkedRetry = 1ms;

constexpr std::uint64_t kSignalTag = 1ULL << 62;
constexpr std::uint64_t kListenerTag = 1ULL << 61;
constexpr std::uint64_t kWorkerTag = 1ULL << 60;
constexpr std::uint64_t kPushFifoTag = 1ULL << 59;
constexpr std::uint64_t kMetricsTag = 1ULL << 58;

// Bytes of the push FIFO read per loop pass: the loop stays fair to accept and the workers.
constexpr std::size_t kPushReadBudget = 1 << 20;
// Pushes waiting for room in the workers' channels. Beyond this the master stops reading
// the push FIFO, so that the backend's writes block instead of anything being dropped.
constexpr std::size_t kMaxOutboxBytes = 32 << 20;
constexpr auto kOfflineExpiryInterval = 60s;

// A message for a worker whose channel was full, with the payload it carries.
struct Outgoing {
  channel::Message message;
  std::string payload;
};
// What one waiting message costs in memory: with small pushes the bookkeeping, not the
// payload, is most of it.
std::size_t queued_size(const std::string& payload) {
  return sizeof(Outgoing) + payload.capacity() + 16;
}
// finishing: it has closed every connection while stopping and was sent `finish`; nothing
// more goes to it (pushes for its devices go to the offline queue).
enum class WorkerState { starting, ready, finishing, exited };

struct WorkerSlot {
  pid_t pid = 0;
  Fd channel;
  WorkerState state = WorkerState::exited;
  std::uint32_t generation = 0;
  steady_clock::time_point started_at{};
  steady_clock::time_point respawn_at{};  // when exited: not before this
  std::uint32_t connections = 0;
  std::unordered_map<IpKey, std::uint32_t, IpKeyHash> per_ip;
  std::deque<Outgoing> outbox;  // in order, behind anything not yet sent
  // Every push sent to it and not yet settled (written whole, dropped, or handed back):
  // when it dies, these go back to their devices' queues.
  InFlightPushes in_flight;
  std::uint32_t reload_answers_due = 0;  // reload_tls / reload_settings not yet answered
  std::size_t outbox_bytes = 0;
  bool writable_watched = false;
};

// Refusals at accept are counted and logged once a second, not once per connection: a
// flood must not turn into a flood of log lines.
struct RefusalCounts {
  std::uint64_t max_connections = 0;
  std::uint64_t per_ip = 0;
};

class Master {
 public:
  explicit Master(MasterSetup setup)
      : config_(*setup.config), tls_(setup.tls), listeners_(std::move(setup.listeners)),
        workers_(config::effective_workers(config_)),
        events_(EventSinkOptions{.path = config_.fifo.events}) {}

  int run();

 private:
  bool start();
  bool spawn(std::size_t index);
  void on_signal();
  void on_listener(std::size_t index);
  void hand_off(Fd socket, const PeerAddress& peer);
  bool send_to_worker(Fd& socket, const PeerAddress& peer);
  void hand_off_parked();
  WorkerSlot* least_loaded(const std::vector<const WorkerSlot*>& skip = {});
  // `gone`: the worker has exited; only its pushes, settles and fences still count.
  void on_worker(std::size_t index, bool gone = false);
  bool send_to(std::uint32_t index, const channel::Message& m, std::string payload);
  void send_in_order(WorkerSlot& w, const channel::Message& m, std::string_view payload = {});
  void tell_workers(channel::Cmd cmd, std::string payload = {});
  void ask_workers_to_reload(channel::Cmd cmd, std::string payload = {});
  void reload_answered(WorkerSlot& w, const std::string& failure);
  void finish_reload_when_answered();
  void flush_outbox(WorkerSlot& w);
  void watch_writable(WorkerSlot& w, bool on);
  std::size_t outbox_bytes() const;
  bool open_push_path();
  void on_push_fifo();
  void set_reading_pushes(bool on);
  bool open_metrics();
  metrics::Snapshot metrics_snapshot() const;
  void forget_connection(WorkerSlot& w, const IpKey& ip);
  void reap();
  void worker_gone(WorkerSlot& w, int status);
  void forget_settled(WorkerSlot& w, const std::string& seqs);
  void begin_shutdown();
  void stop_now();
  void reload();
  bool apply_reloadable(const config::Config& next);
  void reopen_log();
  std::string status_text() const;
  std::uint32_t ready_workers() const;
  void announce_ready_when_all_are();
  void tick(steady_clock::time_point now);
  void set_accepting(bool on);
  int timeout_ms(steady_clock::time_point now) const;

  config::Config config_;  // the running settings; a reload changes the reloadable ones
  SSL_CTX* tls_;          // what new workers inherit: main's context, or the last reload's
  SslCtx reloaded_tls_;   // owns the last reload's context
  ServiceNotify notify_;
  bool reload_pending_ = false;  // RELOADING=1 said; READY=1 when every worker has answered
  bool workers_asked_ = false;   // this reload sent them something to do
  std::vector<std::string> reload_failures_;
  bool announced_ready_ = false;
  std::vector<Listener> listeners_;
  std::vector<WorkerSlot> workers_;
  EventSink events_;  // push_queued, push_expired (the workers write the other events)
  Fd epoll_;
  Fd signals_;
  std::optional<DeviceRegistry> registry_;
  std::optional<shm::DeviceTable> table_;
  std::optional<OfflineQueue> offline_;
  std::optional<PushFifo> push_fifo_;
  std::optional<PushRouter> router_;
  bool reading_pushes_ = false;
  protocol::Time replay_floor_{};
  steady_clock::time_point next_expiry_{};

  std::unordered_map<IpKey, std::uint32_t, IpKeyHash> per_ip_;
  std::uint32_t connections_ = 0;
  bool accepting_ = false;  // until a worker is ready
  steady_clock::time_point accept_resume_at_{};
  bool fd_shortage_logged_ = false;
  RefusalCounts refused_;
  RefusalCounts refused_before_;  // the sum of every earlier second's refused_ (metrics)
  std::uint64_t worker_restarts_ = 0;
  std::optional<MetricsServer> metrics_;
  struct Parked {
    Fd socket;
    PeerAddress peer;
  };
  std::deque<Parked> parked_;
  steady_clock::time_point next_tick_{};

  bool stopping_ = false;
  steady_clock::time_point stop_deadline_{};
};

std::string exit_text(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// ---- start ----------------------------------------------------------------------------

bool Master::start() {
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
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
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    // Registered without interest: connections wait in the backlog until a worker is ready.
    epoll_event off{};
    off.data.u64 = kListenerTag | i;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listeners_[i].fd.get(), &off);
    spdlog::info("listening on {}", listeners_[i].name);
  }
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
                                       static_cast<std::uint32_t>(workers_.size()));
  if (!table) {
    spdlog::critical("runtime.shm_name: {}", table.error());
    return false;
  }
  table_.emplace(std::move(*table));
  if (!open_push_path() || !open_metrics()) return false;
  for (std::size_t i = 0; i < workers_.size(); ++i) {
    if (!spawn(i)) return false;
  }
  spdlog::info("started {} workers, max {} connections, {} per source address",
               workers_.size(), config_.limits.max_connections, config_.limits.per_ip);
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
  push_fifo_.emplace(std::move(*fifo));
  router_.emplace(config_, *table_, *offline_, *registry_, events_,
                  [this](std::uint32_t worker, const channel::Message& m, std::string payload) {
                    return send_to(worker, m, std::move(payload));
                  });
  epoll_event ev{};
  ev.data.u64 = kPushFifoTag;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, push_fifo_->fd(), &ev);
  set_reading_pushes(true);
  return true;
}

void Master::set_reading_pushes(bool on) {
  if (reading_pushes_ == on || !push_fifo_) return;
  epoll_event ev{};
  ev.events = on ? std::uint32_t{EPOLLIN} : 0u;
  ev.data.u64 = kPushFifoTag;
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, push_fifo_->fd(), &ev) == 0) reading_pushes_ = on;
}

void Master::on_push_fifo() {
  const bool ok = push_fifo_->read_available(
      kPushReadBudget,
      [this](protocol::Record record) { router_->route(record.device, std::move(record.payload)); },
      [this](std::string_view reason, std::string_view line) {
        spdlog::warn("bad push record skipped: reason={} line='{}'", reason, line);
      });
  if (!ok) spdlog::error("reading {} failed: {}", push_fifo_->path(), std::strerror(errno));
  if (outbox_bytes() > kMaxOutboxBytes) set_reading_pushes(false);
}

// ---- metrics ------------------------------------------------------------------------

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

metrics::Snapshot Master::metrics_snapshot() const {
  const PushRouter::Counts& pushes = router_->counts();
  return metrics::Snapshot{
      .workers = shm::sum_workers(*table_),
      .master = {.pushes_routed = pushes.routed,
                 .pushes_queued = pushes.queued,
                 .pushes_refused = pushes.refused,
                 .pushes_expired = pushes.expired,
                 .pushes_evicted = pushes.evicted,
                 .offline_queued = offline_->total(),
                 .refused_max_connections = refused_before_.max_connections + refused_.max_connections,
                 .refused_per_ip = refused_before_.per_ip + refused_.per_ip,
                 .worker_restarts = worker_restarts_,
                 .workers = static_cast<std::uint32_t>(workers_.size()),
                 .workers_ready = ready_workers(),
                 .certificate_not_after = metrics::certificate_not_after(tls_)}};
}

// ---- messages to workers --------------------------------------------------------------

bool Master::send_to(std::uint32_t index, const channel::Message& m, std::string payload) {
  if (index >= workers_.size()) return false;
  WorkerSlot& w = workers_[index];
  if (w.state == WorkerState::exited || w.state == WorkerState::finishing || !w.channel) return false;
  if (m.cmd != channel::Cmd::push) {
    send_in_order(w, m, payload);
    return true;
  }
  // The copy the master keeps is the one sent (a second copy only while it waits in the
  // outbox of a full channel).
  const auto [message, kept] = w.in_flight.add(m, std::move(payload));
  send_in_order(w, message, kept);
  return true;
}

// Sends now, or queues behind what waits in the worker's outbox (a full channel).
void Master::send_in_order(WorkerSlot& w, const channel::Message& m, std::string_view payload) {
  events_.flush();  // our events (push_queued) before the worker's answer (push_delivered)
  channel::Message message = m;
  message.generation = w.generation;
  if (w.outbox.empty()) {
    const Io io = channel::send(w.channel.get(), message, payload);
    if (io == Io::ok) return;
    if (io != Io::want_write) {
      // The worker is going; SIGCHLD follows, and worker_gone() requeues its pushes.
      spdlog::warn("sendmsg() to worker {} failed: {}", &w - workers_.data(), std::strerror(errno));
      return;
    }
  }
  w.outbox.push_back(Outgoing{message, std::string(payload)});
  w.outbox_bytes += queued_size(w.outbox.back().payload);
  watch_writable(w, true);
}

void Master::tell_workers(channel::Cmd cmd, std::string payload) {
  for (std::uint32_t i = 0; i < workers_.size(); ++i) {
    send_to(i, channel::Message{.cmd = cmd}, payload);
  }
}

void Master::ask_workers_to_reload(channel::Cmd cmd, std::string payload) {
  for (std::uint32_t i = 0; i < workers_.size(); ++i) {
    if (send_to(i, channel::Message{.cmd = cmd}, payload)) {
      ++workers_[i].reload_answers_due;
      workers_asked_ = true;
    }
  }
}

void Master::flush_outbox(WorkerSlot& w) {
  while (!w.outbox.empty()) {
    Outgoing& o = w.outbox.front();
    const Io io = channel::send(w.channel.get(), o.message, o.payload);
    if (io == Io::want_write) return;
    if (io != Io::ok) return;  // the worker is going; worker_gone() requeues the rest
    w.outbox_bytes -= queued_size(o.payload);
    w.outbox.pop_front();
  }
  watch_writable(w, false);
}

void Master::watch_writable(WorkerSlot& w, bool on) {
  if (w.writable_watched == on || !w.channel) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (on ? std::uint32_t{EPOLLOUT} : 0u);
  ev.data.u64 = kWorkerTag | static_cast<std::uint64_t>(&w - workers_.data());
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, w.channel.get(), &ev) == 0) w.writable_watched = on;
}

std::size_t Master::outbox_bytes() const {
  std::size_t total = 0;
  for (const auto& w : workers_) total += w.outbox_bytes;
  return total;
}

bool Master::spawn(std::size_t index) {
  WorkerSlot& w = workers_[index];
  Fd master_end, worker_end;
  if (!channel::make_pair(master_end, worker_end)) {
    spdlog::error("socketpair for worker {} failed: {}", index, std::strerror(errno));
    return false;
  }
  ++w.generation;
  pid_t pid = ::fork();
  if (pid < 0) {
    spdlog::error("fork of worker {} failed: {}", index, std::strerror(errno));
    return false;
  }
  if (pid == 0) {
    // Only the master speaks to systemd.
    for (const char* name : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"}) ::unsetenv(name);
    // The child keeps only its own channel end: no listeners, no other channels.
    for (auto& l : listeners_) l.fd.reset();
    for (auto& other : workers_) other.channel.reset();
    master_end.reset();
    signals_.reset();
    epoll_.reset();
    router_.reset();
    push_fifo_.reset();
    metrics_.reset();
    offline_.reset();
    registry_.reset();
    events_ = EventSink{};  // the worker opens its own
    log::init("worker " + std::to_string(index),
              log::parse_level(config_.log.level).value_or(spdlog::level::info), log::file());
    int code = worker::run(worker::WorkerSetup{.config = &config_,
                                               .tls = tls_,
                                               .table = &*table_,
                                               .channel = std::move(worker_end),
                                               .index = static_cast<unsigned>(index),
                                               .replay_floor = replay_floor_,
                                               .generation = w.generation});
    spdlog::default_logger()->flush();
    ::_exit(code);
  }
  w.pid = pid;
  w.channel = std::move(master_end);
  w.state = WorkerState::starting;
  w.started_at = steady_clock::now();
  w.connections = 0;
  w.per_ip.clear();
  w.writable_watched = false;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWorkerTag | index;
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, w.channel.get(), &ev);
  spdlog::info("worker {} started, pid {}", index, pid);
  return true;
}

// ---- accept ---------------------------------------------------------------------------

void Master::on_listener(std::size_t index) {
  for (int i = 0; i < kAcceptBatch && accepting_; ++i) {
    PeerAddress peer;
    peer.length = sizeof peer.storage;
    int fd = ::accept4(listeners_[index].fd.get(), reinterpret_cast<sockaddr*>(&peer.storage),
                       &peer.length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      fd_shortage_logged_ = false;
      hand_off(Fd(fd), peer);
      continue;
    }
    if (errno == EAGAIN || errno == EINTR) return;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      // The pending connection stays in the backlog; accepting again at once would spin.
      if (!fd_shortage_logged_) {
        spdlog::warn("accept() on {} failed: {}; pausing accept for {} ms", listeners_[index].name,
                     std::strerror(errno), kAcceptPauseOnFdShortage.count());
        fd_shortage_logged_ = true;
      }
      set_accepting(false);
      accept_resume_at_ = steady_clock::now() + kAcceptPauseOnFdShortage;
      return;
    }
    // ECONNABORTED and the network errors accept(2) passes on: that connection only.
  }
}

void Master::set_accepting(bool on) {
  if (accepting_ == on) return;
  accepting_ = on;
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    epoll_event ev{};
    ev.events = on ? std::uint32_t{EPOLLIN} : 0u;
    ev.data.u64 = kListenerTag | i;
    ::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, listeners_[i].fd.get(), &ev);
  }
}

void Master::hand_off(Fd socket, const PeerAddress& peer) {
  // The caps come before any TLS work: a refused connection costs one accept and one close.
  if (connections_ >= config_.limits.max_connections) {
    ++refused_.max_connections;
    return;
  }
  const IpKey ip = ip_key_of(peer);
  if (config_.limits.per_ip != 0) {
    auto it = per_ip_.find(ip);
    if (it != per_ip_.end() && it->second >= config_.limits.per_ip) {
      ++refused_.per_ip;
      return;
    }
  }
  // Counted from here on, parked or not, so that a burst cannot pass the caps.
  ++connections_;
  ++per_ip_[ip];
  if (!parked_.empty() || !send_to_worker(socket, peer)) {
    // Every channel is full (or others wait already, and order is kept): park it.
    parked_.push_back(Parked{std::move(socket), peer});
    if (parked_.size() >= kMaxParked) set_accepting(false);
  }
}

// Sends the socket to the least-loaded ready worker whose channel has room. False when
// none has; the socket stays with the caller.
bool Master::send_to_worker(Fd& socket, const PeerAddress& peer) {
  std::vector<const WorkerSlot*> full;
  for (WorkerSlot* w = least_loaded(full); w != nullptr; w = least_loaded(full)) {
    channel::Message m{.cmd = channel::Cmd::new_connection, .generation = w->generation, .peer = peer};
    const Io io = channel::send(w->channel.get(), m, socket.get());
    if (io == Io::ok) {
      ++w->connections;
      ++w->per_ip[ip_key_of(peer)];
      socket.reset();  // the worker holds its own copy
      return true;
    }
    if (io != Io::want_write) {
      spdlog::warn("sendmsg() to worker pid {} failed: {}", w->pid, std::strerror(errno));
    }
    full.push_back(w);
  }
  return false;
}

void Master::hand_off_parked() {
  while (!parked_.empty()) {
    if (least_loaded() == nullptr) return;
    Parked& p = parked_.front();
    if (!send_to_worker(p.socket, p.peer)) return;
    parked_.pop_front();
  }
}

WorkerSlot* Master::least_loaded(const std::vector<const WorkerSlot*>& skip) {
  WorkerSlot* best = nullptr;
  for (auto& w : workers_) {
    if (w.state != WorkerState::ready) continue;
    if (std::find(skip.begin(), skip.end(), &w) != skip.end()) continue;
    if (best == nullptr || w.connections < best->connections) best = &w;
  }
  return best;
}

// ---- workers --------------------------------------------------------------------------

void Master::forget_connection(WorkerSlot& w, const IpKey& ip) {
  auto drop = [&ip](std::unordered_map<IpKey, std::uint32_t, IpKeyHash>& map) {
    auto it = map.find(ip);
    if (it == map.end()) return;
    if (--it->second == 0) map.erase(it);
  };
  if (w.connections > 0) {
    --w.connections;
    --connections_;
  }
  drop(w.per_ip);
  drop(per_ip_);
}

void Master::on_worker(std::size_t index, bool gone) {
  WorkerSlot& w = workers_[index];
  for (;;) {
    channel::Received r = channel::receive(w.channel.get());
    if (r.io == Io::want_read) return;
    if (r.io != Io::ok) {
      // EOF: the worker is exiting; SIGCHLD follows and does the bookkeeping.
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, w.channel.get(), nullptr);
      return;
    }
    if (r.message.generation != w.generation) continue;  // from a worker we no longer run
    // From a worker that has exited, what it says about its own state no longer counts;
    // what it handed back, settled or fenced still does.
    const bool about_itself = r.message.cmd == channel::Cmd::ready ||
                              r.message.cmd == channel::Cmd::drained ||
                              r.message.cmd == channel::Cmd::reloaded;
    if (gone && about_itself) continue;
    switch (r.message.cmd) {
      case channel::Cmd::ready:
        w.state = WorkerState::ready;
        spdlog::info("worker {} ready", index);
        announce_ready_when_all_are();
        tick(steady_clock::now());
        break;
      case channel::Cmd::connection_closed:
        forget_connection(w, ip_key_of(r.message.peer));
        break;
      case channel::Cmd::device_online:
        router_->device_online(static_cast<std::uint32_t>(index), r.message);
        break;
      case channel::Cmd::push_returned:
        w.in_flight.settle(r.message.seq);
        router_->returned(static_cast<std::uint32_t>(index), r.message, std::move(r.payload));
        break;
      case channel::Cmd::pushes_settled:
        forget_settled(w, r.payload);
        break;
      case channel::Cmd::reloaded:
        reload_answered(w, r.payload);
        break;
      case channel::Cmd::fence:
        router_->fence_passed(static_cast<std::uint32_t>(index), r.message);
        break;
      case channel::Cmd::drained:
        // `finish` goes behind everything already on its way: the worker reads (and hands
        // back) every push sent before it, then exits.
        w.state = WorkerState::finishing;
        send_in_order(w, channel::Message{.cmd = channel::Cmd::finish});
        spdlog::info("worker {} drained", index);
        break;
      default:
        spdlog::warn("worker {} sent an unexpected command {}", index,
                     static_cast<int>(r.message.cmd));
    }
  }
}

void Master::forget_settled(WorkerSlot& w, const std::string& payload) {
  const auto seqs = channel::decode_settled(payload);
  if (!seqs) {
    spdlog::warn("worker {} sent pushes_settled of {} bytes; ignored", &w - workers_.data(),
                 payload.size());
    return;
  }
  for (std::uint64_t seq : *seqs) w.in_flight.settle(seq);
}

void Master::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    for (auto& w : workers_) {
      if (w.pid == pid && w.state != WorkerState::exited) worker_gone(w, status);
    }
  }
}

void Master::worker_gone(WorkerSlot& w, int status) {
  const auto index = static_cast<std::size_t>(&w - workers_.data());
  // SIGCHLD may come before its last messages are read: pushes it handed back or settled.
  if (w.channel) on_worker(index, true);
  const bool expected = stopping_ && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (expected) {
    spdlog::info("worker {} (pid {}) exited", index, w.pid);
  } else {
    spdlog::error("worker {} (pid {}) died: {}; {} connections lost", index, w.pid,
                  exit_text(status), w.connections);
  }
  for (const auto& [ip, count] : w.per_ip) {
    auto it = per_ip_.find(ip);
    if (it != per_ip_.end() && (it->second -= std::min(it->second, count)) == 0) per_ip_.erase(it);
  }
  connections_ -= std::min(connections_, w.connections);
  w.connections = 0;
  w.per_ip.clear();
  w.state = WorkerState::exited;
  w.channel.reset();  // after on_worker() above read what it had sent
  w.reload_answers_due = 0;  // a respawned worker starts with the settings of now
  finish_reload_when_answered();
  w.writable_watched = false;
  // Its devices are free to log in elsewhere at once. Their replay marks in the table are
  // current: a worker raises the mark before the frame goes anywhere, so a frame it died
  // before marking reached no backend either.
  const std::size_t freed =
      table_->release_worker(static_cast<std::uint32_t>(index), protocol::Time{});
  if (freed > 0) spdlog::info("worker {}: {} devices released from the device table", index, freed);
  // Pushes it had not written whole (never received, or still in its memory) go back to
  // their devices' queues, oldest first.
  if (w.in_flight.unsettled() > 0) {
    spdlog::info("worker {}: {} pushes the worker had not written go back to their devices' "
                 "queues", index, w.in_flight.unsettled());
    router_->requeue(w.in_flight.take_all());
  }
  router_->worker_gone(static_cast<std::uint32_t>(index));  // it will echo no fence
  w.outbox.clear();
  w.outbox_bytes = 0;
  table_->counters(static_cast<std::uint32_t>(index)).clear_gauges();  // before the respawn
  if (stopping_) return;
  ++worker_restarts_;
  const bool crash_loop = steady_clock::now() - w.started_at < kRespawnDelayAfterCrashLoop;
  w.respawn_at = crash_loop ? steady_clock::now() + kRespawnDelayAfterCrashLoop : steady_clock::now();
}

// ---- signals and time -----------------------------------------------------------------

void Master::on_signal() {
  signalfd_siginfo info;
  while (::read(signals_.get(), &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
    switch (info.ssi_signo) {
      case SIGCHLD:
        reap();
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
        reload();
        break;
      case SIGUSR1:
        reopen_log();
        break;
      default:
        break;
    }
  }
}

// ---- SIGHUP -------------------------------------------------------------------------
//
// nginx-style: the new config, certificate and registry are built and checked in full
// first; any failure is logged and the running settings all stay. Then the master applies
// the reloadable settings (config/reload.hpp) and tells the workers, who read the file
// again for theirs and load the certificate for new handshakes; connected devices keep
// their connections. Restart-only settings that changed are named in the log.

void Master::reload() {
  if (stopping_) {
    spdlog::info("SIGHUP while stopping: ignored");
    return;
  }
  spdlog::info("SIGHUP: reloading {}", config_.path);
  // RELOADING=1 now; READY=1 when every worker has answered, or at once when the reload
  // is refused (the service is as it was). Nothing before the first READY=1.
  if (announced_ready_) notify_.reloading();
  reload_pending_ = true;
  struct AnswersAwaited {
    Master& master;
    ~AnswersAwaited() { master.finish_reload_when_answered(); }
  } awaited{*this};
  auto loaded = config::load_file(config_.path);
  if (!loaded) {
    for (const auto& error : loaded.error()) {
      spdlog::error("reload refused, the running settings stay: {}", error.to_string());
    }
    return;
  }
  const config::Config& next = *loaded;
  const bool new_tls = config_.tls.enabled && next.tls.enabled;
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
  if (!new_tls) return;
  for (const std::string& warning : certificate_warnings(made_tls.get(), next.tls.cert, next.tls.key)) {
    spdlog::warn("tls: {}", warning);
  }
  // The running ticket keys go on, so that devices resume their sessions on any worker.
  if (!copy_ticket_keys(tls_, made_tls.get())) spdlog::warn("reload: cannot carry the session-ticket keys over");
  reloaded_tls_ = std::move(made_tls);
  tls_ = reloaded_tls_.get();  // for workers forked from now on
  ask_workers_to_reload(channel::Cmd::reload_tls,
                        channel::encode_tls_files({.cert = next.tls.cert, .key = next.tls.key}));
  spdlog::info("reload: certificate {} for new connections", next.tls.cert);
}

// False (and nothing changed) when the new registry cannot be opened.
bool Master::apply_reloadable(const config::Config& next) {
  std::optional<DeviceRegistry> registry;
  if (next.devices.sqlite != config_.devices.sqlite) {
    auto opened = DeviceRegistry::open(next.devices.sqlite, DeviceRegistry::Mode::read_write);
    if (!opened) {
      spdlog::error("reload refused, the running settings stay: devices.sqlite: {}", opened.error());
      return false;
    }
    registry.emplace(std::move(*opened));
  }
  for (const std::string& name : config::restart_only_changes(config_, next)) {
    spdlog::warn("reload: {} changed in {}; it takes effect at the next restart", name, next.path);
  }
  const config::Config merged = config::with_reloadable(config_, next);
  const std::vector<std::string> changed = config::reloadable_changes(config_, merged);
  config_ = merged;  // in place: the router and workers forked from now on see it
  if (registry) *registry_ = std::move(*registry);
  offline_->set_bounds(config_.push.offline_max,
                       std::chrono::duration_cast<std::chrono::seconds>(config_.push.offline_max_age));
  log::set_level(log::parse_level(config_.log.level).value_or(spdlog::level::info));
  for (const std::string& name : changed) spdlog::info("reload: {} changed; in effect now", name);
  if (!changed.empty()) ask_workers_to_reload(channel::Cmd::reload_settings);
  return true;
}

void Master::reload_answered(WorkerSlot& w, const std::string& failure) {
  if (w.reload_answers_due > 0) --w.reload_answers_due;
  if (!failure.empty()) {
    reload_failures_.push_back("worker " + std::to_string(&w - workers_.data()) + ": " + failure);
  }
  finish_reload_when_answered();
}

void Master::finish_reload_when_answered() {
  if (!reload_pending_) return;
  for (const auto& w : workers_) {
    if (w.reload_answers_due > 0) return;
  }
  reload_pending_ = false;
  if (reload_failures_.empty()) {
    if (workers_asked_) spdlog::info("reload: done, every worker has taken it");
  } else {
    std::string failures;
    for (const std::string& f : reload_failures_) failures += (failures.empty() ? "" : "; ") + f;
    spdlog::error("reload: done, but {} workers kept what they had: {}", reload_failures_.size(),
                  failures);
    reload_failures_.clear();
  }
  workers_asked_ = false;
  if (announced_ready_) notify_.reloaded();
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
  tell_workers(channel::Cmd::reopen_log);
}

std::string Master::status_text() const {
  if (stopping_) return "stopping: " + counted(connections_, "connection", "connections") + " left to close";
  return counted(connections_, "connection", "connections") + ", " + std::to_string(ready_workers()) +
         " of " + counted(workers_.size(), "worker", "workers") + " ready";
}

std::uint32_t Master::ready_workers() const {
  return static_cast<std::uint32_t>(std::count_if(
      workers_.begin(), workers_.end(), [](const WorkerSlot& w) { return w.state == WorkerState::ready; }));
}

// READY=1 once, when every worker has said ready the first time (the listeners are bound
// before the workers start).
void Master::announce_ready_when_all_are() {
  if (announced_ready_ || ready_workers() < workers_.size()) return;
  announced_ready_ = true;
  notify_.ready(status_text());
}

void Master::begin_shutdown() {
  notify_.stopping();
  stopping_ = true;
  stop_deadline_ = steady_clock::now() + config_.shutdown.drain + kShutdownGrace;
  set_accepting(false);
  listeners_.clear();  // new connections are refused by the kernel from now on
  spdlog::info("draining {} connections over {} ms (shutdown.drain)", connections_,
               config_.shutdown.drain.count());
  tell_workers(channel::Cmd::shutdown);
}

// A second SIGTERM/SIGINT: no more waiting. Workers close what is left at once and still
// place every inbound record and hand back every unsent push before they exit.
void Master::stop_now() {
  spdlog::warn("second stop signal: closing every connection now");
  tell_workers(channel::Cmd::stop_now);
  stop_deadline_ = std::min(stop_deadline_, steady_clock::now() + kStopNowGrace);
}

void Master::tick(steady_clock::time_point now) {
  notify_.watchdog(now);
  if (metrics_) metrics_->expire(now);
  events_.flush();
  hand_off_parked();
  if (!reading_pushes_ && outbox_bytes() <= kMaxOutboxBytes / 2) set_reading_pushes(true);
  if (now >= next_expiry_) {
    next_expiry_ = now + kOfflineExpiryInterval;
    router_->expire(std::chrono::system_clock::now());
  }
  if (!stopping_ && !accepting_ && now >= accept_resume_at_ && least_loaded() != nullptr &&
      parked_.size() < kMaxParked) {
    set_accepting(true);
  }
  if (!stopping_) {
    for (std::size_t i = 0; i < workers_.size(); ++i) {
      if (workers_[i].state == WorkerState::exited && now >= workers_[i].respawn_at) spawn(i);
    }
  }
  if (now >= next_tick_) {
    next_tick_ = now + 1s;
    if (announced_ready_) notify_.status(status_text());
    if (refused_.max_connections + refused_.per_ip > 0) {
      spdlog::warn("refused at accept in the last second: {} over max_connections, {} over "
                   "the per-address cap",
                   refused_.max_connections, refused_.per_ip);
      refused_before_.max_connections += refused_.max_connections;
      refused_before_.per_ip += refused_.per_ip;
      refused_ = {};
    }
  }
}

int Master::timeout_ms(steady_clock::time_point now) const {
  auto until = std::min(next_tick_, notify_.next_watchdog());
  if (!parked_.empty()) until = std::min(until, now + kParkedRetry);
  if (const auto retry = events_.retry_in()) until = std::min(until, now + *retry);
  if (!accepting_ && !stopping_) until = std::min(until, accept_resume_at_);
  if (stopping_) until = std::min(until, stop_deadline_);
  for (const auto& w : workers_) {
    if (w.state == WorkerState::exited && !stopping_) until = std::min(until, w.respawn_at);
  }
  if (until <= now) return 0;
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(until - now).count());
}

int Master::run() {
  if (!start()) return 1;
  epoll_event events[64];
  for (;;) {
    const auto now = steady_clock::now();
    if (stopping_) {
      bool all_gone = true;
      for (const auto& w : workers_) all_gone = all_gone && w.state == WorkerState::exited;
      if (all_gone) break;
      if (now >= stop_deadline_) {
        spdlog::error("workers did not stop in time; killing them");
        for (auto& w : workers_) {
          if (w.state != WorkerState::exited) ::kill(w.pid, SIGKILL);
        }
        stop_deadline_ = now + 5s;
      }
    }
    tick(now);
    int n = ::epoll_wait(epoll_.get(), events, 64, timeout_ms(steady_clock::now()));
    if (n < 0 && errno != EINTR) {
      spdlog::critical("epoll_wait failed: {}", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      const std::uint64_t tag = events[i].data.u64;
      const auto index = static_cast<std::size_t>(tag & 0xffffffff);
      if (tag == kSignalTag) {
        on_signal();
      } else if (tag & kListenerTag) {
        if (accepting_ && index < listeners_.size()) on_listener(index);
      } else if (tag & kWorkerTag) {
        if (workers_[index].channel && (events[i].events & EPOLLOUT)) flush_outbox(workers_[index]);
        if (workers_[index].channel) on_worker(index);
      } else if (tag == kPushFifoTag) {
        on_push_fifo();
      } else if (tag == kMetricsTag) {
        metrics_->on_ready(steady_clock::now());
      }
    }
  }
  events_.flush_before_exit(1s);
  table_->unlink();
  spdlog::info("stopped");
  return 0;
}

}  // namespace

int run(MasterSetup setup) {
  Master master(std::move(setup));
  return master.run();
}

}  // namespace iotsocket::master
