// The Worker: one epoll loop (worker.cpp) wiring the parts that own the worker's state
// (README.md has the table and the life of a frame and of a push):
//   ConnectionTable  slots, tags, generations, epoll interest, paused connections
//   Login            the first frame: registry, claim, duplicate policy
//   PushWriter       push frames into write queues and onto the wire, hand-backs
//   SettleReports    the numbers of the pushes written, to the master
//   Deadlines        handshake, first frame, idle, max age
//   Drain            the spread closing order of a shutdown
//   BackPressure     what the operator is told while the inbound sink has no room
//   HandshakeBudget  at most 10 ms of TLS handshakes per pass: a flood cannot starve the
//                    connections that are logged in
//   ArrivalClock     since when a connection's unread bytes may have waited (the time check)
//   MasterLink       the channel to the master
//   Inbound          where accepted frames go (the FIFO and spool, InboundSink)
// The methods of the class itself are the glue: they move a connection from one part to
// the next and close it when one says so. Internal to worker/ (worker.hpp is the API).
#pragma once

#include <openssl/ssl.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "common/channel.hpp"
#include "common/event_sink.hpp"
#include "common/fd.hpp"
#include "common/registry.hpp"
#include "common/tls.hpp"
#include "config/config.hpp"
#include "protocol/frame.hpp"
#include "protocol/session.hpp"
#include "protocol/time.hpp"
#include "shm/device_directory.hpp"
#include "shm/worker_counters.hpp"
#include "worker/arrival_clock.hpp"
#include "worker/back_pressure.hpp"
#include "worker/connection.hpp"
#include "worker/handshake_budget.hpp"
#include "worker/connection_table.hpp"
#include "worker/deadlines.hpp"
#include "worker/drain.hpp"
#include "worker/inbound.hpp"
#include "worker/login.hpp"
#include "worker/master_link.hpp"
#include "worker/push_writer.hpp"
#include "worker/settle_reports.hpp"
#include "worker/worker.hpp"

namespace iotsocket::worker {

protocol::SessionLimits session_limits(const config::Config& config);

class Worker {
 public:
  Worker(WorkerSetup setup, DeviceRegistry registry, std::unique_ptr<Inbound> inbound, Fd epoll);

  int run() noexcept;

 private:
  // the loop (worker.cpp)
  bool start() noexcept;
  void on_event(std::uint64_t tag, std::uint32_t events) noexcept;
  void after_events(SteadyTime now) noexcept;
  int finish() noexcept;
  int wait_timeout(SteadyTime now) const noexcept;
  void flush_inbound() noexcept;
  void trim_memory(SteadyTime now) noexcept;

  // the master's commands (commands.cpp)
  void on_channel() noexcept;
  void on_command(channel::Received& r) noexcept;
  void on_socket_lost(const PeerAddress& peer) noexcept;
  void on_push(channel::Received& r) noexcept;
  void pass_fence(const channel::Message& m) noexcept;
  void check_holds(SteadyTime now) noexcept;
  void begin_drain(std::chrono::milliseconds period) noexcept;
  void drain_step(SteadyTime now) noexcept;
  void close_for_shutdown(Connection& c) noexcept;

  // reload (reload.cpp): "" when done, else why this worker kept what it had
  std::string reload_tls(const std::string& payload) noexcept;
  std::string reload_settings() noexcept;

  // a connection's life (connections.cpp)
  void adopt(Fd socket, const PeerAddress& peer) noexcept;
  bool start_tls(Connection& c) noexcept;
  void on_connection_event(Connection& c, std::uint32_t events) noexcept;
  void drive(Connection& c) noexcept;
  bool write_pushes(Connection& c) noexcept;
  bool step_handshake(Connection& c) noexcept;
  bool advance_handshake(Connection& c) noexcept;
  void read_frames(Connection& c) noexcept;
  bool take_buffered_frames(Connection& c, protocol::Arrival arrival) noexcept;
  void note_if_caught_up(Connection& c, protocol::Arrival arrival) noexcept;
  bool take_frame(Connection& c, const protocol::FrameView& frame, protocol::Arrival arrival) noexcept;
  bool log_in(Connection& c, const protocol::FrameView& frame, protocol::Arrival arrival) noexcept;
  void resume_paused() noexcept;
  // Ends a connection with one log line: "rejected" (at warn) when the device broke a
  // rule, "closed" otherwise (timeouts, the peer left, shutdown).
  enum class Why { closed, rejected };
  void close(Connection& c, std::string_view reason, Why why = Why::closed) noexcept;
  void end_session(Connection& c, std::string_view reason) noexcept;
  void close_all(std::string_view reason) noexcept;

  config::Config config_;  // a copy: a reload changes the reloadable settings
  SSL_CTX* tls_;           // for new handshakes: the inherited context or the last reload's
  SslCtx reloaded_tls_;    // owns the last reload's (connections keep a reference to theirs)
  shm::DeviceDirectory& directory_;
  shm::WorkerCounters& counters_;
  std::uint32_t index_;
  DeviceRegistry registry_;
  std::unique_ptr<Inbound> inbound_;
  Fd epoll_;
  protocol::SessionLimits limits_;
  EventSink events_;  // connected, disconnected, push_delivered

  MasterLink master_;
  ConnectionTable connections_;
  Deadlines deadlines_;
  SettleReports settled_;
  PushWriter pushes_;
  Login login_;
  Drain drain_;
  ArrivalClock arrivals_;
  BackPressure back_pressure_;
  HandshakeBudget handshakes_;

  int sink_watched_fd_ = -1;
  bool fd_shortage_logged_ = false;
  std::uint32_t churn_since_trim_ = 0;
  SteadyTime last_trim_{};
  std::uint64_t seen_close_epoch_ = 0;
  SteadyTime next_holder_check_{};
  std::uint64_t frames_in_at_start_ = 0;  // the counter goes on across respawns (exit log line)
  bool stopping_ = false;  // leave the loop: `finish` came, or the master is gone
};

}  // namespace iotsocket::worker
