#include "worker/tls_io.hpp"

#include <openssl/err.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace iotsocket::worker {
namespace {

Io classify(SSL* ssl, int ret) noexcept {
  switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
      return Io::want_read;
    case SSL_ERROR_WANT_WRITE:
      return Io::want_write;
    case SSL_ERROR_ZERO_RETURN:
      return Io::closed;
    case SSL_ERROR_SYSCALL:
      // With SSL_OP_IGNORE_UNEXPECTED_EOF a bare EOF is ZERO_RETURN; here errno tells.
      return errno == 0 ? Io::closed : Io::error;
    default:
      return Io::error;
  }
}

}  // namespace

Io tls_handshake(Connection& c) noexcept {
  if (!c.ssl) return Io::ok;
  errno = 0;
  ERR_clear_error();
  int ret = SSL_do_handshake(c.ssl.get());
  return ret == 1 ? Io::ok : classify(c.ssl.get(), ret);
}

Io read_some(Connection& c, char* buf, std::size_t cap, std::size_t& got) noexcept {
  got = 0;
  if (c.ssl) {
    errno = 0;
    ERR_clear_error();
    int ret = SSL_read_ex(c.ssl.get(), buf, cap, &got);
    return ret == 1 ? Io::ok : classify(c.ssl.get(), ret);
  }
  for (;;) {
    ssize_t n = ::recv(c.fd.get(), buf, cap, 0);
    if (n > 0) {
      got = static_cast<std::size_t>(n);
      return Io::ok;
    }
    if (n == 0) return Io::closed;
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return Io::want_read;
    if (errno == ECONNRESET) return Io::closed;
    return Io::error;
  }
}

Io write_some(Connection& c, const char* buf, std::size_t len, std::size_t& wrote) noexcept {
  wrote = 0;
  if (c.ssl) {
    errno = 0;
    ERR_clear_error();
    int ret = SSL_write_ex(c.ssl.get(), buf, len, &wrote);
    return ret == 1 ? Io::ok : classify(c.ssl.get(), ret);
  }
  for (;;) {
    ssize_t n = ::send(c.fd.get(), buf, len, MSG_NOSIGNAL);
    if (n >= 0) {
      wrote = static_cast<std::size_t>(n);
      return Io::ok;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return Io::want_write;
    if (errno == ECONNRESET || errno == EPIPE) return Io::closed;
    return Io::error;
  }
}

bool has_buffered_input(const Connection& c) noexcept {
  return c.ssl && SSL_has_pending(c.ssl.get()) == 1;
}

void tls_goodbye(Connection& c) noexcept {
  if (!c.ssl || !SSL_is_init_finished(c.ssl.get())) return;
  ERR_clear_error();
  (void)SSL_shutdown(c.ssl.get());  // one try: the socket closes right after
  ERR_clear_error();
}

std::string last_io_error(int saved_errno) {
  std::string tls = drain_tls_errors();
  if (!tls.empty()) return tls;
  if (saved_errno != 0) return std::strerror(saved_errno);
  return "connection closed by peer";
}

}  // namespace iotsocket::worker
