// One end of a worker's channel as its owner's event loop drives it: the socket, the
// messages that wait for room (in order: while any wait, a new one queues behind them),
// the EPOLLOUT interest while any wait, and the memory they hold. The master holds one
// per worker, a worker one for the master. Move-only owner of the socket.
//
// A failed send (the peer is going) is returned, not logged: the caller knows who the
// peer is. What waits is dropped with the socket (reset(), or the peer's EOF): the master
// takes a dead worker's pushes back from its own copies (master/in_flight.hpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

#include "common/channel.hpp"
#include "common/fd.hpp"
#include "common/io.hpp"

namespace iotsocket::channel {

class End {
 public:
  End() = default;
  explicit End(Fd socket) noexcept : socket_(std::move(socket)) {}
  End(End&&) noexcept = default;
  End& operator=(End&&) noexcept = default;
  End(const End&) = delete;
  End& operator=(const End&) = delete;

  int fd() const noexcept { return socket_.get(); }
  explicit operator bool() const noexcept { return socket_.valid(); }

  // Registers the socket with `epoll` for EPOLLIN under `tag`; EPOLLOUT is added while
  // messages wait. False (errno set) when epoll_ctl fails.
  bool watch(int epoll, std::uint64_t tag) noexcept;
  // Takes the socket out of the epoll set (at EOF: it would report readable forever).
  void unwatch() noexcept;

  // Sends now, or queues behind what waits: Io::ok either way. Io::closed or Io::error
  // when the peer is going (nothing is queued then).
  Io send(const Message& m, std::string_view payload = {});
  // new_connection with its socket (the caller keeps `socket`): never queued, so
  // Io::want_write when the channel is full or messages wait.
  Io send_socket(const Message& m, int socket) noexcept;
  // Sends what waits (on EPOLLOUT). Io::ok when all went, Io::want_write when the channel
  // is full again; Io::closed or Io::error when the peer is going.
  Io flush() noexcept;

  // One message (channel::receive()).
  Received receive() noexcept { return channel::receive(socket_.get()); }

  std::size_t waiting() const noexcept { return waiting_.size(); }
  // What the waiting messages cost in memory (bookkeeping included: with small pushes it
  // is most of it).
  std::size_t waiting_bytes() const noexcept { return waiting_bytes_; }

  // Drops the first message waiting (flush() failed on it; there is one) and says which
  // command it was, for the log.
  Cmd drop_front() noexcept;
  // Closes the socket and drops what waits (epoll untouched: see channel_end.cpp).
  void reset() noexcept;

 private:
  struct Waiting {
    Message message;
    std::string payload;
  };
  static std::size_t cost(const Waiting& w) noexcept { return sizeof(Waiting) + w.payload.capacity() + 16; }
  void watch_writable(bool on) noexcept;

  Fd socket_;
  std::deque<Waiting> waiting_;
  std::size_t waiting_bytes_ = 0;
  int epoll_ = -1;
  std::uint64_t tag_ = 0;
  bool writable_watched_ = false;
};

}  // namespace iotsocket::channel
