// Where backend pushes come from, as the master reads them: the push FIFO on one node
// (push_fifo.hpp); a JetStream reader when the node is in a cluster. Readiness is one
// descriptor in the master's epoll set, and reading never blocks.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "protocol/record.hpp"

namespace iotsocket::master {

class PushSource {
 public:
  using OnRecord = std::function<void(protocol::Record record)>;
  // A record that is not valid: why, and its bytes as they came (untrusted: made printable
  // before they are logged).
  using OnBad = std::function<void(std::string_view reason, std::string_view line)>;

  virtual ~PushSource() = default;
  // Readable when records wait.
  virtual int fd() const noexcept = 0;
  // For the logs: the FIFO's path, the stream's name.
  virtual const std::string& name() const noexcept = 0;
  // Reads what is available, at most about `budget` bytes (the loop stays fair to the
  // other work), and calls on_record / on_bad for each complete record. Returns false on a
  // read error (errno set), true otherwise.
  virtual bool read_available(std::size_t budget, const OnRecord& on_record, const OnBad& on_bad) = 0;
};

}  // namespace iotsocket::master
