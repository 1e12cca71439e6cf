// The worker's event loop. One pass of the loop:
//   1. wait on epoll (timeout = the earliest connection deadline, or the sink's retry);
//   2. act on the channel (new sockets, pushes, shutdown) and on connections (handshake,
//      frames, pushes to write);
//   3. close connections whose deadline passed, that are no longer theirs to keep, or
//      whose turn in a drain came;
//   4. flush the inbound sink once for the whole pass (one lock, one write), then resume
//      connections that were paused for want of room; report the pushes written.
// No exceptions on this path: a connection that breaks a rule is closed with a reason
// code and one log line; everything else keeps running.
#include "worker/worker.hpp"

#include <malloc.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "protocol/limits.hpp"
#include "worker/inbound_sink.hpp"
#include "worker/worker_loop.hpp"

namespace iotsocket::worker {
namespace {

constexpr int kMaxEvents = 256;
// Each TLS handshake allocates and frees tens of KiB between long-lived connection state,
// and glibc keeps the freed holes resident; so do closed connections. After a burst of
// handshakes or closes, malloc_trim() gives them back (measured: 10,000 idle connections,
// 45 KiB -> 20 KiB RSS each; after a flood closes, tests/faults/memory_test.cpp).
constexpr std::uint32_t kTrimAfterChurn = 1000;
constexpr auto kTrimInterval = std::chrono::seconds(10);

using std::chrono::steady_clock;

}  // namespace

protocol::SessionLimits session_limits(const config::Config& config) {
  return {.time_tolerance = std::chrono::duration_cast<protocol::Tick>(config.protocol.time_tolerance),
          .flood_frames = config.protocol.flood_frames,
          .flood_window = std::chrono::duration_cast<protocol::Tick>(config.protocol.flood_window)};
}

Worker::Worker(WorkerSetup setup, DeviceRegistry registry, std::unique_ptr<Inbound> inbound, Fd epoll)
    : config_(*setup.config),
      tls_(setup.tls),
      directory_(*setup.table),
      counters_(setup.table->counters(setup.index)),
      index_(setup.index),
      registry_(std::move(registry)),
      inbound_(std::move(inbound)),
      epoll_(std::move(epoll)),
      limits_(session_limits(config_)),
      events_(EventSinkOptions{.path = config_.fifo.events}),
      master_(std::move(setup.channel), setup.generation, events_),
      connections_(epoll_.get()),
      deadlines_(config_.timeouts),
      pushes_(connections_, settled_, master_, events_, counters_, config_.push, limits_),
      login_(registry_, directory_, config_.devices, limits_, setup.index, setup.replay_floor),
      back_pressure_(counters_) {}

int Worker::run() noexcept {
  if (!start()) return 1;
  epoll_event events[kMaxEvents];
  while (!stopping_) {
    const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, wait_timeout(steady_clock::now()));
    if (n < 0 && errno != EINTR) {
      spdlog::critical("epoll_wait failed: {}", std::strerror(errno));
      return 1;
    }
    // An interrupted wait (a stopped and continued process) saw nothing: it proves no one empty.
    arrivals_.pass_began(n >= 0 && n < kMaxEvents, wall_now());
    handshakes_.pass_began();
    for (int i = 0; i < n; ++i) on_event(events[i].data.u64, events[i].events);
    after_events(steady_clock::now());
  }
  return finish();
}

bool Worker::start() noexcept {
  if (!master_.watch(epoll_.get(), ConnectionTable::tag(ConnectionTable::kChannelSlot, 0))) {
    spdlog::critical("epoll_ctl(channel) failed: {}", std::strerror(errno));
    return false;
  }
  counters_.pid.store(::getpid(), std::memory_order_relaxed);
  frames_in_at_start_ = counters_.frames_in.load(std::memory_order_relaxed);
  seen_close_epoch_ = directory_.close_epoch();
  master_.say(channel::Cmd::ready);
  return true;
}

void Worker::on_event(std::uint64_t tag, std::uint32_t events) noexcept {
  const std::uint32_t slot = ConnectionTable::slot_of(tag);
  if (slot == ConnectionTable::kChannelSlot) {
    if (events & EPOLLOUT) master_.flush();
    on_channel();
  } else if (slot == ConnectionTable::kSinkSlot) {
    // flushed in after_events, once per pass
  } else if (Connection* c = connections_.find(tag)) {
    on_connection_event(*c, events);
  }
}

