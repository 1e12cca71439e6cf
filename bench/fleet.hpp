// Fleet: one loop's share of the devices, each a non-blocking TLS connection driven by
// epoll events and timers: connect (at --connect-rate) -> TLS handshake -> login frame ->
// frames at --rate (or keepalives while holding) -> closed at the end of the run.
// The Fleet owns the connections; the loop owns the epoll instance and the clock.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <queue>
#include <string>
#include <vector>

#include "bench/address.hpp"
#include "bench/epoll.hpp"
#include "bench/options.hpp"
#include "bench/push_ledger.hpp"
#include "bench/report.hpp"
#include "bench/stream.hpp"
#include "protocol/decoder.hpp"
#include "protocol/time.hpp"

namespace iotsocket::bench {

using Clock = std::chrono::steady_clock;

struct FleetSetup {
  const Options* options = nullptr;
  Target target;
  SourceRange sources;
  SSL_CTX* tls = nullptr;          // null: plain TCP
  std::uint64_t first_index = 0;   // this fleet's first device, 0-based over the whole run
  std::uint64_t count = 0;
  double connect_rate = 0;         // this fleet's share; 0 = no limit
  Clock::time_point start;
  PushLedger* ledger = nullptr;    // push mode: books the pushes received (shared by the loops)
};

class Fleet {
 public:
  Fleet(const FleetSetup& setup, Epoll& epoll);

  // Starts due connections and sends due frames.
  void tick(Clock::time_point now);
  // An epoll event for device `index` (the epoll tag).
  void on_event(std::uint64_t index, std::uint32_t events, Clock::time_point now);
  // When tick() has work next (connects, frames, timeouts, the end of the hold or of the
  // linger), if ever. Called right after tick(now).
  std::optional<Clock::time_point> next_wakeup(Clock::time_point now) const;

  // Every device is up or failed (none waiting, connecting or handshaking).
  bool settled() const noexcept { return unsettled_ == 0; }
  std::uint64_t up_now() const noexcept { return up_now_; }
  std::uint64_t frames_sent() const noexcept { return stats_.frames_sent; }
  // Every device is up or failed, and every one that is up has written its login frame.
  bool logins_done() const noexcept { return settled() && logins_pending_ == 0; }
  // The IDs of the devices that are up and have written their login frame, ascending.
  std::vector<protocol::DeviceId> logged_in_ids() const;
  // Push mode: pushes of this run received so far (first arrivals).
  std::uint64_t push_arrivals() const noexcept { return stats_.push_arrivals(); }
  // Push mode: the push phase is over (all written pushes arrived, or the writer gave up);
  // only from now on is the fleet done sending, and the linger starts.
  void end_push_phase() noexcept { push_phase_over_ = true; }
  // No more frames to send: every device that is up sent its share (in hold mode: the
  // hold is over).
  bool sending_done(Clock::time_point now) const;
  // sending_done() and the linger after it is over.
  bool finished(Clock::time_point now) const;

  // Closes every connection (close_notify first) and returns the counts.
  FleetStats close_all();

 private:
  enum class Phase : std::uint8_t { waiting, connecting, handshaking, up, done, failed };

  struct Device {
    std::optional<Stream> stream;
    protocol::Decoder pushes{protocol::Direction::from_server};
    protocol::TimeStamper stamper;
    Clock::time_point started{};
    Clock::time_point next_frame{};
    std::string out;            // bytes written to the stream from out_begin on
    std::size_t out_begin = 0;
    std::uint64_t frames_built = 0;
    std::uint32_t frames_in_out = 0;
    std::optional<std::uint64_t> push_high;  // push mode: the highest sequence number received
    Phase phase = Phase::waiting;
    bool logged_in = false;     // the login frame is fully written
    bool sending = false;       // up and not yet done with its frames
  };

  struct Timer {
    Clock::time_point at;
    std::uint64_t index;
    friend bool operator>(const Timer& a, const Timer& b) { return a.at > b.at; }
  };

  void start_due_connects(Clock::time_point now);
  void expire_handshakes(Clock::time_point now);
  void start_connect(std::uint64_t index, Clock::time_point now);
  void send_due_frames(Clock::time_point now);
  void on_connected(std::uint64_t index, Clock::time_point now);
  void advance_handshake(std::uint64_t index, Clock::time_point now);
  void on_up(std::uint64_t index, Clock::time_point now);
  void pump(std::uint64_t index, Clock::time_point now);
  bool read_all(Device& d);
  void book_push(Device& d, std::string_view body, Clock::time_point now);
  bool flush(Device& d, Clock::time_point now);
  void queue_frame(std::uint64_t index);
  void schedule_next_frame(std::uint64_t index, Clock::time_point from);
  void check_done_sending(Device& d);
  void fail(std::uint64_t index, Failure why, const std::string& detail);
  Clock::time_point connect_due(std::uint64_t index) const;
  double since_start(Clock::time_point t) const;

  const Options& options_;
  FleetSetup setup_;
  Epoll& epoll_;
  std::vector<Device> devices_;
  std::priority_queue<Timer, std::vector<Timer>, std::greater<>> timers_;
  // Handshake deadlines in connect order, which is deadline order (one timeout for all).
  std::deque<Timer> handshake_deadlines_;
  std::optional<std::uint64_t> frame_limit_;
  std::optional<Clock::duration> frame_period_;
  std::uint64_t next_connect_ = 0;
  std::uint64_t unsettled_ = 0;  // waiting, connecting or handshaking
  std::uint64_t sending_ = 0;    // up with frames still to send
  std::uint64_t up_now_ = 0;
  std::uint64_t logins_pending_ = 0;  // up, login frame not yet fully written
  bool push_phase_over_ = false;
  std::optional<Clock::time_point> settled_at_;
  std::optional<Clock::time_point> sending_done_at_;
  std::array<bool, kFailureCount> logged_{};  // the first failure of each kind is logged
  std::string payload_;
  FleetStats stats_;
};

}  // namespace iotsocket::bench
