// Spool: the on-disk part of the inbound queue, shared by all worker processes. It holds
// "the bytes not yet in the FIFO, in order" (worker/README-inbound.md): segment files
// `<dir>/seg-<16 digits>` and a state file `<dir>/state` with the read cursor (head) and the
// write end (tail). One cross-process lock, flock() on `<dir>/lock`, guards every change;
// it is only ever taken without waiting and held for one bounded step, and the kernel drops
// it when its holder dies.
//
// Owns its lock and state descriptors. Every method between lock() and unlock() needs the
// lock; the others do not. Records never span segments, so a segment's end is a record end.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/fd.hpp"
#include "common/expected.hpp"

namespace iotsocket::worker {

struct SpoolOptions {
  std::string dir;
  std::uint64_t limit = 1ULL << 30;          // spooled bytes, all workers together
  std::uint64_t segment_size = 64ULL << 20;  // a segment is closed once it would pass this
};

// The state file's layout (host byte order; the spool never leaves its machine).
struct SpoolState {
  std::uint64_t magic = 0;
  std::uint32_t version = 0;
  std::uint32_t reserved = 0;
  std::uint64_t head_segment = 0;
  std::uint64_t head_offset = 0;    // next byte for the FIFO
  std::uint64_t record_offset = 0;  // start of the record holding head_offset
  std::uint64_t tail_segment = 0;
  std::uint64_t tail_offset = 0;    // end of the spooled bytes
  std::uint64_t bytes = 0;          // spooled bytes from head to tail
  std::uint64_t checksum = 0;       // FNV-1a of everything above
};

// Record boundaries in a run of whole records (each ends in '\n'; no other '\n' occurs):
// where the record holding byte `n` starts; where it ends (`n` itself when a record
// ends just before it); the longest run of whole records of at most `max` bytes.
std::size_t record_start(std::string_view records, std::size_t n) noexcept;
std::size_t record_end(std::string_view records, std::size_t n) noexcept;
std::size_t whole_records(std::string_view records, std::uint64_t max) noexcept;

// Logs the first failure of a burst and the recovery after it, not every retry.
class BurstLog {
 public:
  // Returns true when this call logged (the first failure of a burst).
  bool failed(std::string_view what, const std::string& path, int error) noexcept;
  void recovered(std::string_view what) noexcept;

 private:
  bool failing_ = false;
};

class Spool {
 public:
  enum class Lock { held, busy, failed };

  // Creates the directory (one level) and the state file when missing, picks up a spool
  // from an earlier run, and refuses a state file it does not understand. Messages name
  // the path and the cause.
  static Expected<Spool, std::string> open(const SpoolOptions& options);

  // Takes the lock without waiting and loads the shared state.
  Lock lock() noexcept;
  void unlock() noexcept;

  // Spooled bytes as of the last lock() (or open()).
  std::uint64_t bytes() const noexcept { return state_.bytes; }
  const std::string& dir() const noexcept { return options_.dir; }

  // --- with the lock held ---
  bool empty() const noexcept { return state_.bytes == 0; }
  std::uint64_t room() const noexcept;  // bytes that may still be spooled under the limit
  // Bytes of the record at the cursor that are already in the FIFO (0: at a record start).
  std::uint64_t record_sent() const noexcept { return state_.head_offset - state_.record_offset; }

  // The next bytes for the FIFO, at most `max`; empty when the spool is; false on an I/O
  // error (logged). The view lives until the next call.
  bool peek(std::size_t max, std::string_view& out) noexcept;
  // The first `n` bytes of the last peek() are in the FIFO: moves the cursor past them and
  // deletes segments that are fully drained.
  bool consume(std::size_t n) noexcept;
  // The FIFO's reader read a part of the record at the cursor and left: send it whole.
  bool rewind_cut_record() noexcept;

  // Writes whole records at the write end without making them part of the spool: the
  // write-ahead for a FIFO write that may be cut short.
  bool stage(std::string_view records) noexcept;
  // Makes `records` (a prefix of what was staged) part of the spool; the first `sent` bytes
  // of it are already in the FIFO (sent > 0 only when the spool was empty).
  bool commit(std::string_view records, std::size_t sent) noexcept;
  // Drops staged bytes that are not needed after all (they would be overwritten anyway).
  void discard_stage() noexcept;
  bool append(std::string_view records) noexcept { return stage(records) && commit(records, 0); }

 private:
  explicit Spool(SpoolOptions options) : options_(std::move(options)) {}
  std::string segment_path(std::uint64_t segment) const;
  std::string state_path() const;
  Expected<bool, std::string> startup_load();
  Expected<bool, std::string> check_segments() const;
  void remove_orphans() const;
  bool load_state() noexcept;
  bool store_state() noexcept;
  bool segment_end(std::uint64_t segment, std::uint64_t& end) noexcept;
  bool leave_drained_segment() noexcept;
  bool rotate() noexcept;
  void reset_empty() noexcept;

  SpoolOptions options_;
  Fd lock_fd_;
  Fd state_fd_;
  SpoolState state_;
  bool locked_ = false;
  std::uint64_t staged_segment_ = 0;
  std::uint64_t staged_offset_ = 0;
  std::size_t staged_size_ = 0;
  std::string buffer_;  // the last peek()
  BurstLog io_log_;
};

}  // namespace iotsocket::worker
