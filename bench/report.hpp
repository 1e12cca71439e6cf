// What a run measured, merged over the loops, and its text and JSON forms.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace iotsocket::bench {

// Why a device's connection did not see the run through. Names are stable (JSON keys).
enum class Failure {
  connect_refused,      // ECONNREFUSED: nothing listens (or the backlog refused)
  connect_error,        // any other socket/bind/connect error (EADDRNOTAVAIL, EMFILE, ...)
  tls_failed,           // the TLS handshake failed or the server closed during it
  closed_before_login,  // the server closed before the login frame was fully written
  closed_after_login,   // the server closed after the login frame was written
  timeout,              // not up within --handshake-timeout or by the deadline
};
inline constexpr std::size_t kFailureCount = 6;
std::string_view name(Failure f);

// One loop's devices.
struct FleetStats {
  std::uint64_t attempted = 0;    // connect() calls
  std::uint64_t not_started = 0;  // never attempted: the deadline came first
  std::uint64_t up = 0;           // TLS handshake done
  std::array<std::uint64_t, kFailureCount> failed{};
  std::vector<std::uint64_t> handshake_us;  // TCP connect start -> TLS handshake done
  std::uint64_t frames_sent = 0;     // fully written to the socket
  std::uint64_t frames_skipped = 0;  // not built: socket backed up, or TIME ran ahead
  std::optional<double> first_send_s, last_send_s;  // since the run's start
  std::uint64_t pushes = 0;      // push frames received from the server
  std::uint64_t bad_pushes = 0;  // streams from the server that failed to decode
  // Push mode: the pushes of this run among `pushes` (PushLedger's receipts).
  std::uint64_t push_fresh = 0;         // first arrivals, in order per device
  std::uint64_t push_out_of_order = 0;  // first arrivals below one the device already had
  std::uint64_t push_duplicates = 0;    // arrivals of a sequence number seen before
  std::uint64_t push_foreign = 0;       // not this run's (older or unknown payloads)
  std::vector<std::uint64_t> push_latency_us;  // FIFO write -> decoded, first arrivals
  std::optional<double> last_push_s;   // since the run's start: the last first arrival

  std::uint64_t& operator[](Failure f) { return failed[static_cast<std::size_t>(f)]; }
  std::uint64_t server_closes() const;
  std::uint64_t failed_total() const;
  // Push mode: the pushes of this run that arrived (first arrivals, in order or not).
  std::uint64_t push_arrivals() const { return push_fresh + push_out_of_order; }
  void merge(FleetStats&& other);
};

// The --count-inbound reader's counts.
struct InboundStats {
  bool enabled = false;
  std::uint64_t records = 0;        // records of the bench's devices
  std::uint64_t other_devices = 0;  // records of devices outside the bench's range
  std::uint64_t bad_lines = 0;      // lines that are no record
  std::optional<double> first_s, last_s;  // arrival of the first and last record
};

// Push mode: what the writer thread wrote into the push FIFO.
struct PushWriteStats {
  bool enabled = false;
  std::uint64_t requested = 0;    // --pushes
  double rate = 0;                // --push-rate; 0 = as fast as the FIFO takes them
  std::uint64_t devices = 0;      // logged-in devices the pushes went to, round robin
  std::uint64_t written = 0;      // whole records written
  std::optional<double> first_write_s, last_write_s;  // since the run's start
  std::string stopped;            // "done", "deadline", "signal", "error", "no devices"
};

struct Report {
  std::string target;  // "127.0.0.1:9000"
  bool tls = true;
  std::uint64_t devices = 0;
  unsigned threads = 1;
  FleetStats fleet;
  InboundStats inbound;
  PushWriteStats push;
  double wall_s = 0;
  std::string ended;  // "done", "deadline" or "signal"
};

// Rate over the interval [first, last]; 0 when it is empty.
double rate(std::uint64_t count, std::optional<double> first, std::optional<double> last);

// Push mode: pushes written but not (yet) arrived, and first arrivals per second from the
// first write to the last first arrival.
std::uint64_t pushes_missing(const Report& r);
double push_receive_rate(const Report& r);

void print_text(std::FILE* out, const Report& r);
void print_json(std::FILE* out, const Report& r);

}  // namespace iotsocket::bench
