// What arrives from the server on a connected client: the link read, and each frame decoded
// and checked as docs/PROTOCOL.md says ("What a client enforces on push frames") before it
// is a push for the application.
#include "client/client_impl.hpp"

#include <poll.h>

#include "protocol/errors.hpp"

namespace iotsocket::client {

using std::chrono::duration_cast;

bool Client::Impl::input_waiting() const {
  if (link_->has_buffered_input()) return true;
  pollfd p{link_->fd(), POLLIN, 0};
  return ::poll(&p, 1, 0) > 0;
}

void Client::Impl::read_available() {
  std::array<char, 16 * 1024> buffer;
  while (link_) {
    std::size_t got = 0;
    const Io io = link_->read(buffer.data(), buffer.size(), got);
    if (io == Io::ok) {
      decoder_.feed(std::string_view(buffer.data(), got));
      take_frames();
      continue;
    }
    if (io == Io::want_read) return;
    if (io == Io::want_write) {
      want_write_ = true;
      return;
    }
    lose_connection(ErrorCode::server_gone, link_->peer() + ": " + link_->last_error());
    return;
  }
}

void Client::Impl::take_frames() {
  for (;;) {
    const protocol::Decoded decoded = decoder_.next();
    if (decoded.status == protocol::DecodeStatus::need_more) return;
    if (decoded.status == protocol::DecodeStatus::failed) {
      ++stats_.pushes_refused;
      lose_connection(ErrorCode::bad_server_frame,
                      "the server sent a malformed frame (" +
                          std::string(protocol::name(decoded.error)) + ")");
      return;
    }
    const protocol::FrameView& frame = decoded.frame;
    // Only a server that accepted the login sends frames.
    accept_login(steady_now());
    const protocol::Time now = wall_now();
    if (frame.device == device_) server_clock_offset_ = frame.time - now;
    std::optional<Error> refused;
    if (frame.device != device_) {
      refused = Error{ErrorCode::bad_server_frame,
                      "push for device " + protocol::to_string(frame.device) + " dropped", false};
    } else if (!protocol::within_tolerance(frame.time, now,
                                           duration_cast<protocol::Tick>(options_.time_tolerance))) {
      const protocol::Tick off = frame.time > now ? frame.time - now : now - frame.time;
      refused = Error{ErrorCode::clock_skew,
                      "push with TIME " + std::string(frame.time_text) + " dropped: it is " +
                          protocol::seconds_text(off) + " from this clock (this clock or the server's is wrong)",
                      false};
    } else if (!seen_.is_fresh(frame.time)) {
      refused = Error{ErrorCode::replayed_push,
                      "push with TIME " + std::string(frame.time_text) + " dropped: that TIME was seen before",
                      false};
    }
    if (refused) {
      ++stats_.pushes_refused;
      report(std::move(*refused));
      continue;
    }
    seen_.accept(frame.time);
    ++stats_.pushes_received;
    pushes_.push_back(Push{std::string(frame.body),
                           std::chrono::time_point_cast<std::chrono::system_clock::duration>(frame.time)});
  }
}

}  // namespace iotsocket::client
