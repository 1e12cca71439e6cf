#include "master/acceptor.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace iotsocket::master {

Acceptor::Acceptor(std::vector<Listener> listeners, int epoll, std::uint64_t tag,
                   WorkerPool& pool, const config::Config& config, const shm::DeviceTable& table)
    : listeners_(std::move(listeners)),
      epoll_(epoll),
      tag_(tag),
      pool_(pool),
      config_(config),
      table_(table) {
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    // Without interest: connections wait in the backlog until a worker is ready.
    epoll_event off{};
    off.data.u64 = tag_ | i;
    ::epoll_ctl(epoll_, EPOLL_CTL_ADD, listeners_[i].fd.get(), &off);
    spdlog::info("listening on {}", listeners_[i].name);
  }
}

void Acceptor::on_listener(std::size_t index) {
  for (int i = 0; i < kAcceptBatch && accepting_ && index < listeners_.size(); ++i) {
    PeerAddress peer;
    peer.length = sizeof peer.storage;
    const int fd = ::accept4(listeners_[index].fd.get(), reinterpret_cast<sockaddr*>(&peer.storage),
                             &peer.length, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      fd_shortage_logged_ = false;
      hand_off(Fd(fd), peer);
      continue;
    }
    if (errno == EAGAIN || errno == EINTR) return;
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
      pause_for_fd_shortage(index);
      return;
    }
    // ECONNABORTED and the network errors accept(2) passes on: that connection only.
  }
}

// The pending connection stays in the backlog; accepting again at once would spin.
void Acceptor::pause_for_fd_shortage(std::size_t index) {
  if (!fd_shortage_logged_) {
    spdlog::warn("accept() on {} failed: {}; pausing accept for {} ms", listeners_[index].name,
                 std::strerror(errno), kPauseOnFdShortage.count());
    fd_shortage_logged_ = true;
  }
  set_accepting(false);
  resume_at_ = Clock::now() + kPauseOnFdShortage;
}

void Acceptor::hand_off(Fd socket, const PeerAddress& peer) {
  const IpKey ip = ip_key_of(peer);
  if (over_caps(ip)) return;  // closed: no TLS work for a refused connection
  if (every_worker_behind()) {
    ++refused_.workers_behind;  // shed: the device retries later, no one waits behind it
    return;
  }
  ++connections_;
  ++per_ip_[ip];
  if (!parked_.empty() || !send_to_worker(socket, peer)) {
    // Every channel is full (or others wait already, and order is kept): park it.
    parked_.push_back(Parked{std::move(socket), peer});
    if (parked_.size() >= kMaxParked) set_accepting(false);
  }
}

bool Acceptor::over_caps(const IpKey& ip) {
  if (connections_ >= config_.limits.max_connections) {
    ++refused_.max_connections;
    return true;
  }
  if (config_.limits.per_ip != 0) {
    const auto it = per_ip_.find(ip);
    if (it != per_ip_.end() && it->second >= config_.limits.per_ip) {
      ++refused_.per_ip;
      return true;
    }
  }
  return false;
}

bool Acceptor::behind(std::uint32_t worker) const {
  return shm::WorkerCounters::get(table_.counters(worker).handshakes_deferred) >= kBehindHandshakes;
}

bool Acceptor::every_worker_behind() const {
  bool any_ready = false;
  for (std::uint32_t i = 0; i < pool_.size(); ++i) {
    if (pool_.at(i).state != WorkerState::ready) continue;
    any_ready = true;
    if (!behind(i)) return false;
  }
  return any_ready;
}

// Sends the socket to the least-loaded ready worker whose channel has room, a worker behind
// on handshakes only when no other takes it. False when none has room; the socket stays
// with the caller.
bool Acceptor::send_to_worker(Fd& socket, const PeerAddress& peer) {
  std::vector<const WorkerProcess*> skip;
  for (std::uint32_t i = 0; i < pool_.size(); ++i) {
    if (behind(i)) skip.push_back(&pool_.at(i));
  }
  const auto behind_ones = static_cast<std::ptrdiff_t>(skip.size());
  if (send_to_least_loaded(socket, peer, skip)) return true;
  skip.erase(skip.begin(), skip.begin() + behind_ones);  // now the full ones: try the rest
  return send_to_least_loaded(socket, peer, skip);
}

