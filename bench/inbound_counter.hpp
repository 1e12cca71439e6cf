// --count-inbound: reads the server's inbound FIFO and counts the records of the bench's
// devices, which is how "frames accepted" is measured (IOT/1.1 has no acknowledgement).
// The bench must be the FIFO's only reader while it runs (stop the backend): records
// read by another reader are not counted.
//
// Owns the read end, and a write end that is never written: with a writer always
// present, the read end never reports EOF/EPOLLHUP between server writers.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "bench/report.hpp"
#include "common/fd.hpp"
#include "protocol/device_id.hpp"
#include "common/expected.hpp"
#include "protocol/line_reader.hpp"

namespace iotsocket::bench {

class InboundCounter {
 public:
  using Clock = std::chrono::steady_clock;

  // Counts records of devices first .. first + count - 1.
  static Expected<InboundCounter, std::string> open(const std::string& path,
                                                    protocol::DeviceId first,
                                                    std::uint64_t count, Clock::time_point start);

  int fd() const noexcept { return read_.get(); }
  // Reads until the FIFO is empty.
  void on_readable(Clock::time_point now);
  const InboundStats& stats() const noexcept { return stats_; }

 private:
  InboundCounter(Fd read, Fd keep_writer, protocol::DeviceId first, std::uint64_t count,
                 Clock::time_point start);
  static void discard_stale(int fd);
  void count_line(std::string_view line, Clock::time_point now);

  Fd read_;
  Fd keep_writer_;
  std::uint64_t first_;
  std::uint64_t count_;
  Clock::time_point start_;
  protocol::LineReader lines_;
  InboundStats stats_;
};

}  // namespace iotsocket::bench
