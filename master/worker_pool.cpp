#include "master/worker_pool.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/wait.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace iotsocket::master {
namespace {

std::string exit_text(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

}  // namespace

WorkerPool::WorkerPool(std::size_t count, int epoll, std::uint64_t tag, EventSink& events,
                       Spawn spawn)
    : workers_(count), epoll_(epoll), tag_(tag), events_(events), spawn_(std::move(spawn)) {}

bool WorkerPool::spawn(std::uint32_t worker) {
  WorkerProcess& w = workers_[worker];
  Fd master_end, worker_end;
  if (!channel::make_pair(master_end, worker_end)) {
    spdlog::error("socketpair for worker {} failed: {}", worker, std::strerror(errno));
    return false;
  }
  ++w.generation;
  // Held before the fork, so that the child closes it with the others (close_in_child()):
  // a worker holding the master's end would never see the master go.
  w.channel = channel::End(std::move(master_end));
  const pid_t pid = spawn_(worker, w.generation, std::move(worker_end));
  if (pid < 0) {
    spdlog::error("fork of worker {} failed: {}", worker, std::strerror(errno));
    w.channel.reset();
    return false;
  }
  w.pid = pid;
  w.channel.watch(epoll_, tag_ | worker);
  w.state = WorkerState::starting;
  w.started_at = Clock::now();
  w.connections = 0;
  w.per_ip.clear();
  spdlog::info("worker {} started, pid {}", worker, pid);
  return true;
}

void WorkerPool::respawn_due(Clock::time_point now) {
  if (stopping_) return;
  for (std::uint32_t i = 0; i < workers_.size(); ++i) {
    if (workers_[i].state == WorkerState::exited && now >= workers_[i].respawn_at) spawn(i);
  }
}

std::optional<WorkerPool::Clock::time_point> WorkerPool::next_respawn() const {
  std::optional<Clock::time_point> next;
  if (stopping_) return next;
  for (const auto& w : workers_) {
    if (w.state == WorkerState::exited && (!next || w.respawn_at < *next)) next = w.respawn_at;
  }
  return next;
}

// ---- what the workers say -------------------------------------------------------------

void WorkerPool::on_channel(std::uint32_t worker, std::uint32_t epoll_events, WorkerEvents& to) {
  WorkerProcess& w = workers_[worker];
  // A failed flush: the worker is going; SIGCHLD follows, and its pushes are requeued.
  if (w.channel && (epoll_events & EPOLLOUT)) (void)w.channel.flush();
  if (w.channel) read_channel(worker, false, to);
}

// `gone`: the worker has exited; only its pushes, settles and fences still count.
void WorkerPool::read_channel(std::uint32_t worker, bool gone, WorkerEvents& to) {
  WorkerProcess& w = workers_[worker];
  for (;;) {
    channel::Received r = w.channel.receive();
    if (r.io == Io::want_read) return;
    if (r.io != Io::ok) {
      // EOF: the worker is exiting; SIGCHLD follows and does the bookkeeping.
      w.channel.unwatch();
      return;
    }
    if (r.message.generation != w.generation) continue;  // from a worker we no longer run
    // From a worker that has exited, what it says about its own state no longer counts;
    // what it handed back, settled or fenced still does.
    const bool about_itself = r.message.cmd == channel::Cmd::ready ||
                              r.message.cmd == channel::Cmd::drained ||
                              r.message.cmd == channel::Cmd::reloaded;
    if (gone && about_itself) continue;
    pass_on(worker, r, to);
  }
}

void WorkerPool::pass_on(std::uint32_t worker, channel::Received& r, WorkerEvents& to) {
  WorkerProcess& w = workers_[worker];
  switch (r.message.cmd) {
    case channel::Cmd::ready:
      w.state = WorkerState::ready;
      spdlog::info("worker {} ready", worker);
      to.ready(worker);
      break;
    case channel::Cmd::connection_closed: {
      const IpKey ip = ip_key_of(r.message.peer);
      const bool counted = forget_connection(w, ip);
      to.connection_closed(worker, ip, counted);
      break;
    }
    case channel::Cmd::device_online:
      to.device_online(worker, r.message);
      break;
    case channel::Cmd::push_returned:
      to.push_returned(worker, r.message, std::move(r.payload));
      break;
    case channel::Cmd::pushes_settled:
      if (const auto seqs = channel::decode_settled(r.payload)) {
        to.pushes_settled(worker, *seqs);
      } else {
        spdlog::warn("worker {} sent pushes_settled of {} bytes; ignored", worker, r.payload.size());
      }
      break;
    case channel::Cmd::reloaded:
      to.reloaded(worker, r.payload);
      break;
    case channel::Cmd::fence:
      to.fence_passed(worker, r.message);
      break;
    case channel::Cmd::drained:
      // `finish` goes behind everything already on its way: the worker reads (and hands
      // back) every push sent before it, then exits.
      w.state = WorkerState::finishing;
      send_in_order(w, channel::Message{.cmd = channel::Cmd::finish});
      spdlog::info("worker {} drained", worker);
      break;
    default:
      spdlog::warn("worker {} sent an unexpected command {}", worker, static_cast<int>(r.message.cmd));
  }
}

bool WorkerPool::forget_connection(WorkerProcess& w, const IpKey& ip) {
  const auto it = w.per_ip.find(ip);
  if (it != w.per_ip.end() && --it->second == 0) w.per_ip.erase(it);
  if (w.connections == 0) return false;
  --w.connections;
  return true;
}

// ---- exits ----------------------------------------------------------------------------

void WorkerPool::reap(WorkerEvents& to) {
  for (;;) {
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) return;
    exited(pid, status, to);
  }
}