// Tries the ready workers not in `skip`, least loaded first; adds each full one to `skip`.
bool Acceptor::send_to_least_loaded(Fd& socket, const PeerAddress& peer,
                                    std::vector<const WorkerProcess*>& skip) {
  for (WorkerProcess* w = pool_.least_loaded(skip); w != nullptr; w = pool_.least_loaded(skip)) {
    if (pool_.hand_over(*w, socket.get(), peer) == Io::ok) {
      socket.reset();  // the worker holds its own copy
      return true;
    }
    skip.push_back(w);
  }
  return false;
}

void Acceptor::hand_off_parked() {
  while (!parked_.empty()) {
    if (pool_.least_loaded() == nullptr) return;
    Parked& p = parked_.front();
    if (!send_to_worker(p.socket, p.peer)) return;
    parked_.pop_front();
  }
}

void Acceptor::tick(Clock::time_point now) {
  hand_off_parked();
  if (!stopped_ && !accepting_ && now >= resume_at_ && pool_.least_loaded() != nullptr &&
      parked_.size() < kMaxParked) {
    set_accepting(true);
  }
}

void Acceptor::log_refusals() {
  if (refused_.max_connections + refused_.per_ip + refused_.workers_behind == 0) return;
  spdlog::warn("refused at accept in the last second: {} over max_connections, {} over the "
               "per-address cap, {} shed while every worker was behind on handshakes",
               refused_.max_connections, refused_.per_ip, refused_.workers_behind);
  refused_before_.max_connections += refused_.max_connections;
  refused_before_.per_ip += refused_.per_ip;
  refused_before_.workers_behind += refused_.workers_behind;
  refused_ = {};
}

std::optional<Acceptor::Clock::time_point> Acceptor::next_wakeup(Clock::time_point now) const {
  std::optional<Clock::time_point> next;
  if (!parked_.empty()) next = now + kParkedRetry;
  if (!accepting_ && !stopped_ && resume_at_ > now && (!next || resume_at_ < *next)) next = resume_at_;
  return next;
}

void Acceptor::set_accepting(bool on) {
  if (accepting_ == on) return;
  accepting_ = on;
  for (std::size_t i = 0; i < listeners_.size(); ++i) {
    epoll_event ev{};
    ev.events = on ? std::uint32_t{EPOLLIN} : 0u;
    ev.data.u64 = tag_ | i;
    ::epoll_ctl(epoll_, EPOLL_CTL_MOD, listeners_[i].fd.get(), &ev);
  }
}

void Acceptor::stop() {
  set_accepting(false);
  stopped_ = true;
  listeners_.clear();
}

// ---- connections that end -------------------------------------------------------------

void Acceptor::connection_closed(const IpKey& ip, bool counted) {
  if (counted && connections_ > 0) --connections_;
  const auto it = per_ip_.find(ip);
  if (it != per_ip_.end() && --it->second == 0) per_ip_.erase(it);
}

void Acceptor::worker_gone(const WorkerProcess& w) {
  for (const auto& [ip, count] : w.per_ip) {
    const auto it = per_ip_.find(ip);
    if (it != per_ip_.end() && (it->second -= std::min(it->second, count)) == 0) per_ip_.erase(it);
  }
  connections_ -= std::min(connections_, w.connections);
}

RefusalCounts Acceptor::refused() const noexcept {
  return RefusalCounts{.max_connections = refused_before_.max_connections + refused_.max_connections,
                       .per_ip = refused_before_.per_ip + refused_.per_ip,
                       .workers_behind = refused_before_.workers_behind + refused_.workers_behind};
}

}  // namespace iotsocket::master
