// The one owner of a backend push in the master, from the moment it is read to the moment
// it is settled (docs/ARCHITECTURE.md "Data paths", backend -> device): a push for a
// connected device goes to the worker that holds it (the device directory says which), which
// settles it once written whole or hands it back; one for a device that is offline waits
// in the offline queue and goes out, in order, when the device logs in. A copy of every
// push handed to a worker stays here until the worker settles it (master/in_flight.hpp):
// when the worker dies, those go back to their devices' queues. The master's loop owns it;
// nothing here blocks on a device.
//
// Order per device: while anything waits in a device's offline queue, a new push joins
// the queue behind it, and the queue is sent as a whole; so a push never overtakes an
// older one, also across a reconnect. Every push gets a strictly rising stamp when it is
// read (queued_at, in ns); pushes that come back from a closed connection, or from a worker
// that died, are merged into the queue by that stamp, so they take their old places even
// when newer pushes were queued meanwhile.
//
// A device that logs in again while pushes are still on their way to its old connection
// (in the old worker's channel) gets nothing until those are back: this sends the
// old worker a fence, which that worker echoes after handing back every push that came
// before it (the channel keeps order both ways). Meanwhile new pushes for the device wait
// in its queue. Then the queue goes out whole, in order.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string_view>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/channel.hpp"
#include "common/event_sink.hpp"
#include "common/log_limiter.hpp"
#include "common/registry.hpp"
#include "config/config.hpp"
#include "master/in_flight.hpp"
#include "master/offline_queue.hpp"
#include "master/worker_link.hpp"
#include "shm/device_directory.hpp"

namespace iotsocket::master {

class PushDelivery {
 public:
  // `events` gets push_queued for every push stored in the offline queue (also one that
  // came back from a closed connection) and push_expired for every push dropped for good.
  // `workers`: how many there are (0 .. workers-1).
  PushDelivery(const config::Config& config, shm::DeviceDirectory& directory, OfflineQueue& offline,
               DeviceRegistry& registry, EventSink& events, std::size_t workers, WorkerLink& link);

  // A record from the push FIFO.
  void route(protocol::DeviceId device, std::string payload);
  // A worker says: `device` logged in on (slot, conn_generation); send what waits.
  void device_online(std::uint32_t worker, const channel::Message& m);
  // A worker hands back a push it did not write; batches end with more == false.
  void returned(std::uint32_t worker, const channel::Message& m, std::string payload);
  // A worker wrote these pushes whole (or dropped them for good): their copies go.
  void settled(std::uint32_t worker, std::span<const std::uint64_t> seqs);
  // The old worker echoes a fence: every push sent to it before is back.
  void fence_passed(std::uint32_t worker, const channel::Message& m);
  // Worker `worker` died (the one call the master makes): its devices are freed in the
  // directory first, so that they may log in elsewhere at once and a fence it will never
  // echo is passed to the new holder; then every push it had not settled goes back to its
  // device's queue, in its place, and batches it was handing back are put back as far as
  // they came. Returns how many devices were freed.
  std::size_t worker_gone(std::uint32_t worker);
  // Drops queued pushes older than push.offline_max_age (logged); about once a minute.
  void expire(std::chrono::system_clock::time_point now);
  // Drops the queued pushes of devices that are no longer in the registry (iotsocketctl
  // devices remove), looking up at most `budget` devices per call, so that many queued
  // devices never stall the loop: the master calls it once a second.
  void drop_removed(std::size_t budget);
  // The count of refused pushes not logged in an interval that is over (every second), or
  // in the running one (at exit).
  void log_held_back(LimitedWarnings::Clock::time_point now) { refused_log_.log_summary(now); }
  void log_held_back_before_exit(LimitedWarnings::Clock::time_point now) {
    refused_log_.log_final_summary(now);
  }

  struct Counts {
    std::uint64_t routed = 0;    // handed to a worker
    std::uint64_t queued = 0;    // stored for an offline device
    std::uint64_t refused = 0;   // unknown device (also once queued), or no queue (push.offline_max: 0)
    std::uint64_t expired = 0;
    std::uint64_t evicted = 0;
  };
  const Counts& counts() const noexcept { return counts_; }
  // Pushes handed to `worker` and not settled yet.
  std::size_t unsettled(std::uint32_t worker) const { return in_flight_.at(worker).unsettled(); }

 private:
  void requeue(std::vector<std::pair<channel::Message, std::string>> pushes);
  bool send_to(std::uint32_t worker, const channel::Message& m, std::string payload);
  bool send_live(protocol::DeviceId device, const shm::Holder& holder, std::string payload,
                 std::int64_t queued_at_ns);
  void enqueue(protocol::DeviceId device, std::string_view payload, std::int64_t queued_at_ns);
  void put_back(protocol::DeviceId device, std::vector<QueuedPush> pushes);
  void flush_queue(protocol::DeviceId device, const shm::Holder& holder);
  std::int64_t next_stamp();
  void log_dropped(const std::vector<QueuedPush>& pushes, std::string_view why);
  void lost(protocol::DeviceId device, std::size_t count);

  const config::Config& config_;
  shm::DeviceDirectory& directory_;  // who holds each device: where a push goes
  OfflineQueue& offline_;
  DeviceRegistry& registry_;
  EventSink& events_;
  WorkerLink& link_;
  // Per worker, the pushes it was handed and has not settled.
  std::vector<InFlightPushes> in_flight_;
  Counts counts_;
  // A backend can send pushes for unknown devices by the thousand: the first 10 of a
  // minute are logged, the rest counted in one line (all of them in counts_.refused).
  LimitedWarnings refused_log_{"pushes refused", 10, std::chrono::seconds(60)};
  std::int64_t last_stamp_ = 0;
  // push_returned batches being collected, per device, until the one with more == false;
  // with the worker they come from, whose death ends its batches where they are.
  struct Returning {
    std::uint32_t worker = 0;
    std::vector<QueuedPush> pushes;
  };
  std::unordered_map<protocol::DeviceId, Returning> returning_;
  // The connection each device's last live push went to (at most one entry per device
  // that has had one): a login on another connection must fence that one first.
  std::unordered_map<protocol::DeviceId, shm::Holder> sent_to_;
  // Devices waiting for a fence: the old holder the fence went to.
  std::unordered_map<protocol::DeviceId, shm::Holder> fencing_;
  // drop_removed(): the queued devices still to look up in this round.
  std::vector<protocol::DeviceId> removal_sweep_;
  bool clear_to_send(protocol::DeviceId device, const shm::Holder& holder);
  void pass_fence(protocol::DeviceId device);
};

}  // namespace iotsocket::master
