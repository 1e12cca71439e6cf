// The client's state machine. One connection at a time goes through:
//
//   offline --attempt()--> login written --login_grace passes or a push arrives--> online
//      ^                        |                                                   |
//      +--- backoff ------------+ (server closed: auth_refused)                     |
//      +--- backoff -------------------------------------------- (lost: server_gone)+
//      +--- at once ------------------------------------- (max_connection_age reached)+
//
// Frames wait in queue_ while not online and are written one at a time (out_): each gets
// its TIME as it is encoded, so one that waited longer than the tolerance is still fresh.
#pragma once

#include <deque>
#include <optional>
#include <random>
#include <string>

#include "client/backoff.hpp"
#include "client/link.hpp"
#include "client/pacer.hpp"
#include "client/trust.hpp"
#include "iotsocket/client.hpp"
#include "protocol/decoder.hpp"
#include "protocol/device_id.hpp"
#include "protocol/replay.hpp"
#include "protocol/time.hpp"

namespace iotsocket::client {

class Client::Impl {
 public:
  Impl(Options options, Trust trust, SslCtx ctx, protocol::DeviceId device);
  ~Impl();

  std::optional<Error> connect();
  std::optional<Error> send(std::string_view payload);
  Event poll(Duration timeout);
  void close(Duration timeout);

  int fd() const noexcept { return link_ ? link_->fd() : -1; }
  Duration wait_hint() const noexcept;
  bool online() const noexcept { return link_.has_value() && login_ == Login::accepted; }
  std::size_t queued() const noexcept { return queue_.size() + (in_flight_ ? 1 : 0); }
  const Stats& stats() const noexcept { return stats_; }
  std::string server_pin() const { return link_ ? link_->server_pin() : std::string(); }
  void log(LogLevel level, const std::string& message) const;

 private:
  enum class Login { not_written, writing, waiting, accepted };

  std::optional<Event> take_event();
  void attempt();
  void pump(SteadyTime deadline);

  // Writing: build the next frame when one is due, write as much as TLS takes.
  bool next_frame(SteadyTime now);
  bool encode(const std::string& payload, SteadyTime now);
  void frame_written(SteadyTime now);
  void write_pending(SteadyTime now);

  // Reading: every frame of what arrived, each checked as docs/PROTOCOL.md says.
  bool input_waiting() const;
  void read_available();
  void take_frames();
  void accept_login(SteadyTime now);

  // Endings: the connection is gone; report why and schedule the next attempt.
  void lose_connection(ErrorCode code, const std::string& why);
  void attempt_failed(Error error);
  void report(Error error);
  void renew();
  bool end_link(SteadyTime deadline);  // false when the late input lost the connection

  bool write_blocked() const noexcept { return want_write_ || write_wants_read_; }
  // Between frames: nothing half written, nothing waiting for the socket.
  bool idle() const noexcept { return out_.empty() && !in_flight_ && !write_blocked(); }

  SteadyTime next_wakeup(SteadyTime deadline, SteadyTime now) const;
  protocol::Time wall_now() const;

  Options options_;
  Trust trust_;
  SslCtx ctx_;
  protocol::DeviceId device_;

  std::optional<Link> link_;
  Login login_ = Login::not_written;
  protocol::Decoder decoder_{protocol::Direction::from_server};
  bool want_write_ = false;          // a write waits for writability
  bool write_wants_read_ = false;    // a write waits for input (TLS needs to read first)
  bool clock_warned_ = false;        // said once that the clock is behind our TIMEs
  SteadyTime login_written_at_{};
  SteadyTime renew_at_{};
  SteadyTime last_frame_at_{};       // a frame was last written completely
  SteadyTime write_retry_at_{};      // the pacer or the clock holds the next frame back
  SteadyTime next_attempt_at_{};     // while offline

  std::deque<std::string> queue_;    // payloads not yet on their way
  std::optional<std::string> in_flight_;  // the payload in out_ (nullopt: a keepalive)
  std::string out_;                  // the frame being written
  std::size_t out_written_ = 0;

  Pacer pacer_;                      // frames per second, under the server's flood limit
  protocol::TimeStamper stamper_;    // TIMEs of our frames: strictly increasing
  protocol::ReplayWindow seen_;      // TIMEs of the server's frames: never twice
  // The server's TIME minus this clock at its last push: a refused login's first check.
  std::optional<protocol::Tick> server_clock_offset_;

  Backoff backoff_;
  std::mt19937_64 random_;
  unsigned failed_attempts_ = 0;     // in a row
  unsigned refused_logins_ = 0;      // in a row

  std::deque<Push> pushes_;
  std::deque<Error> errors_;
  std::optional<Error> fatal_;
  Stats stats_;
};

}  // namespace iotsocket::client
