#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>
#include <string>

#include "ctl/devices.hpp"
#include "ctl/server.hpp"
#include "common/fd.hpp"
#include "protocol/encoder.hpp"
#include "protocol/errors.hpp"
#include "protocol/record.hpp"

namespace iotsocket::ctl {
namespace {

// The server refuses a push for a device that is not in the registry (and logs it); the
// backend developer who typed the command hears it here, with exit 1. A registry that
// cannot be read (a backend user outside group iotsocket) leaves the decision to the server.
bool known_device(const config::Config& config, protocol::DeviceId id) {
  const std::string& path = config.devices.sqlite;
  const auto cannot_check = [](const std::string& why) {
    std::cerr << "iotsocketctl: warning: cannot check the registry (" << why
              << "); the push is sent and the server decides\n";
    return true;
  };
  auto registry = DeviceRegistry::open(path, DeviceRegistry::Mode::read_only);
  if (!registry) return cannot_check(registry.error());
  const auto found = registry->find(id);
  if (!found) return cannot_check(found.error());
  const std::string name = protocol::to_string(id);
  if (!found->has_value()) {
    fail("no device " + name + " in the registry " + path +
         ": the server would refuse the push (add it with: iotsocketctl devices add " + name + ")");
    return false;
  }
  if (!(*found)->enabled) {
    std::cerr << "iotsocketctl: note: device " << name
              << " is disabled: the push waits in the offline queue until it is enabled and logs in\n";
  }
  return true;
}

}  // namespace

int push(const config::Config& config, protocol::DeviceId id, const std::string& payload) {
  if (auto error = protocol::payload_error(payload)) {
    return fail(std::string("payload refused: ") + std::string(protocol::name(*error)) +
                " (a push body is 5 to 62534 bytes after |#| is removed and whitespace stripped)");
  }
  if (!known_device(config, id)) return kExitFailed;
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
