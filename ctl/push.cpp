#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "ctl/devices.hpp"
#include "ctl/server.hpp"
#include "common/fd.hpp"
#include "protocol/encoder.hpp"
#include "protocol/errors.hpp"
#include "protocol/record.hpp"

namespace iotsocket::ctl {

int push(const config::Config& config, protocol::DeviceId id, const std::string& payload) {
  if (auto error = protocol::payload_error(payload)) {
    return fail(std::string("payload refused: ") + std::string(protocol::name(*error)) +
                " (a push body is 5 to 62534 bytes after |#| is removed and whitespace stripped)");
  }
  std::string line;
  protocol::append_device_id(line, id);
  line += ' ';
  protocol::append_escaped(line, payload);
  line += '\n';
  const std::string& path = config.fifo.push;
  // Non-blocking open fails at once (ENXIO) when no server reads the FIFO.
  Fd fifo(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fifo) {
    if (errno == ENXIO) return fail("no server reads " + path + " (is iotsocketd running?)");
    return fail("cannot open fifo.push " + path + ": " + std::strerror(errno));
  }
  // Blocking from here: a long record is written whole even when the pipe is full.
  ::fcntl(fifo.get(), F_SETFL, ::fcntl(fifo.get(), F_GETFL) & ~O_NONBLOCK);
  std::size_t done = 0;
  while (done < line.size()) {
    const ssize_t n = ::write(fifo.get(), line.data() + done, line.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return fail("writing " + path + " failed: " + std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  return kExitOk;
}

}  // namespace iotsocket::ctl
