#include "worker/master_link.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace iotsocket::worker {

void MasterLink::say(channel::Cmd cmd, const PeerAddress& peer) noexcept {
  send(channel::Message{.cmd = cmd, .peer = peer});
}

void MasterLink::send(channel::Message m, std::string_view payload) noexcept {
  events_.flush();  // our events before anything the master writes in answer
  m.generation = generation_;
  const Io io = end_.send(m, payload);
  if (io != Io::ok) {
    spdlog::warn("cannot tell the master (cmd {}): {}", static_cast<int>(m.cmd), std::strerror(errno));
  }
}

void MasterLink::flush() noexcept {
  for (;;) {
    const Io io = end_.flush();
    if (io == Io::ok || io == Io::want_write) return;
    // One message that cannot go is lost, not the ones behind it (a transient error such as
    // ENOBUFS must not take a connection_closed or pushes_settled with it). When the master
    // is gone every one fails in turn, and its EOF ends the loop.
    const int error = errno;
    const channel::Cmd lost = end_.drop_front();
    spdlog::warn("cannot tell the master (cmd {}): {}", static_cast<int>(lost), std::strerror(error));
  }
}

void MasterLink::flush_before_exit() noexcept {
  for (int tries = 0; tries < 2000 && end_.waiting() > 0; ++tries) {
    flush();
    if (end_.waiting() > 0) ::usleep(1000);
  }
}

}  // namespace iotsocket::worker
