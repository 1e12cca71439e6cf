// The worker processes as the master keeps them (as nginx's ngx_process_t and Postfix's
// master_spawn.c keep theirs): for each, its pid, state, generation, channel end and load;
// spawning, reaping, respawning after a crash-loop delay; and reading what each worker says,
// which it passes on to WorkerEvents. It knows nothing of pushes, caps or reloads.
//
// The fork itself is the Spawn function's (the master's): what the child closes and runs is
// the master's business, and a unit test spawns no process at all (it keeps the worker's
// end of the channel and plays the worker).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/channel_end.hpp"
#include "common/event_sink.hpp"
#include "common/net.hpp"
#include "master/worker_link.hpp"

namespace iotsocket::master {

// finishing: it has closed every connection while stopping and was sent `finish`; nothing
// more goes to it (pushes for its devices go to the offline queue).
enum class WorkerState { starting, ready, finishing, exited };

struct WorkerProcess {
  pid_t pid = 0;
  channel::End channel;
  WorkerState state = WorkerState::exited;
  std::uint32_t generation = 0;
  std::chrono::steady_clock::time_point started_at{};
  std::chrono::steady_clock::time_point respawn_at{};  // when exited: not before this
  // Load: the connections handed to it and not yet closed, by source address too.
  std::uint32_t connections = 0;
  std::unordered_map<IpKey, std::uint32_t, IpKeyHash> per_ip;
};

// What the workers say, as the pool passes it on (the master hands each to its owner).
class WorkerEvents {
 public:
  virtual ~WorkerEvents() = default;
  virtual void ready(std::uint32_t worker) = 0;
  // The pool has taken the connection off the worker's load already; `counted` is false
  // when the worker's count was already zero (a close it was never handed), which then
  // takes nothing off the global count either.
  virtual void connection_closed(std::uint32_t worker, const IpKey& ip, bool counted) = 0;
  virtual void device_online(std::uint32_t worker, const channel::Message& m) = 0;
  virtual void push_returned(std::uint32_t worker, const channel::Message& m, std::string payload) = 0;
  virtual void pushes_settled(std::uint32_t worker, std::span<const std::uint64_t> seqs) = 0;
  virtual void fence_passed(std::uint32_t worker, const channel::Message& m) = 0;
  virtual void reloaded(std::uint32_t worker, const std::string& failure) = 0;
  // The worker has exited: once, after everything it had sent was passed on, while `gone`
  // still shows its load; the pool clears it after this.
  virtual void gone(std::uint32_t worker, const WorkerProcess& gone, int status) = 0;
};

class WorkerPool final : public WorkerLink {
 public:
  using Clock = std::chrono::steady_clock;
  // Forks worker `worker` (generation `generation`) with `worker_end` as its channel;
  // returns its pid, or -1 (errno set).
  using Spawn = std::function<pid_t(std::uint32_t worker, std::uint32_t generation, Fd worker_end)>;

  static constexpr auto kRespawnDelayAfterCrashLoop = std::chrono::seconds(1);

  // `tag` | worker index is each channel's epoll data. `events` is flushed before every
  // message to a worker: the master's events (push_queued) come before the worker's
  // answers (push_delivered).
  WorkerPool(std::size_t count, int epoll, std::uint64_t tag, EventSink& events, Spawn spawn);

  // False when the channel or the fork failed (logged).
  bool spawn(std::uint32_t worker);
  // Respawns the workers whose respawn time has come (none once stopping).
  void respawn_due(Clock::time_point now);
  // The earliest respawn time, if one waits.
  std::optional<Clock::time_point> next_respawn() const;

  // The worker's channel is readable or writable.
  void on_channel(std::uint32_t worker, std::uint32_t epoll_events, WorkerEvents& to);
  // SIGCHLD: reaps every exited child.
  void reap(WorkerEvents& to);
  // `pid` has exited with `status` (reap()'s work for one, and a test's way in).
  void exited(pid_t pid, int status, WorkerEvents& to);

  // Sends `m` (with this worker's generation) now or behind what waits. False when the
  // worker is not running or is finishing: the caller keeps what it sent.
  bool send(std::uint32_t worker, const channel::Message& m, std::string_view payload) override;
  bool accepts(std::uint32_t worker) const override;
  // send() to every worker; the workers it went to.
  std::vector<std::uint32_t> send_all(channel::Cmd cmd, std::string_view payload = {});
  // Hands an accepted socket to `w` and counts it in its load. Io::want_write when its
  // channel is full.
  Io hand_over(WorkerProcess& w, int socket, const PeerAddress& peer);

  // The ready worker with the fewest connections, not one of `skip`; null when none.
  WorkerProcess* least_loaded(std::span<const WorkerProcess* const> skip = {});
  std::uint32_t ready_count() const noexcept;
  bool all_exited() const noexcept;
  std::size_t size() const noexcept { return workers_.size(); }
  const WorkerProcess& at(std::uint32_t worker) const { return workers_[worker]; }
  // What waits in the channels, in bytes (the master stops reading pushes past a bound).
  std::size_t waiting_bytes() const noexcept;
  std::uint64_t restarts() const noexcept { return restarts_; }

  // Stopping: no more respawns, and a worker that exits 0 has exited, not died.
  void stop() noexcept { stopping_ = true; }
  void kill_all(int signal) noexcept;
  // In a forked child: closes every channel end the master holds (epoll untouched: the
  // set is the master's, shared across fork()).
  void close_in_child() noexcept;

 private:
  void read_channel(std::uint32_t worker, bool gone, WorkerEvents& to);
  void pass_on(std::uint32_t worker, channel::Received& r, WorkerEvents& to);
  // Every message to a worker goes here: the master's events first, the generation set, a
  // failed send logged (the worker is going; its pushes are requeued from the copies).
  void send_in_order(WorkerProcess& w, const channel::Message& m, std::string_view payload = {});
  // Takes a closed connection off the worker's load; false when its count was zero.
  bool forget_connection(WorkerProcess& w, const IpKey& ip);
  void log_exit(std::uint32_t worker, const WorkerProcess& w, int status) const;

  std::vector<WorkerProcess> workers_;
  int epoll_;
  std::uint64_t tag_;
  EventSink& events_;
  Spawn spawn_;
  bool stopping_ = false;
  std::uint64_t restarts_ = 0;
};

}  // namespace iotsocket::master