void Worker::after_events(SteadyTime now) noexcept {
  for (auto due = deadlines_.next_due(now, connections_); due.connection != nullptr;
       due = deadlines_.next_due(now, connections_)) {
    close(*due.connection, due.reason);
  }
  check_holds(now);
  drain_step(now);
  flush_inbound();
  shm::WorkerCounters::set(counters_.handshakes_deferred, handshakes_.deferred());
  settled_.report(now, master_);
  events_.flush();
  trim_memory(now);
}

// Closes what is left, reports and hands back what it must, and places every inbound
// record before the process ends.
int Worker::finish() noexcept {
  close_all("server_shutdown");
  settled_.report(steady_clock::now(), master_, true);
  master_.flush_before_exit();  // pushes handed back by the closes: to the offline queue
  events_.flush_before_exit(std::chrono::seconds(1));
  for (int tries = 0; tries < 5000 && inbound_->pending_bytes() > 0; ++tries) {
    inbound_->flush();
    if (inbound_->pending_bytes() > 0) ::usleep(1000);
  }
  if (inbound_->pending_bytes() > 0) {
    spdlog::error("{} bytes of inbound records could not be placed before exit", inbound_->pending_bytes());
    return 1;
  }
  spdlog::info("stopped: {} frames accepted, every record placed in the FIFO or the spool",
               counters_.frames_in.load(std::memory_order_relaxed) - frames_in_at_start_);
  return 0;
}

int Worker::wait_timeout(SteadyTime now) const noexcept {
  int timeout = deadlines_.timeout_ms(now);  // -1: no deadline
  const auto at_most = [&timeout](long long ms) {
    const int bounded = static_cast<int>(std::max<long long>(ms, 0));
    timeout = timeout < 0 ? bounded : std::min(timeout, bounded);
  };
  const auto until = [now](SteadyTime t) {
    return std::chrono::ceil<std::chrono::milliseconds>(t - now).count();
  };
  at_most(until(next_holder_check_));
  if (auto retry = inbound_->retry_in()) at_most(std::max<long long>(retry->count(), 1));
  // Resumed connections refilled the sink after its flush, and nothing else would wake us
  // to move those records on: come back at once.
  if (connections_.any_paused() && inbound_->pending_bytes() > 0 && !inbound_->retry_in() &&
      inbound_->writable_fd() < 0) {
    at_most(0);
  }
  if (auto retry = events_.retry_in()) at_most(retry->count());
  if (auto due = drain_.next_close()) at_most(until(*due));
  if (auto due = settled_.due()) at_most(until(*due));
  return timeout;
}

void Worker::flush_inbound() noexcept {
  inbound_->flush();
  shm::WorkerCounters::set(counters_.spool_bytes, inbound_->spooled_bytes());
  shm::WorkerCounters::set(counters_.memory_bytes, inbound_->pending_bytes());
  const int fd = inbound_->writable_fd();
  if (fd != sink_watched_fd_) {
    if (sink_watched_fd_ >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, sink_watched_fd_, nullptr);
    sink_watched_fd_ = -1;
    if (fd >= 0) {
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.u64 = ConnectionTable::tag(ConnectionTable::kSinkSlot, 0);
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0) sink_watched_fd_ = fd;
    }
  }
  // Back-pressure is a sink that could not make room in its flush, not a connection paused
  // and resumed within the pass: judged (and its cause read) before the resume.
  const bool no_room = !inbound_->has_room(protocol::kMaxBody);
  back_pressure_.update(steady_clock::now(), no_room ? connections_.paused_count() : 0, *inbound_);
  resume_paused();
}

void Worker::trim_memory(SteadyTime now) noexcept {
  if (churn_since_trim_ < kTrimAfterChurn || now - last_trim_ < kTrimInterval) return;
  ::malloc_trim(0);
  churn_since_trim_ = 0;
  last_trim_ = now;
}

int run(WorkerSetup setup) noexcept {
  const config::Config& config = *setup.config;
  auto registry = DeviceRegistry::open(config.devices.sqlite, DeviceRegistry::Mode::read_write);
  if (!registry) {
    spdlog::critical("cannot open the device registry: {}", registry.error());
    return 1;
  }
  auto sink = InboundSink::open(InboundOptions{.fifo_path = config.fifo.inbound,
                                               .spool_dir = config.spool.dir,
                                               .memory_limit = config.spool.memory,
                                               .spool_limit = config.spool.max_size});
  if (!sink) {
    spdlog::critical("cannot open the inbound sink: {}", sink.error());
    return 1;
  }
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) {
    spdlog::critical("epoll_create1 failed: {}", std::strerror(errno));
    return 1;
  }
  Worker worker(std::move(setup), std::move(*registry),
                std::make_unique<InboundSink>(std::move(*sink)), std::move(epoll));
  return worker.run();
}

}  // namespace iotsocket::worker
