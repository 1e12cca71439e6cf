// Push mode's writer: one thread that writes `ID payload` records into the server's push
// FIFO (docs/PROTOCOL.md "The backend side"), as a backend would, once every loop has published
// its logged-in devices. The pushes go round robin over those devices, paced at
// --push-rate on the steady clock (or unpaced), in write(2)s of whole lines of at most
// PIPE_BUF bytes, so that they never interleave with another backend's records. It stops
// by itself after --pushes, at the deadline, on a signal, or when every loop has ended.
//
// Owns the FIFO's write end (non-blocking; the server holds the read end open).
#pragma once

#include <string>

#include "bench/loop.hpp"
#include "bench/options.hpp"
#include "bench/report.hpp"
#include "common/fd.hpp"
#include "common/expected.hpp"

namespace iotsocket::bench {

class PushWriter {
 public:
  // Opens the FIFO for writing; fails when it is no FIFO or nobody reads it (no server).
  static Expected<PushWriter, std::string> open(const std::string& path);

  // The writer thread's body. Sets progress.push.written as it goes and writer_done at the
  // end, whatever the reason.
  PushWriteStats run(const Options& options, Progress& progress, Clock::time_point start,
                     Clock::time_point deadline);

 private:
  explicit PushWriter(Fd fd) : fd_(std::move(fd)) {}

  // Waits for the loops' targets (and, with --count-inbound, for the server to have
  // forwarded their login frames); empty when the run stops first.
  std::vector<protocol::DeviceId> wait_for_targets(const Options& options, Progress& progress,
                                                   Clock::time_point deadline) const;
  void write_pushes(const Options& options, const std::vector<protocol::DeviceId>& targets,
                    Progress& progress, Clock::time_point deadline, PushWriteStats& stats);
  // Writes all of `bytes` (only a line longer than PIPE_BUF can be written in parts).
  bool write_rest(std::string_view bytes, Clock::time_point deadline);
  // Waits until the FIFO takes more bytes, up to 100 ms.
  void wait_writable() const;

  Fd fd_;
  Clock::time_point start_{};
};

}  // namespace iotsocket::bench
