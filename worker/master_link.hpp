// MasterLink: the worker's end of its channel to the master (common/channel_end.hpp: the
// ordered outbox, EPOLLOUT while messages wait), with what the worker adds: its generation
// on every message, the lifecycle events flushed before anything the master may answer,
// and a log line for what cannot be sent (the master is going; the worker learns it from
// the channel's EOF).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/channel.hpp"
#include "common/channel_end.hpp"
#include "common/event_sink.hpp"
#include "common/fd.hpp"
#include "common/net.hpp"

namespace iotsocket::worker {

class MasterLink {
 public:
  MasterLink(Fd channel, std::uint32_t generation, EventSink& events) noexcept
      : end_(std::move(channel)), generation_(generation), events_(events) {}

  // Registers the channel with the worker's epoll set under `tag`.
  bool watch(int epoll, std::uint64_t tag) noexcept { return end_.watch(epoll, tag); }

  // A message with no payload (ready, connection_closed, drained, ...).
  void say(channel::Cmd cmd, const PeerAddress& peer = {}) noexcept;
  // Sends now or after what waits, in order; `m.generation` is set here.
  void send(channel::Message m, std::string_view payload = {}) noexcept;
  // On EPOLLOUT: sends what waits.
  void flush() noexcept;
  channel::Received receive() noexcept { return end_.receive(); }
  std::size_t waiting() const noexcept { return end_.waiting(); }
  // At exit: gives what waits up to two seconds to go (the master puts pushes handed back
  // by the last closes in the offline queue).
  void flush_before_exit() noexcept;

 private:
  channel::End end_;
  std::uint32_t generation_;
  EventSink& events_;
};

}  // namespace iotsocket::worker
