// OfflineQueue: the pushes a backend sent for a device that was not connected, kept in a
// SQLite file across server restarts and handed out in order when the device logs in.
// Bounded per device by count (beyond max_per_device the oldest are evicted) and by age
// (older than max_age they expire); what is evicted or expired comes back to the caller,
// which logs it.
//
// Used by the master only: one process, one thread, the only writer of its file. Owns one
// sqlite3 connection, its prepared statements, and a count of pushes per device that
// mirrors the table (loaded at open, changed only after a COMMIT), so that has()/count()
// never touch SQLite. Move-only; a moved-from queue may only be destroyed or assigned to.
// A connection must not cross fork(): a child process must not use the master's queue.
//
// Never throws (the master's loop calls it): a failure comes back as an error naming the
// file, the operation and SQLite's message, and leaves the file and the counts as they were.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/expected.hpp"  // Status
#include "common/sqlite.hpp"
#include "protocol/device_id.hpp"

namespace iotsocket::master {

struct OfflineOptions {
  std::string path;                         // SQLite file (created when missing, WAL mode)
  std::uint32_t max_per_device = 100;       // oldest evicted beyond this (0: keep none)
  std::chrono::seconds max_age{24 * 3600};  // older ones expire; must not be negative
};

struct QueuedPush {
  protocol::DeviceId device;
  std::string payload;  // unescaped, as the device will receive it; any bytes
  std::chrono::system_clock::time_point queued_at;

  friend bool operator==(const QueuedPush&, const QueuedPush&) = default;
};

class OfflineQueue {
 public:
  // Opens the queue at options.path, creating the file and the schema when missing.
  static Expected<OfflineQueue, std::string> open(const OfflineOptions& options) noexcept;

  OfflineQueue(OfflineQueue&&) noexcept;
  OfflineQueue& operator=(OfflineQueue&&) noexcept;
  OfflineQueue(const OfflineQueue&) = delete;
  OfflineQueue& operator=(const OfflineQueue&) = delete;
  ~OfflineQueue();

  const std::string& path() const noexcept { return path_; }
  // A reload: the bounds apply from the next push, take() and expire() on.
  void set_bounds(std::uint32_t max_per_device, std::chrono::seconds max_age) noexcept {
    max_per_device_ = max_per_device;
    max_age_ = max_age;
  }

  // Stores a push at the back of the device's queue (one transaction). Returns the pushes
  // it evicted to stay within max_per_device, oldest first.
  Expected<std::vector<QueuedPush>, std::string> push(
      protocol::DeviceId device, std::string_view payload,
      std::chrono::system_clock::time_point now) noexcept;

  // Puts pushes back at the front of the device's queue, in the given order and with their
  // queued_at (they were handed to a connection that closed before writing them). Each must
  // be for `device`, or nothing is stored. Then evicts the oldest beyond max_per_device, as
  // push() does, and returns them. Pushes already expired at `now` are stored like the rest:
  // take() and expire() report them as expired, so that every log line says why.
  Expected<std::vector<QueuedPush>, std::string> requeue_front(
      protocol::DeviceId device, std::span<const QueuedPush> pushes,
      std::chrono::system_clock::time_point now) noexcept;

  // Removes and returns the device's queued pushes in queue order (oldest first); those
  // older than max_age at `now` are removed too and returned in `expired` (in queue order
  // too). Does not touch SQLite when nothing waits for the device.
  struct Taken {
    std::vector<QueuedPush> pushes;
    std::vector<QueuedPush> expired;
  };
  Expected<Taken, std::string> take(protocol::DeviceId device,
                                    std::chrono::system_clock::time_point now) noexcept;

  // Removes every push older than max_age at `now` (all devices) and returns them, by
  // device ID, in queue order per device. Called about once a minute.
  Expected<std::vector<QueuedPush>, std::string> expire(
      std::chrono::system_clock::time_point now) noexcept;

  // From the in-memory counts, without SQLite: called for every push routed.
  bool has(protocol::DeviceId device) const noexcept { return counts_.contains(device); }
  std::size_t count(protocol::DeviceId device) const noexcept;
  std::size_t total() const noexcept { return total_; }
  // The devices that have pushes queued, in no order.
  std::vector<protocol::DeviceId> devices() const {
    std::vector<protocol::DeviceId> out;
    out.reserve(counts_.size());
    for (const auto& [device, queued] : counts_) out.push_back(device);
    return out;
  }

  // Removes everything queued for a device (it was removed from the registry); returns how
  // many rows were removed.
  Expected<std::size_t, std::string> drop(protocol::DeviceId device) noexcept;

 private:
  // Prepared once, reused for every call. Declared after db_, so destroyed before it.
  struct Statements {
    sqlite::Stmt begin, commit, rollback, append, insert_at, min_seq, oldest, remove_through,
        device_rows, remove_device, expired_rows, remove_expired;
  };
  using Pushes = std::vector<QueuedPush>;

  OfflineQueue(const OfflineOptions& options, sqlite::Db db, Statements statements,
               std::unordered_map<protocol::DeviceId, std::size_t> counts);

  std::string error(std::string_view what) const;
  Expected<Pushes, std::string> store(protocol::DeviceId device, std::string_view payload,
                                      std::chrono::system_clock::time_point now,
                                      std::size_t& queued);
  Expected<Pushes, std::string> store_front(protocol::DeviceId device,
                                            std::span<const QueuedPush> pushes,
                                            std::size_t& queued);
  Expected<Taken, std::string> take_all(protocol::DeviceId device, std::int64_t cutoff);
  Expected<Pushes, std::string> expire_all(std::int64_t cutoff);
  // Within a transaction: writes one row (no `seq`: the next after the table's highest).
  Status insert(protocol::DeviceId device, std::optional<std::int64_t> seq,
                std::string_view payload, std::int64_t queued_at);
  // Within a transaction: when `queued` pushes of the device exceed max_per_device, deletes
  // the oldest beyond it and returns them (else nothing).
  Expected<Pushes, std::string> evict_beyond_limit(protocol::DeviceId device, std::size_t queued);
  // Within a transaction: deletes the device's `how_many` oldest rows and returns them.
  Expected<Pushes, std::string> remove_oldest(protocol::DeviceId device, std::size_t how_many);
  void forget_if_empty(protocol::DeviceId device) noexcept;

  std::string path_;
  std::uint32_t max_per_device_;
  std::chrono::seconds max_age_;
  sqlite::Db db_;
  Statements stmts_;
  // Pushes per device, only for devices that have some; the sum is total_.
  std::unordered_map<protocol::DeviceId, std::size_t> counts_;
  std::size_t total_ = 0;
};

}  // namespace iotsocket::master
