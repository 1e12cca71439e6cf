#include "common/channel.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace iotsocket::channel {

bool make_pair(Fd& master_end, Fd& worker_end) noexcept {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    return false;
  }
  master_end.reset(fds[0]);
  worker_end.reset(fds[1]);
  return true;
}

namespace {

Io send_parts(int channel, const Message& message, std::string_view payload, int pass_fd) noexcept {
  iovec iov[2] = {{const_cast<Message*>(&message), sizeof message},
                  {const_cast<char*>(payload.data()), payload.size()}};
  const std::size_t total = sizeof message + payload.size();
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = payload.empty() ? 1 : 2;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (pass_fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cmsg), &pass_fd, sizeof(int));
  }
  for (;;) {
    ssize_t n = ::sendmsg(channel, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(total)) return Io::ok;
    if (n >= 0) return Io::error;  // SEQPACKET sends whole records or nothing
    if (errno == EINTR) continue;
    // ETOOMANYREFS: the sender has as many descriptors in flight as its open-file limit;
    // like a full buffer, it clears as the worker reads.
    if (errno == EAGAIN || errno == ETOOMANYREFS) return Io::want_write;
    if (errno == EPIPE || errno == ECONNRESET) return Io::closed;
    return Io::error;
  }
}

}  // namespace

Io send(int channel, const Message& message, int pass_fd) noexcept {
  return send_parts(channel, message, {}, pass_fd);
}

Io send(int channel, const Message& message, std::string_view payload) noexcept {
  if (payload.size() > kMaxPayload) {
    errno = EMSGSIZE;
    return Io::error;
  }
  return send_parts(channel, message, payload, -1);
}

Received receive(int channel) noexcept {
  Received out;
  // One buffer per process for the payload part (each process has one thread), so that a
  // receive costs no allocation beyond the payload it returns.
  static char payload[kMaxPayload + 1];
  iovec iov[2] = {{&out.message, sizeof out.message}, {payload, sizeof payload}};
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = 2;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  for (bool reset_seen = false;;) {
    n = ::recvmsg(channel, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    // A peer that closed with messages it never read leaves ECONNRESET, reported once and
    // ahead of what it had sent: read on, so that its last messages are not lost.
    if (n < 0 && errno == ECONNRESET && !reset_seen) {
      reset_seen = true;
      continue;
    }
    break;
  }
  if (n < 0) {
    out.io = (errno == EAGAIN) ? Io::want_read : (errno == ECONNRESET ? Io::closed : Io::error);
    return out;
  }
  if (n == 0) {
    out.io = Io::closed;
    return out;
  }
  // Take ownership of any descriptor first, so that every error path below closes it.
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
      out.fd.reset(fd);
    } else {
      out.io = Io::error;  // foreign control data
      out.fd.reset();
      return out;
    }
  }
  constexpr auto kFixed = static_cast<ssize_t>(sizeof out.message);
  const bool wants_fd = n >= kFixed && out.message.cmd == Cmd::new_connection;
  if (wants_fd && (msg.msg_flags & MSG_CTRUNC) && !out.fd.valid() && n == kFixed) {
    out.fd_lost = true;
    out.io = Io::ok;
    return out;
  }
  const bool size_ok = n == kFixed || (n > kFixed && carries_payload(out.message.cmd) &&
                                       n - kFixed <= static_cast<ssize_t>(kMaxPayload));
  if (!size_ok || (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) || wants_fd != out.fd.valid()) {
    out.fd.reset();
    out.io = Io::error;
    return out;
  }
  out.payload.assign(payload, static_cast<std::size_t>(n - kFixed));
  out.io = Io::ok;
  return out;
}

std::string encode_settled(std::span<const std::uint64_t> seqs) {
  return std::string(reinterpret_cast<const char*>(seqs.data()), seqs.size_bytes());
}

std::optional<std::vector<std::uint64_t>> decode_settled(std::string_view payload) {
  if (payload.size() % sizeof(std::uint64_t) != 0) return std::nullopt;
  std::vector<std::uint64_t> seqs(payload.size() / sizeof(std::uint64_t));
  // An empty vector's data() may be null, and memcpy from or to null is undefined even for 0 bytes.
  if (!seqs.empty()) std::memcpy(seqs.data(), payload.data(), payload.size());
  return seqs;
}

std::string encode_tls_files(const TlsFiles& files) { return files.cert + "\n" + files.key; }

std::optional<TlsFiles> decode_tls_files(std::string_view payload) {
  const auto newline = payload.find('\n');
  if (newline == std::string_view::npos) return std::nullopt;
  return TlsFiles{std::string(payload.substr(0, newline)), std::string(payload.substr(newline + 1))};
}

}  // namespace iotsocket::channel
