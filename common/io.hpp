// The result of one step of non-blocking I/O, for every socket the code base drives: the
// master/worker channel, the workers' TLS connections, the client's link, the bench's
// streams. Would-block is a value, not an error: want_read / want_write name the readiness
// to wait for (a full channel is want_write, an empty one want_read).
#pragma once

#include <cstdint>

namespace iotsocket {

enum class Io : std::uint8_t { ok, want_read, want_write, closed, error };

}  // namespace iotsocket