void WorkerPool::exited(pid_t pid, int status, WorkerEvents& to) {
  for (std::uint32_t i = 0; i < workers_.size(); ++i) {
    WorkerProcess& w = workers_[i];
    if (w.pid != pid || w.state == WorkerState::exited) continue;
    // SIGCHLD may come before its last messages are read: pushes it handed back or settled.
    if (w.channel) read_channel(i, true, to);
    log_exit(i, w, status);
    w.state = WorkerState::exited;
    to.gone(i, w, status);
    w.channel.reset();  // after its last messages were read, and what waited is requeued
    w.connections = 0;
    w.per_ip.clear();
    if (stopping_) continue;
    ++restarts_;
    const auto now = Clock::now();
    const bool crash_loop = now - w.started_at < kRespawnDelayAfterCrashLoop;
    w.respawn_at = crash_loop ? now + kRespawnDelayAfterCrashLoop : now;
  }
}

void WorkerPool::log_exit(std::uint32_t worker, const WorkerProcess& w, int status) const {
  const bool expected = stopping_ && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (expected) {
    spdlog::info("worker {} (pid {}) exited", worker, w.pid);
  } else {
    spdlog::error("worker {} (pid {}) died: {}; {} connections lost", worker, w.pid,
                  exit_text(status), w.connections);
  }
}

// ---- messages to workers --------------------------------------------------------------

bool WorkerPool::accepts(std::uint32_t worker) const {
  if (worker >= workers_.size()) return false;
  const WorkerProcess& w = workers_[worker];
  return w.state != WorkerState::exited && w.state != WorkerState::finishing && w.channel;
}

bool WorkerPool::send(std::uint32_t worker, const channel::Message& m, std::string_view payload) {
  if (!accepts(worker)) return false;
  send_in_order(workers_[worker], m, payload);
  return true;
}

void WorkerPool::send_in_order(WorkerProcess& w, const channel::Message& m, std::string_view payload) {
  events_.flush();  // our events (push_queued) before the worker's answer (push_delivered)
  channel::Message message = m;
  message.generation = w.generation;
  const Io io = w.channel.send(message, payload);
  if (io != Io::ok) {
    // The worker is going; SIGCHLD follows, and its pushes are requeued from the copies.
    spdlog::warn("sendmsg() to worker {} failed: {}", &w - workers_.data(), std::strerror(errno));
  }
}

std::vector<std::uint32_t> WorkerPool::send_all(channel::Cmd cmd, std::string_view payload) {
  std::vector<std::uint32_t> sent;
  for (std::uint32_t i = 0; i < workers_.size(); ++i) {
    if (send(i, channel::Message{.cmd = cmd}, payload)) sent.push_back(i);
  }
  return sent;
}

Io WorkerPool::hand_over(WorkerProcess& w, int socket, const PeerAddress& peer) {
  const channel::Message m{.cmd = channel::Cmd::new_connection, .generation = w.generation, .peer = peer};
  const Io io = w.channel.send_socket(m, socket);
  if (io == Io::ok) {
    ++w.connections;
    ++w.per_ip[ip_key_of(peer)];
  } else if (io != Io::want_write) {
    spdlog::warn("sendmsg() to worker pid {} failed: {}", w.pid, std::strerror(errno));
  }
  return io;
}

// ---- figures --------------------------------------------------------------------------

WorkerProcess* WorkerPool::least_loaded(std::span<const WorkerProcess* const> skip) {
  WorkerProcess* best = nullptr;
  for (auto& w : workers_) {
    if (w.state != WorkerState::ready) continue;
    if (std::find(skip.begin(), skip.end(), &w) != skip.end()) continue;
    if (best == nullptr || w.connections < best->connections) best = &w;
  }
  return best;
}

std::uint32_t WorkerPool::ready_count() const noexcept {
  return static_cast<std::uint32_t>(std::count_if(
      workers_.begin(), workers_.end(), [](const WorkerProcess& w) { return w.state == WorkerState::ready; }));
}

bool WorkerPool::all_exited() const noexcept {
  return std::all_of(workers_.begin(), workers_.end(),
                     [](const WorkerProcess& w) { return w.state == WorkerState::exited; });
}

std::size_t WorkerPool::waiting_bytes() const noexcept {
  std::size_t total = 0;
  for (const auto& w : workers_) total += w.channel.waiting_bytes();
  return total;
}

void WorkerPool::kill_all(int signal) noexcept {
  for (const auto& w : workers_) {
    if (w.state != WorkerState::exited) ::kill(w.pid, signal);
  }
}

void WorkerPool::close_in_child() noexcept {
  for (auto& w : workers_) w.channel.reset();
}

}  // namespace iotsocket::master
