// One TLS connection to the server: open() resolves the host, connects, handshakes and
// authenticates the server within a deadline; then non-blocking reads and writes whose
// would-block is a value. Knows nothing of IOT/1.1.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>

#include "client/trust.hpp"
#include "common/fd.hpp"
#include "common/io.hpp"
#include "common/tls.hpp"
#include "iotsocket/client.hpp"
#include "common/expected.hpp"

namespace iotsocket::client {

using SteadyTime = std::chrono::steady_clock::time_point;
inline SteadyTime steady_now() noexcept { return std::chrono::steady_clock::now(); }

class Link {
 public:
  // A connected, authenticated link, or the error that says why not (server_gone,
  // tls_failed, certificate_rejected, pin_mismatch). options.connect_timeout bounds the TCP
  // connect (shared among the host's addresses, so that one that drops packets leaves
  // time for the next) and, again, the TLS handshake.
  static Expected<Link, Error> open(const Options& options, const Trust& trust, SSL_CTX* ctx);

  Link(Link&&) noexcept = default;
  Link& operator=(Link&&) noexcept = default;

  int fd() const noexcept { return fd_.get(); }
  const std::string& peer() const noexcept { return peer_; }
  std::string server_pin() const;

  // Up to `bytes.size()` bytes; `wrote` of them went out on Io::ok. After a want_* the
  // caller retries with the same bytes (OpenSSL's rule).
  Io write(std::string_view bytes, std::size_t& wrote) noexcept;
  // What is there, up to `capacity`; `got` bytes on Io::ok.
  Io read(char* buffer, std::size_t capacity, std::size_t& got) noexcept;
  // Decrypted bytes waiting in OpenSSL, which poll() cannot see.
  bool has_buffered_input() const noexcept;
  // Sends close_notify (once, without waiting for the server's).
  void goodbye() noexcept;
  // Sends close_notify and reads until the server closes too or the deadline passes, so
  // that the server has seen the end of this connection. What it reads meanwhile (pushes
  // already on their way) is appended to `late`, up to one maximal frame.
  void close_gracefully(SteadyTime deadline, std::string& late) noexcept;
  // Why the last read or write failed.
  const std::string& last_error() const noexcept { return last_error_; }

 private:
  Link() = default;
  Io classify(int result, int saved_errno) noexcept;

  Fd fd_;
  Ssl ssl_;
  std::string peer_;
  std::string last_error_;
};

}  // namespace iotsocket::client
