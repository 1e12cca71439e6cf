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

// True when the TLS layer holds decrypted bytes that epoll cannot see.
bool has_buffered_input(const Connection& c) noexcept;

// Sends close_notify once, without waiting for the peer's (the socket closes right after).
void tls_goodbye(Connection& c) noexcept;

// Why the last step failed, for the log line (OpenSSL's queue or errno).
std::string last_io_error(int saved_errno);

}  // namespace iotsocket::worker
