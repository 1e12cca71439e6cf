// One client connection's byte stream, TLS or plain TCP, non-blocking. Would-block is a
// value (Io::want_read / want_write), never an error. Stream owns its socket and its SSL
// object; ClientTls owns the SSL_CTX that all of one run's streams share.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/fd.hpp"
#include "common/io.hpp"
#include "common/expected.hpp"

namespace iotsocket::bench {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const noexcept { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const noexcept { SSL_free(s); }
};

// TLS 1.2+ client context. Without a CA file the server is not verified: the bench talks
// to a dev server with a self-signed certificate.
class ClientTls {
 public:
  static Expected<ClientTls, std::string> make(const std::string& ca_file);
  SSL_CTX* get() const noexcept { return ctx_.get(); }

 private:
  std::unique_ptr<SSL_CTX, SslCtxFree> ctx_;
};

class Stream {
 public:
  // `ctx` null: plain TCP. Otherwise an SSL object is made on the socket.
  static Expected<Stream, std::string> make(Fd socket, SSL_CTX* ctx);

  int fd() const noexcept { return fd_.get(); }
  bool tls() const noexcept { return ssl_ != nullptr; }

  // Drives the TLS handshake; ok when done (at once for plain TCP).
  Io handshake();
  // Reads up to `size` bytes into `buf`; ok with `n` > 0, or closed on EOF/reset.
  Io read(char* buf, std::size_t size, std::size_t& n);
  // Writes from `data`; ok with `n` bytes taken (possibly fewer than data.size()).
  Io write(std::string_view data, std::size_t& n);
  // Best effort close_notify (one non-blocking attempt) before the socket is closed.
  void shutdown() noexcept;

  // What the last error was, for the log (OpenSSL's queue or errno).
  const std::string& last_error() const noexcept { return last_error_; }

 private:
  Stream(Fd fd, SSL* ssl) : fd_(std::move(fd)), ssl_(ssl) {}
  Io ssl_result(int ret);
  Io errno_result(const char* op, Io would_block);

  Fd fd_;
  std::unique_ptr<SSL, SslFree> ssl_;
  std::string last_error_;
};

}  // namespace iotsocket::bench
