#include "master/push_delivery.hpp"

#include <algorithm>
#include <iterator>

#include <spdlog/spdlog.h>

namespace iotsocket::master {
namespace {

using std::chrono::system_clock;

std::int64_t to_ns(system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
system_clock::time_point from_ns(std::int64_t ns) {
  return system_clock::time_point(
      std::chrono::duration_cast<system_clock::duration>(std::chrono::nanoseconds(ns)));
}

}  // namespace

PushDelivery::PushDelivery(const config::Config& config, shm::DeviceDirectory& directory,
                           OfflineQueue& offline, DeviceRegistry& registry, EventSink& events,
                           std::size_t workers, WorkerLink& link)
    : config_(config), directory_(directory), offline_(offline), registry_(registry), events_(events),
      link_(link), in_flight_(workers) {}

// The copy kept is the one sent (a second copy only while it waits in the outbox of a
// full channel).
bool PushDelivery::send_to(std::uint32_t worker, const channel::Message& m, std::string payload) {
  if (worker >= in_flight_.size() || !link_.accepts(worker)) return false;
  const auto [message, kept] = in_flight_[worker].add(m, std::move(payload));
  return link_.send(worker, message, kept);
}

void PushDelivery::settled(std::uint32_t worker, std::span<const std::uint64_t> seqs) {
  for (std::uint64_t seq : seqs) in_flight_.at(worker).settle(seq);
}

std::int64_t PushDelivery::next_stamp() {
  last_stamp_ = std::max(to_ns(system_clock::now()), last_stamp_ + 1);
  return last_stamp_;
}

void PushDelivery::route(protocol::DeviceId device, std::string payload) {
  const std::int64_t stamp = next_stamp();
  if (const auto holder = directory_.holder(device)) {
    if (!clear_to_send(device, *holder)) {
      enqueue(device, payload, stamp);  // goes out when the fence is back
      return;
    }
    if (offline_.has(device)) {
      // Older pushes wait: this one goes behind them, and all of them out in order.
      enqueue(device, payload, stamp);
      flush_queue(device, *holder);
      return;
    }
    if (send_live(device, *holder, payload, stamp)) return;
  } else {
    // Only an offline push costs a registry lookup: a connected device is a known one
    // (and iotsocketctl closes a device it removes).
    auto found = registry_.find(device);
    if (found && !found->has_value()) {
      ++counts_.refused;
      refused_log_.warn(LimitedWarnings::Clock::now(), "not_in_registry",
                        "push refused: device={} is not in the registry", protocol::to_string(device));
      return;
    }
    if (!found) {
      spdlog::warn("push for device={}: registry lookup failed ({}); queued anyway",
                   protocol::to_string(device), found.error());
    }
  }
  enqueue(device, payload, stamp);
}

bool PushDelivery::send_live(protocol::DeviceId device, const shm::Holder& holder,
                           std::string payload, std::int64_t queued_at_ns) {
  channel::Message m{.cmd = channel::Cmd::push,
                     .device = device.value,
                     .slot = holder.slot,
                     .conn_generation = holder.conn_generation,
                     .queued_at_ns = queued_at_ns};
  if (!send_to(holder.worker, m, std::move(payload))) return false;
  ++counts_.routed;
  sent_to_[device] = holder;
  return true;
}

void PushDelivery::enqueue(protocol::DeviceId device, std::string_view payload,
                         std::int64_t queued_at_ns) {
  if (config_.push.offline_max == 0) {
    ++counts_.refused;
    refused_log_.warn(LimitedWarnings::Clock::now(), "offline_max_0",
                      "push refused: device={} is not connected and push.offline_max is 0",
                      protocol::to_string(device));
    events_.push_expired(device);
    return;
  }
  auto evicted = offline_.push(device, payload, from_ns(queued_at_ns));
  if (!evicted) {
    spdlog::error("push for device={} lost: the offline queue failed: {}",
                  protocol::to_string(device), evicted.error());
    events_.push_expired(device);
    return;
  }
  ++counts_.queued;
  events_.push_queued(device);
  spdlog::debug("push queued device={} ({} waiting)", protocol::to_string(device),
                offline_.count(device));
  counts_.evicted += evicted->size();
  log_dropped(*evicted, "evicted (push.offline_max reached)");
}

void PushDelivery::flush_queue(protocol::DeviceId device, const shm::Holder& holder) {
  auto taken = offline_.take(device, system_clock::now());
  if (!taken) {
    spdlog::error("offline queue of device={}: {}", protocol::to_string(device), taken.error());
    return;
  }
  counts_.expired += taken->expired.size();
  log_dropped(taken->expired, "expired (push.offline_max_age)");
  auto& pushes = taken->pushes;
  for (std::size_t i = 0; i < pushes.size(); ++i) {
    if (!send_live(device, holder, pushes[i].payload, to_ns(pushes[i].queued_at))) {
      // The worker is gone: the rest waits for the device's next login.
      std::vector<QueuedPush> rest(std::make_move_iterator(pushes.begin() + static_cast<std::ptrdiff_t>(i)),
                                   std::make_move_iterator(pushes.end()));
      auto evicted = offline_.requeue_front(device, rest, system_clock::now());
      if (!evicted) {
        spdlog::error("{} pushes for device={} lost: the offline queue failed: {}", rest.size(),
                      protocol::to_string(device), evicted.error());
        lost(device, rest.size());
        return;
      }
      log_dropped(*evicted, "evicted (push.offline_max reached)");
      return;
    }
  }
}

void PushDelivery::device_online(std::uint32_t worker, const channel::Message& m) {
  const protocol::DeviceId device{m.device};
  const shm::Holder holder{.worker = worker, .slot = m.slot, .conn_generation = m.conn_generation};
  if (clear_to_send(device, holder) && offline_.has(device)) flush_queue(device, holder);
}

// Whether pushes may go to `holder`: not while some may still be on their way to an earlier
// connection of the device. Then that connection's worker gets a fence, and the answer is
// no until the fence is back. (The table names a new holder as soon as it claims the
// device, before its device_online reaches us: route() asks here too.)
bool PushDelivery::clear_to_send(protocol::DeviceId device, const shm::Holder& holder) {
  if (fencing_.contains(device)) return false;
  const auto last = sent_to_.find(device);
  if (last == sent_to_.end() || last->second == holder) return true;
  const shm::Holder old = last->second;
  const channel::Message fence{.cmd = channel::Cmd::fence,
                               .device = device.value,
                               .slot = old.slot,
                               .conn_generation = old.conn_generation};
  if (link_.send(old.worker, fence, {})) {
    fencing_.emplace(device, old);
    spdlog::debug("device={} logged in again: its pushes wait for those on their way to worker {}",
                  protocol::to_string(device), old.worker);
    return false;
  }
  sent_to_.erase(last);  // that worker is gone: what it had was requeued
  return true;
}

void PushDelivery::fence_passed(std::uint32_t worker, const channel::Message& m) {
  const protocol::DeviceId device{m.device};
  const auto it = fencing_.find(device);
  if (it == fencing_.end() || it->second.worker != worker) return;
  pass_fence(device);
}

std::size_t PushDelivery::worker_gone(std::uint32_t worker) {
  // The replay marks need no floor: a worker raises a device's mark before the frame goes
  // anywhere, so a frame it died before marking reached no backend either.
  const std::size_t freed = directory_.release_worker(worker, protocol::Time{});
  InFlightPushes& in_flight = in_flight_.at(worker);
  if (in_flight.unsettled() > 0) {
    spdlog::info("worker {}: {} pushes the worker had not written go back to their devices' "
                 "queues", worker, in_flight.unsettled());
    requeue(in_flight.take_all());
  }
  for (auto it = returning_.begin(); it != returning_.end();) {
    if (it->second.worker != worker) {
      ++it;
      continue;
    }
    put_back(it->first, std::move(it->second.pushes));
    it = returning_.erase(it);
  }
  std::vector<protocol::DeviceId> passed;
  for (const auto& [device, old] : fencing_) {
    if (old.worker == worker) passed.push_back(device);
  }
  for (protocol::DeviceId device : passed) pass_fence(device);
  std::erase_if(sent_to_, [worker](const auto& entry) { return entry.second.worker == worker; });
  return freed;
}

// Everything that was on its way to the old connection is back in the queue: send the
// queue to whoever holds the device now.
void PushDelivery::pass_fence(protocol::DeviceId device) {
  spdlog::debug("device={}: the pushes on their way to its old connection are back",
                protocol::to_string(device));
  fencing_.erase(device);
  sent_to_.erase(device);
  const auto holder = directory_.holder(device);
  if (holder && offline_.has(device)) flush_queue(device, *holder);
}

void PushDelivery::returned(std::uint32_t worker, const channel::Message& m, std::string payload) {
  in_flight_.at(worker).settle(m.seq);
  const protocol::DeviceId device{m.device};
  auto& batch = returning_[device];
  batch.worker = worker;
  batch.pushes.push_back(QueuedPush{device, std::move(payload), from_ns(m.queued_at_ns)});
  if (m.more) return;
  std::vector<QueuedPush> pushes = std::move(batch.pushes);
  returning_.erase(device);
  put_back(device, std::move(pushes));
  // Logged in again elsewhere meanwhile: send them there. Not to the connection that gave
  // them back, which would only give them back again.
  const auto holder = directory_.holder(device);
  const shm::Holder from{.worker = worker, .slot = m.slot, .conn_generation = m.conn_generation};
  if (holder && *holder != from && clear_to_send(device, *holder)) flush_queue(device, *holder);
}

void PushDelivery::requeue(std::vector<std::pair<channel::Message, std::string>> pushes) {
  std::unordered_map<protocol::DeviceId, std::vector<QueuedPush>> by_device;
  for (auto& [m, payload] : pushes) {
    const protocol::DeviceId device{m.device};
    by_device[device].push_back(QueuedPush{device, std::move(payload), from_ns(m.queued_at_ns)});
  }
  for (auto& [device, batch] : by_device) put_back(device, std::move(batch));
}

// Merges `pushes` into the device's queue by their stamps: a rare path (a connection closed
// with pushes unsent), so it simply takes the queue out and writes the merge back.
void PushDelivery::put_back(protocol::DeviceId device, std::vector<QueuedPush> pushes) {
  const auto now = system_clock::now();
  auto taken = offline_.take(device, now);
  if (!taken) {
    spdlog::error("{} pushes for device={} lost: the offline queue failed: {}", pushes.size(),
                  protocol::to_string(device), taken.error());
    lost(device, pushes.size());
    return;
  }
  counts_.expired += taken->expired.size();
  log_dropped(taken->expired, "expired (push.offline_max_age)");
  // Queued again, from the backend's view: said before any of them can be evicted below.
  for (std::size_t i = 0; i < pushes.size(); ++i) events_.push_queued(device);
  std::vector<QueuedPush> merged;
  merged.reserve(pushes.size() + taken->pushes.size());
  std::merge(std::make_move_iterator(taken->pushes.begin()),
             std::make_move_iterator(taken->pushes.end()), std::make_move_iterator(pushes.begin()),
             std::make_move_iterator(pushes.end()), std::back_inserter(merged),
             [](const QueuedPush& a, const QueuedPush& b) { return a.queued_at < b.queued_at; });
  for (auto& p : merged) {
    auto evicted = offline_.push(device, p.payload, p.queued_at);
    if (!evicted) {
      spdlog::error("push for device={} lost: the offline queue failed: {}",
                    protocol::to_string(device), evicted.error());
      events_.push_expired(device);
      continue;
    }
    counts_.evicted += evicted->size();
    log_dropped(*evicted, "evicted (push.offline_max reached)");
  }
}

void PushDelivery::expire(system_clock::time_point now) {
  auto expired = offline_.expire(now);
  if (!expired) {
    spdlog::error("offline queue: {}", expired.error());
    return;
  }
  counts_.expired += expired->size();
  log_dropped(*expired, "expired (push.offline_max_age)");
}

void PushDelivery::drop_removed(std::size_t budget) {
  if (removal_sweep_.empty()) {
    removal_sweep_ = offline_.devices();  // the next round, from the next call on
    return;
  }
  for (std::size_t i = 0; i < budget && !removal_sweep_.empty(); ++i) {
    const protocol::DeviceId device = removal_sweep_.back();
    removal_sweep_.pop_back();
    if (!offline_.has(device)) continue;
    const auto found = registry_.find(device);
    if (!found || found->has_value()) continue;  // known, or the lookup failed: kept
    const auto dropped = offline_.drop(device);
    if (!dropped) {
      spdlog::error("offline queue of device={}: {}", protocol::to_string(device), dropped.error());
      continue;
    }
    spdlog::warn("device={} is no longer in the registry: its {} queued pushes are dropped",
                 protocol::to_string(device), *dropped);
    counts_.refused += *dropped;
    lost(device, *dropped);
  }
}

void PushDelivery::log_dropped(const std::vector<QueuedPush>& pushes, std::string_view why) {
  const auto now = system_clock::now();
  for (const auto& p : pushes) {
    const auto age = std::chrono::duration_cast<std::chrono::seconds>(now - p.queued_at);
    spdlog::warn("push for device={} {}: queued {} s ago, {} bytes", protocol::to_string(p.device),
                 why, age.count(), p.payload.size());
    events_.push_expired(p.device);
  }
}

// Pushes the offline queue failed to keep (logged by the caller): they will not be delivered.
void PushDelivery::lost(protocol::DeviceId device, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) events_.push_expired(device);
}

}  // namespace iotsocket::master
