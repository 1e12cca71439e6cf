#include "client/link.hpp"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <openssl/err.h>

#include <cerrno>
#include <cstring>
#include <memory>

#include "protocol/limits.hpp"

namespace iotsocket::client {
namespace {

// Frames that the server never acknowledges at the TCP level make the write fail after
// this, instead of after the kernel's 15 minutes of retransmissions.
constexpr unsigned kTcpUserTimeoutMs = 30'000;

Unexpected<Error> failure(ErrorCode code, std::string message) {
  return Unexpected{Error{code, std::move(message), false}};
}

// OpenSSL writes with write(), so a write to a connection the server has reset raises
// SIGPIPE, whose default kills the process. A library must not change the process's signal
// dispositions; instead SIGPIPE is blocked in this thread around each OpenSSL call, and
// one it raised is taken off the pending set before the old mask returns (the technique
// libpq uses).
class SigpipeGuard {
 public:
  SigpipeGuard() noexcept {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    ::sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeGuard() {
    if (!was_pending_) {
      sigset_t pending;
      sigemptyset(&pending);
      ::sigpending(&pending);
      if (sigismember(&pending, SIGPIPE) == 1) {
        const timespec zero{};
        (void)::sigtimedwait(&pipe_, nullptr, &zero);
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeGuard(const SigpipeGuard&) = delete;
  SigpipeGuard& operator=(const SigpipeGuard&) = delete;

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
};

int millis_until(SteadyTime deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<std::chrono::milliseconds::rep>(0, left.count()));
}

// Waits for `events` on fd until the deadline; false when it passed.
bool wait_for(int fd, short events, SteadyTime deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = ::poll(&p, 1, millis_until(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
}

std::string address_text(const sockaddr* sa) {
  char host[INET6_ADDRSTRLEN] = "?";
  std::uint16_t port = 0;
  if (sa->sa_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
  ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
  port = ntohs(in6->sin6_port);
  return "[" + std::string(host) + "]:" + std::to_string(port);
}

// A non-blocking TCP connection to one address, or errno's text.
Expected<Fd, std::string> connect_to(const addrinfo& ai, SteadyTime deadline) {
  Fd fd(::socket(ai.ai_family, ai.ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai.ai_protocol));
  if (!fd) return Unexpected{std::string("socket: ") + std::strerror(errno)};
  if (::connect(fd.get(), ai.ai_addr, ai.ai_addrlen) != 0) {
    if (errno != EINPROGRESS) return Unexpected{std::string(std::strerror(errno))};
    if (!wait_for(fd.get(), POLLOUT, deadline)) return Unexpected{std::string("timed out")};
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) return Unexpected{std::string(std::strerror(error))};
  }
  int on = 1;
  // Frames are small and each one is a message of its own: no Nagle delay.
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  ::setsockopt(fd.get(), SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  unsigned timeout = kTcpUserTimeoutMs;
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_USER_TIMEOUT, &timeout, sizeof timeout);
  return fd;
}

}  // namespace

Expected<Link, Error> Link::open(const Options& options, const Trust& trust, SSL_CTX* ctx) {
  const std::string where = options.host + ":" + std::to_string(options.port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string port = std::to_string(options.port);
  if (const int rc = ::getaddrinfo(options.host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return failure(ErrorCode::server_gone, "cannot resolve " + options.host + ": " + ::gai_strerror(rc));
  }
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> addresses(found, &::freeaddrinfo);

  Link link;
  std::string why;
  std::size_t untried = 0;
  for (const addrinfo* ai = addresses.get(); ai != nullptr; ai = ai->ai_next) ++untried;
  const SteadyTime connect_deadline = std::chrono::steady_clock::now() + options.connect_timeout;
  for (const addrinfo* ai = addresses.get(); ai != nullptr && !link.fd_; ai = ai->ai_next) {
    // An equal share of the time left for each address still to try.
    const auto now = std::chrono::steady_clock::now();
    const auto share = (connect_deadline - now) / static_cast<long>(untried--);
    auto fd = connect_to(*ai, now + share);
    if (fd) {
      link.fd_ = std::move(*fd);
      link.peer_ = address_text(ai->ai_addr);
    } else {
      why += (why.empty() ? "" : "; ") + address_text(ai->ai_addr) + ": " + fd.error();
    }
  }
  if (!link.fd_) return failure(ErrorCode::server_gone, "cannot connect to " + where + ": " + why);

  ERR_clear_error();
  link.ssl_.reset(SSL_new(ctx));
  if (!link.ssl_) return failure(ErrorCode::tls_failed, "SSL_new: " + drain_tls_errors());
  const std::string& name = options.server_name.empty() ? options.host : options.server_name;
  if (!trust.prepare(link.ssl_.get(), name)) {
    return failure(ErrorCode::tls_failed, "cannot set the server name '" + name + "': " + drain_tls_errors());
  }
  SSL_set_fd(link.ssl_.get(), link.fd_.get());
  const SteadyTime deadline = std::chrono::steady_clock::now() + options.connect_timeout;
  for (;;) {
    const SigpipeGuard guard;
    ERR_clear_error();  // SSL_get_error() reads the queue: nothing stale may be in it
    const int rc = SSL_connect(link.ssl_.get());
    if (rc == 1) break;
    const int saved_errno = errno;
    const int error = SSL_get_error(link.ssl_.get(), rc);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) {
      if (!wait_for(link.fd_.get(), error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline)) {
        return failure(ErrorCode::tls_failed, "TLS handshake with " + link.peer_ + " timed out");
      }
      continue;
    }
    if (auto rejected = trust.verification_error(link.ssl_.get())) {
      ERR_clear_error();
      return Unexpected{*rejected};
    }
    std::string reason = drain_tls_errors();
    if (reason.empty()) {
      reason = error == SSL_ERROR_SYSCALL && saved_errno != 0
                   ? std::string(std::strerror(saved_errno))
                   : "the server closed the connection";
    }
    return failure(ErrorCode::tls_failed, "TLS handshake with " + link.peer_ + " failed: " + reason);
  }
  if (auto mismatch = trust.check(link.ssl_.get())) {
    link.goodbye();
    return Unexpected{*mismatch};
  }
  return link;
}

std::string Link::server_pin() const {
  X509* cert = ssl_ ? SSL_get0_peer_certificate(ssl_.get()) : nullptr;
  return cert != nullptr ? pin_of(cert) : std::string();
}

Io Link::classify(int result, int saved_errno) noexcept {
  switch (SSL_get_error(ssl_.get(), result)) {
    case SSL_ERROR_WANT_READ:
      return Io::want_read;
    case SSL_ERROR_WANT_WRITE:
      return Io::want_write;
    case SSL_ERROR_ZERO_RETURN:
      last_error_ = "the server closed the connection";
      return Io::closed;
    case SSL_ERROR_SYSCALL:
      if (saved_errno == 0) {
        last_error_ = "the server closed the connection";
        ERR_clear_error();
        return Io::closed;
      }
      last_error_ = std::strerror(saved_errno);
      ERR_clear_error();
      return Io::error;
    default: {
      last_error_ = drain_tls_errors();
      // With SSL_OP_IGNORE_UNEXPECTED_EOF a bare EOF is ZERO_RETURN; what is left is real.
      if (last_error_.empty()) last_error_ = "TLS error";
      return Io::error;
    }
  }
}

Io Link::write(std::string_view bytes, std::size_t& wrote) noexcept {
  wrote = 0;
  if (bytes.empty()) return Io::ok;
  const SigpipeGuard guard;
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_write_ex(ssl_.get(), bytes.data(), bytes.size(), &wrote);
  if (rc == 1) return Io::ok;
  return classify(rc, errno);
}

Io Link::read(char* buffer, std::size_t capacity, std::size_t& got) noexcept {
  got = 0;
  const SigpipeGuard guard;
  ERR_clear_error();
  errno = 0;
  const int rc = SSL_read_ex(ssl_.get(), buffer, capacity, &got);
  if (rc == 1) return Io::ok;
  return classify(rc, errno);
}

bool Link::has_buffered_input() const noexcept { return SSL_pending(ssl_.get()) > 0; }

void Link::goodbye() noexcept {
  if (!ssl_) return;
  const SigpipeGuard guard;
  (void)SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

void Link::close_gracefully(SteadyTime deadline, std::string& late) noexcept {
  goodbye();
  ::shutdown(fd_.get(), SHUT_WR);
  char buffer[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    std::size_t got = 0;
    const Io io = read(buffer, sizeof buffer, got);
    if (io == Io::closed || io == Io::error) return;
    if (io == Io::ok) {
      if (late.size() < protocol::kMaxFrameBytes) late.append(buffer, got);
      continue;
    }
    if (!wait_for(fd_.get(), POLLIN, deadline)) return;
  }
}

}  // namespace iotsocket::client
