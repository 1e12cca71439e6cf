// One step of non-blocking I/O on a connection, TLS or plain, as a value: the worker's loop
// decides from Io whether to wait for readability, writability or to close.
#pragma once

#include <cstddef>
#include <string>

#include "worker/connection.hpp"

namespace iotsocket::worker {

// Advances the TLS handshake; Io::ok when it is done.
Io tls_handshake(Connection& c) noexcept;

// Reads what is available into buf (up to cap bytes); `got` bytes were read on Io::ok.
Io read_some(Connection& c, char* buf, std::size_t cap, std::size_t& got) noexcept;

// Writes up to len bytes; `wrote` bytes were written on Io::ok. After want_read/want_write
// the caller retries with the same bytes (OpenSSL's rule for a repeated SSL_write).
Io write_some(Connection& c, const char* buf, std::size_t len, std::size_t& wrote) noexcept;

// True when the TLS layer holds decrypted bytes that epoll cannot see.
bool has_buffered_input(const Connection& c) noexcept;

// Sends close_notify once, without waiting for the peer's (the socket closes right after).
void tls_goodbye(Connection& c) noexcept;

// Why the last step failed, for the log line (OpenSSL's queue or errno).
std::string last_io_error(int saved_errno);

}  // namespace iotsocket::worker
