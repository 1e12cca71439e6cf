#include "worker/deadlines.hpp"

#include <algorithm>

#include "worker/connection_table.hpp"

namespace iotsocket::worker {

SteadyTime Deadlines::deadline_of(const Connection& c) const noexcept {
  const SteadyTime too_old = c.accepted_at + timeouts_.max_connection_age;
  switch (c.state) {
    case ConnState::handshake:
      return c.accepted_at + timeouts_.handshake;
    case ConnState::awaiting_login:
      return std::min(c.phase_started_at + timeouts_.first_frame, too_old);
    case ConnState::live:
      return c.paused ? too_old : std::min(c.last_frame_at + timeouts_.idle, too_old);
  }
  return too_old;
}

void Deadlines::schedule(Connection& c) {
  const SteadyTime at = deadline_of(c);
  if (c.queued_at != SteadyTime{} && c.queued_at <= at) return;  // an entry will come first
  c.queued_at = at;
  queue_.push(at, c.slot, c.generation);
}

Deadlines::Due Deadlines::next_due(SteadyTime now, ConnectionTable& connections) {
  while (!queue_.empty() && queue_.top().at <= now) {
    const DeadlineEntry e = queue_.top();
    queue_.pop();
    Connection* c = connections.find(ConnectionTable::tag(e.slot, e.generation));
    if (c == nullptr || c->queued_at != e.at) continue;  // closed, or a stale entry
    c->queued_at = SteadyTime{};
    if (deadline_of(*c) > now) {
      schedule(*c);
      continue;
    }
    const bool too_old = now >= c->accepted_at + timeouts_.max_connection_age;
    switch (c->state) {
      case ConnState::handshake:
        return {c, "handshake_timeout"};
      case ConnState::awaiting_login:
        return {c, too_old ? "max_age" : "first_frame_timeout"};
      case ConnState::live:
        return {c, too_old ? "max_age" : "idle_timeout"};
    }
  }
  return {};
}

}  // namespace iotsocket::worker
