// Accepting device connections: the listeners; the caps (limits.max_connections, and per
// source address limits.per_ip), applied before any TLS work so that a refused connection
// costs one accept and one close; the hand-over to the least-loaded ready worker; the
// sockets parked while every worker's channel is full; and the pauses: until a worker is
// ready, while a burst is parked (the kernel's backlog holds the rest), and for a moment
// when descriptors run out. Refusals are counted and logged once a second, not once per
// connection: a flood must not turn into a flood of log lines.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/fd.hpp"
#include "common/net.hpp"
#include "config/config.hpp"
#include "master/listeners.hpp"
#include "master/worker_pool.hpp"
#include "shm/device_table.hpp"

namespace iotsocket::master {

struct RefusalCounts {
  std::uint64_t max_connections = 0;
  std::uint64_t per_ip = 0;
  std::uint64_t workers_behind = 0;  // shed: every worker had handshakes waiting
};

class Acceptor {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr int kAcceptBatch = 64;
  static constexpr auto kPauseOnFdShortage = std::chrono::milliseconds(100);
  static constexpr std::size_t kMaxParked = 1024;
  static constexpr auto kParkedRetry = std::chrono::milliseconds(1);
  // A worker that left this many ready handshakes for a later pass (its handshake budget)
  // is behind: a flood's handshakes would only queue there, delaying everyone's login.
  static constexpr std::uint64_t kBehindHandshakes = 64;

  // Registers the listeners with `epoll` (tag | listener index), without interest until a
  // worker is ready. `config`'s limits are read at each connection (a reload changes them).
  // `table`: the workers' counters, which say when a worker is behind on handshakes.
  Acceptor(std::vector<Listener> listeners, int epoll, std::uint64_t tag, WorkerPool& pool,
           const config::Config& config, const shm::DeviceTable& table);

  // Listener `index` is readable.
  void on_listener(std::size_t index);
  // Each loop pass: hands parked sockets over, and accepts again when it may.
  void tick(Clock::time_point now);
  // Once a second: the refusals of the last second, in one log line.
  void log_refusals();
  // When tick() wants to run next, if sooner than the loop's second (a ready worker wakes
  // the loop by itself).
  std::optional<Clock::time_point> next_wakeup(Clock::time_point now) const;

  // A worker closed a connection from `ip` (the pool has its own count); `counted` as the
  // pool says (WorkerEvents::connection_closed).
  void connection_closed(const IpKey& ip, bool counted);
  // A worker died: its connections are gone.
  void worker_gone(const WorkerProcess& w);

  // For good: the listeners close, and new connections are refused by the kernel.
  void stop();

  std::uint32_t connections() const noexcept { return connections_; }
  // Every refusal since the start.
  RefusalCounts refused() const noexcept;

 private:
  void hand_off(Fd socket, const PeerAddress& peer);
  bool over_caps(const IpKey& ip);
  bool behind(std::uint32_t worker) const;
  bool every_worker_behind() const;
  bool send_to_worker(Fd& socket, const PeerAddress& peer);
  bool send_to_least_loaded(Fd& socket, const PeerAddress& peer, std::vector<const WorkerProcess*>& skip);
  void hand_off_parked();
  void pause_for_fd_shortage(std::size_t index);
  void set_accepting(bool on);

  std::vector<Listener> listeners_;
  int epoll_;
  std::uint64_t tag_;
  WorkerPool& pool_;
  const config::Config& config_;
  const shm::DeviceTable& table_;
  bool accepting_ = false;
  bool stopped_ = false;
  Clock::time_point resume_at_{};
  bool fd_shortage_logged_ = false;
  // Counted from the hand-off on, parked or not, so that a burst cannot pass the caps.
  std::uint32_t connections_ = 0;
  std::unordered_map<IpKey, std::uint32_t, IpKeyHash> per_ip_;
  struct Parked {
    Fd socket;
    PeerAddress peer;
  };
  std::deque<Parked> parked_;
  RefusalCounts refused_;         // this second's
  RefusalCounts refused_before_;  // the sum of every earlier second's
};

}  // namespace iotsocket::master
