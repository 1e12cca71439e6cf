#include "common/channel_end.hpp"

#include <sys/epoll.h>

namespace iotsocket::channel {

bool End::watch(int epoll, std::uint64_t tag) noexcept {
  epoll_ = epoll;
  tag_ = tag;
  writable_watched_ = false;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag;
  return ::epoll_ctl(epoll_, EPOLL_CTL_ADD, socket_.get(), &ev) == 0;
}

void End::unwatch() noexcept {
  if (epoll_ >= 0 && socket_) ::epoll_ctl(epoll_, EPOLL_CTL_DEL, socket_.get(), nullptr);
  epoll_ = -1;
}

Io End::send(const Message& m, std::string_view payload) {
  if (waiting_.empty()) {
    const Io io = channel::send(socket_.get(), m, payload);
    if (io != Io::want_write) return io;
  }
  waiting_.push_back(Waiting{m, std::string(payload)});
  waiting_bytes_ += cost(waiting_.back());
  watch_writable(true);
  return Io::ok;
}

Io End::send_socket(const Message& m, int socket) noexcept {
  if (!waiting_.empty()) return Io::want_write;
  return channel::send(socket_.get(), m, socket);
}

Io End::flush() noexcept {
  while (!waiting_.empty()) {
    Waiting& w = waiting_.front();
    const Io io = channel::send(socket_.get(), w.message, w.payload);
    if (io != Io::ok) return io;
    waiting_bytes_ -= cost(w);
    waiting_.pop_front();
  }
  watch_writable(false);
  return Io::ok;
}

Cmd End::drop_front() noexcept {
  const Cmd cmd = waiting_.front().message.cmd;
  waiting_bytes_ -= cost(waiting_.front());
  waiting_.pop_front();
  if (waiting_.empty()) watch_writable(false);
  return cmd;
}

void End::reset() noexcept {
  // No EPOLL_CTL_DEL: closing the socket takes it out of the set, and in a forked child the
  // set is the parent's.
  epoll_ = -1;
  socket_.reset();
  waiting_.clear();
  waiting_bytes_ = 0;
  writable_watched_ = false;
}

void End::watch_writable(bool on) noexcept {
  if (writable_watched_ == on || epoll_ < 0 || !socket_) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (on ? std::uint32_t{EPOLLOUT} : 0u);
  ev.data.u64 = tag_;
  if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, socket_.get(), &ev) == 0) writable_watched_ = on;
}

}  // namespace iotsocket::channel
