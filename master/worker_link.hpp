// The workers as the parts of the master that message them see them: WorkerPool in the
// master, a recorder in unit tests.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/channel.hpp"

namespace iotsocket::master {

class WorkerLink {
 public:
  virtual ~WorkerLink() = default;
  // Hands `m` to `worker` (queued behind others when its channel is full). False when that
  // worker is not running or is finishing: nothing was sent.
  virtual bool send(std::uint32_t worker, const channel::Message& m, std::string_view payload) = 0;
  // Whether send() to `worker` would go.
  virtual bool accepts(std::uint32_t worker) const = 0;
};

}  // namespace iotsocket::master
