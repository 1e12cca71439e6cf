// Opening a FIFO's write end the way the server's writers need it (the inbound sink, the
// events sink): without waiting for a reader, refusing a path that is not a FIFO, and with
// a pipe made bigger where the kernel allows it (a bigger pipe absorbs bursts; an
// unprivileged process may be refused, which is fine).
#pragma once

#include <string>

#include "common/fd.hpp"
#include "common/expected.hpp"

namespace iotsocket {

// The descriptor (O_WRONLY | O_NONBLOCK | O_CLOEXEC), or why not as an errno value: ENXIO
// (no reader yet, the normal state before the backend starts), ENOTSUP (the path is not a
// FIFO), or what open() said.
Expected<Fd, int> open_fifo_writer(const std::string& path) noexcept;

}  // namespace iotsocket
