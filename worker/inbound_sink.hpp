// InboundSink: the Inbound of a single node (inbound.hpp): how a worker turns accepted device frames into records in the backend's
// inbound FIFO (docs/PROTOCOL.md "The backend side"), together with every other worker process,
// without interleaving, without loss, and with back-pressure when the backend falls
// behind. Design: worker/README-inbound.md.
//
// Owns the FIFO's write descriptor and the worker's handle on the shared Spool.
// Single-threaded; nothing here blocks or throws after open().
//
// Use from the event loop:
//   if (!sink.append(id, payload)) stop reading that device until sink.has_room(max);
//   ... at the end of every loop iteration:
//   sink.flush();
//   if (sink.writable_fd() >= 0) wait for EPOLLOUT on it (register it only then; it is
//                                level-ready whenever the pipe has room), then flush();
//   if (auto delay = sink.retry_in()) call flush() again after *delay.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/fd.hpp"
#include "protocol/device_id.hpp"
#include "common/expected.hpp"
#include "worker/inbound.hpp"
#include "worker/spool.hpp"

namespace iotsocket::worker {

struct InboundOptions {
  std::string fifo_path;                     // fifo.inbound
  std::string spool_dir;                     // spool.dir
  std::uint64_t memory_limit = 4ULL << 20;   // spool.memory: bytes of records held in memory
  std::uint64_t spool_limit = 1ULL << 30;    // spool.max_size: bytes on disk, all workers
  std::uint64_t segment_size = 64ULL << 20;  // spool segment files are about this big
};

class InboundSink final : public Inbound {
 public:
  using Clock = std::chrono::steady_clock;
  // How often to look for a reader when there is none (open() gives ENXIO, EPIPE).
  static constexpr std::chrono::milliseconds kReopenDelay{100};
  // How soon to try again when another worker holds the spool lock.
  static constexpr std::chrono::milliseconds kLockRetryDelay{1};
  // Bytes taken from the spool per flush(), so one worker never holds the lock for long.
  static constexpr std::size_t kDrainBudget = 4U << 20;

  // Startup errors name the path and the cause: the FIFO missing or not a FIFO, the spool
  // directory unusable, a spool state file that is corrupt or not ours. No reader on the
  // FIFO is not an error (records are spooled until one opens it).
  static Expected<InboundSink, std::string> open(const InboundOptions& options);

  // Queues one record `<10-digit id> <escaped payload>\n` in memory. False when the memory
  // bound would be passed: nothing was queued, and the caller must stop reading from that
  // device until has_room(). (A record is always taken when nothing is queued, so the
  // bound may be passed by one record.)
  bool append(protocol::DeviceId id, std::string_view payload) noexcept override;
  // True when a payload of this many bytes would surely be taken by append().
  bool has_room(std::size_t payload_bytes) const noexcept override;

  // Moves queued records on: the spool into the FIFO first, then (once the spool is empty)
  // the memory batch straight into the FIFO, and whatever the FIFO does not take into the
  // spool (up to its limit). Never waits.
  void flush() noexcept override;

  // >= 0: the FIFO is full; wait until it is writable, then flush().
  int writable_fd() const noexcept override;
  // Call flush() again after this long (lock busy, no reader, more to drain); nullopt:
  // nothing to retry (idle, or waiting for writable_fd()).
  std::optional<std::chrono::milliseconds> retry_in() const noexcept override;

  std::size_t pending_bytes() const noexcept override { return batch_.size(); }  // in memory
  std::uint64_t spooled_bytes() const noexcept override { return spooled_; }     // on disk, as last seen
  std::string why_full() const override;
  // Nothing queued here and the spool was empty when last seen.
  bool idle() const noexcept { return batch_.empty() && spooled_ == 0; }

 private:
  // The FIFO write end: `lost` keeps the descriptor after the reader left, so that the
  // bytes still in the pipe reach the next reader instead of vanishing with the pipe.
  enum class FifoState { closed, open, lost };
  enum class Step { done, blocked, no_reader, failed, budget };
  enum class Wait { none, writable, lock, reopen, soon, later };
  struct Written {
    std::size_t bytes = 0;
    Step step = Step::done;
  };

  InboundSink(InboundOptions options, Spool spool)
      : options_(std::move(options)), spool_(std::move(spool)) {}

  void try_open_fifo(Clock::time_point now) noexcept;
  Written write_fifo(std::string_view data) noexcept;
  void reader_lost() noexcept;
  std::size_t unread_in_pipe() const noexcept;
  Step drain_spool() noexcept;
  Step write_batch() noexcept;
  Step write_chunk(std::size_t chunk) noexcept;
  void keep_cut_chunk(std::size_t chunk, std::size_t written, bool staged) noexcept;
  void spool_batch() noexcept;
  Wait next_wait(Step step) const noexcept;

  InboundOptions options_;
  Spool spool_;
  Fd fifo_;
  FifoState fifo_state_ = FifoState::closed;
  std::size_t pipe_capacity_ = 65536;
  Clock::time_point reopen_at_{};
  std::string batch_;  // whole records, oldest first
  std::uint64_t spooled_ = 0;
  Wait wait_ = Wait::none;
  BurstLog fifo_log_;
  bool said_no_reader_ = false;
};

}  // namespace iotsocket::worker
