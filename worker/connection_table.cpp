#include "worker/connection_table.hpp"

#include <sys/epoll.h>

#include <utility>

namespace iotsocket::worker {

Connection& ConnectionTable::add(std::unique_ptr<Connection> connection) {
  std::uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  connection->slot = slot;
  connection->generation = next_generation_;
  next_generation_ = (next_generation_ + 1) & kGenerationMask;
  if (next_generation_ == 0) next_generation_ = 1;
  slots_[slot] = std::move(connection);
  ++live_;
  return *slots_[slot];
}

bool ConnectionTable::watch(Connection& c) noexcept {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag_of(c);
  if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, c.fd.get(), &ev) != 0) return false;
  c.epoll_events = EPOLLIN;
  return true;
}

Connection* ConnectionTable::find(std::uint64_t t) noexcept {
  const std::uint32_t slot = slot_of(t);
  const auto generation = static_cast<std::uint32_t>(t >> 32);
  if (slot >= slots_.size() || !slots_[slot] || slots_[slot]->generation != generation) {
    return nullptr;
  }
  return slots_[slot].get();
}

void ConnectionTable::remove(Connection& c) noexcept {
  if (c.paused) std::erase(paused_, tag_of(c));  // rare: a paused one closed (hang-up, age)
  const std::uint32_t slot = c.slot;
  slots_[slot].reset();  // closing the socket removes it from epoll
  free_slots_.push_back(slot);
  --live_;
}

std::vector<std::uint64_t> ConnectionTable::tags() const {
  std::vector<std::uint64_t> out;
  out.reserve(live_);
  for (const auto& c : slots_) {
    if (c) out.push_back(tag_of(*c));
  }
  return out;
}

void ConnectionTable::set_interest(Connection& c, std::uint32_t events) noexcept {
  if (c.out && c.out->unsent() > 0) events |= EPOLLOUT;  // pushes wait to be written
  if (!(events & EPOLLIN)) c.arrival.not_watched();
  if (c.epoll_events == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag_of(c);
  if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd.get(), &ev) == 0) c.epoll_events = events;
}

void ConnectionTable::pause(Connection& c) noexcept {
  if (c.paused) return;
  c.paused = true;
  set_interest(c, 0);
  paused_.push_back(tag_of(c));
}

std::vector<std::uint64_t> ConnectionTable::take_paused() noexcept {
  std::vector<std::uint64_t> waiting;
  waiting.swap(paused_);
  return waiting;
}

}  // namespace iotsocket::worker
