// What the registry keeps of a device's session when it ends (`iotsocketctl devices show`
// reads it): why it closed, the peer, when it started, the clock skew of its last frames.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

#include "common/registry.hpp"
#include "worker/connection.hpp"

namespace iotsocket::worker {

inline SessionFacts session_facts(const Connection& c, std::string_view close_reason) {
  SessionFacts facts{.close_reason = close_reason, .peer = c.peer.to_string()};
  if (c.login_unix > 0) facts.login = std::chrono::sys_seconds(std::chrono::seconds(c.login_unix));
  if (c.skew.any()) facts.skew = c.skew.value();
  return facts;
}

}  // namespace iotsocket::worker
