// Per-worker counters in the shared segment: written by their worker only (relaxed atomics),
// summed by readers (iotsocketctl status, the master's metrics endpoint).
//
// They outlive the worker: a respawned worker with the same index goes on counting where
// the dead one stopped, so a sum never goes backwards. The gauges (what is open now) are
// the exception: the master zeroes them when the worker has died (clear_gauges()), before
// it forks the replacement, so nobody writes them meanwhile.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "protocol/errors.hpp"

namespace iotsocket::shm {

// Why a connection ended, as the worker's log line says it (README "Reason codes").
// Rejections are the device breaking a rule (logged "rejected"); the rest are closes.
// New reasons go at the end: an index is a place in the shared segment.
struct CloseReason {
  std::string_view name;
  bool rejection;
};
inline constexpr CloseReason kCloseReasons[] = {
#define IOTSOCKET_REASON_ITEM(name) {#name, true},
    IOTSOCKET_FRAME_ERRORS(IOTSOCKET_REASON_ITEM)
#undef IOTSOCKET_REASON_ITEM
    // login refusals (common/registry.hpp name(LoginCheck)) and the device table's
    {"unknown_device", true},
    {"disabled_device", true},
    {"wrong_key", true},
    {"registry_error", true},
    {"duplicate_login", true},
    {"device_table_full", true},
    // closes
    {"tls_failed", false},
    {"handshake_timeout", false},
    {"first_frame_timeout", false},
    {"idle_timeout", false},
    {"max_age", false},
    {"peer_closed", false},
    {"read_error", false},
    {"write_error", false},
    {"replaced", false},
    {"revoked", false},
    {"write_queue_full", false},
    {"push_rate", false},
    {"server_shutdown", false},
    {"worker_error", false},
    {"other", false},  // a reason missing above: counted, never lost
};
inline constexpr std::size_t kCloseReasonCount = std::size(kCloseReasons);

// The index of `reason` in kCloseReasons; "other" for a name not listed.
constexpr std::size_t close_reason_index(std::string_view reason) noexcept {
  for (std::size_t i = 0; i + 1 < kCloseReasonCount; ++i) {
    if (kCloseReasons[i].name == reason) return i;
  }
  return kCloseReasonCount - 1;
}

struct WorkerCounters {
  using Counter = std::atomic<std::uint64_t>;

  // iotsocketctl status shows these.
  std::atomic<std::int64_t> pid{0};
  Counter connections{0};  // gauge: sockets held, logged in or not
  Counter devices{0};      // gauge: logged-in devices
  Counter frames_in{0};
  Counter pushes_out{0};  // push frames written to devices

  // The metrics endpoint's.
  Counter handshaking{0};    // gauge: connections in the TLS handshake
  Counter logins{0};
  Counter bytes_in{0};       // IOT/1.1 bytes read from devices (inside TLS)
  Counter bytes_out{0};      // IOT/1.1 bytes written to devices (inside TLS)
  Counter spool_bytes{0};    // gauge: the shared disk spool as this worker last saw it
  Counter memory_bytes{0};   // gauge: inbound records held in this worker's memory
  Counter paused{0};         // gauge: connections not read for want of room in the sink
  Counter backpressure_ms{0};  // time with connections not read for want of room
  // gauge: handshakes that were ready in the last loop pass and waited for a later one (the
  // worker's handshake budget); the master sheds new connections while it is high
  Counter handshakes_deferred{0};
  std::array<Counter, kCloseReasonCount> closes{};  // by kCloseReasons index

  static void add(Counter& c, std::uint64_t n = 1) noexcept {
    c.fetch_add(n, std::memory_order_relaxed);
  }
  static void sub(Counter& c, std::uint64_t n = 1) noexcept {
    c.fetch_sub(n, std::memory_order_relaxed);
  }
  static void set(Counter& c, std::uint64_t n) noexcept { c.store(n, std::memory_order_relaxed); }
  static std::uint64_t get(const Counter& c) noexcept { return c.load(std::memory_order_relaxed); }

  void count_close(std::string_view reason) noexcept { add(closes[close_reason_index(reason)]); }

  // The master, after the worker died: nothing of it is open any more.
  void clear_gauges() noexcept {
    for (Counter* g : {&connections, &devices, &handshaking, &memory_bytes, &paused, &handshakes_deferred}) set(*g, 0);
  }
};

}  // namespace iotsocket::shm
