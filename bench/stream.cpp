#include "bench/stream.hpp"

#include <openssl/err.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace iotsocket::bench {
namespace {

std::string openssl_errors() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

bool is_reset(int err) { return err == ECONNRESET || err == EPIPE; }

}  // namespace

Expected<ClientTls, std::string> ClientTls::make(const std::string& ca_file) {
  ClientTls t;
  t.ctx_.reset(SSL_CTX_new(TLS_client_method()));
  if (!t.ctx_) return Unexpected{"SSL_CTX_new() failed: " + openssl_errors()};
  SSL_CTX* c = t.ctx_.get();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  // A peer that closes without close_notify is a close, not a TLS error: the server
  // closes a refused device that way.
  SSL_CTX_set_options(c, SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Partial writes keep the loop non-blocking; released buffers keep 10k idle
  // connections small.
  SSL_CTX_set_mode(c, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);  // every device does a full handshake
  if (ca_file.empty()) {
    SSL_CTX_set_verify(c, SSL_VERIFY_NONE, nullptr);
  } else {
    if (SSL_CTX_load_verify_locations(c, ca_file.c_str(), nullptr) != 1) {
      return Unexpected{"--ca " + ca_file + ": " + openssl_errors()};
    }
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER, nullptr);
  }
  return t;
}

Expected<Stream, std::string> Stream::make(Fd socket, SSL_CTX* ctx) {
  if (ctx == nullptr) return Stream(std::move(socket), nullptr);
  ERR_clear_error();
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return Unexpected{"SSL_new() failed: " + openssl_errors()};
  Stream s(std::move(socket), ssl);
  if (SSL_set_fd(ssl, s.fd()) != 1) return Unexpected{"SSL_set_fd() failed: " + openssl_errors()};
  SSL_set_connect_state(ssl);
  return s;
}

Io Stream::handshake() {
  if (!ssl_) return Io::ok;
  ERR_clear_error();
  return ssl_result(SSL_do_handshake(ssl_.get()));
}

Io Stream::read(char* buf, std::size_t size, std::size_t& n) {
  n = 0;
  if (!ssl_) {
    const ssize_t r = ::recv(fd(), buf, size, 0);
    if (r > 0) n = static_cast<std::size_t>(r);
    if (r > 0) return Io::ok;
    if (r == 0) {
      last_error_ = "EOF";
      return Io::closed;
    }
    return errno_result("recv()", Io::want_read);
  }
  ERR_clear_error();
  const int r = SSL_read_ex(ssl_.get(), buf, size, &n);
  return r == 1 ? Io::ok : ssl_result(r);
}

Io Stream::write(std::string_view data, std::size_t& n) {
  n = 0;
  if (!ssl_) {
    const ssize_t r = ::send(fd(), data.data(), data.size(), MSG_NOSIGNAL);
    if (r >= 0) n = static_cast<std::size_t>(r);
    return r >= 0 ? Io::ok : errno_result("send()", Io::want_write);
  }
  ERR_clear_error();
  const int r = SSL_write_ex(ssl_.get(), data.data(), data.size(), &n);
  return r == 1 ? Io::ok : ssl_result(r);
}

void Stream::shutdown() noexcept {
  if (!ssl_) return;
  ERR_clear_error();
  if (SSL_is_init_finished(ssl_.get())) (void)SSL_shutdown(ssl_.get());
  ERR_clear_error();
}

Io Stream::errno_result(const char* op, Io would_block) {
  const int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR) return would_block;
  last_error_ = std::string(op) + ": " + std::strerror(err);
  return is_reset(err) ? Io::closed : Io::error;
}

Io Stream::ssl_result(int ret) {
  const int err = errno;
  switch (SSL_get_error(ssl_.get(), ret)) {
    case SSL_ERROR_NONE: return Io::ok;
    case SSL_ERROR_WANT_READ: return Io::want_read;
    case SSL_ERROR_WANT_WRITE: return Io::want_write;
    case SSL_ERROR_ZERO_RETURN:
      last_error_ = "EOF";
      return Io::closed;
    case SSL_ERROR_SYSCALL:
      last_error_ = openssl_errors();
      if (last_error_.empty()) last_error_ = err == 0 ? "EOF" : std::strerror(err);
      return (err == 0 || is_reset(err)) ? Io::closed : Io::error;
    default:
      last_error_ = openssl_errors();
      return Io::error;
  }
}

}  // namespace iotsocket::bench
