#include "worker/inbound_sink.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/fifo_writer.hpp"
#include "protocol/record.hpp"

namespace iotsocket::worker {
namespace {


std::size_t record_size(std::string_view payload) noexcept {
  const auto escapes = std::count_if(payload.begin(), payload.end(),
                                     [](char c) { return c == '\n' || c == '\r' || c == '\\'; });
  return protocol::kDeviceIdDigits + 1 + payload.size() + static_cast<std::size_t>(escapes) + 1;
}

std::string fifo_error(const std::string& path, std::string_view what) {
  return "inbound FIFO " + path + ": " + std::string(what);
}

}  // namespace

Expected<InboundSink, std::string> InboundSink::open(const InboundOptions& options) {
  const std::string& path = options.fifo_path;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Unexpected{fifo_error(path, std::strerror(errno))};
  if (!S_ISFIFO(st.st_mode)) return Unexpected{fifo_error(path, "not a FIFO (create it with mkfifo)")};
  auto spool = Spool::open({.dir = options.spool_dir,
                            .limit = options.spool_limit,
                            .segment_size = options.segment_size});
  if (!spool) return Unexpected{spool.error()};
  InboundSink sink(options, std::move(*spool));
  sink.spooled_ = sink.spool_.bytes();
  sink.try_open_fifo(Clock::now());
  if (sink.fifo_state_ != FifoState::open && errno != ENXIO) {
    return Unexpected{fifo_error(path, std::strerror(errno))};
  }
  return sink;
}

bool InboundSink::append(protocol::DeviceId id, std::string_view payload) noexcept {
  if (!batch_.empty() && batch_.size() + record_size(payload) > options_.memory_limit) return false;
  protocol::append_record(batch_, id, payload);
  return true;
}

bool InboundSink::has_room(std::size_t payload_bytes) const noexcept {
  // Every payload byte may need an escape.
  const std::size_t worst = protocol::kDeviceIdDigits + 2 + 2 * payload_bytes;
  return batch_.empty() || batch_.size() + worst <= options_.memory_limit;
}

std::string InboundSink::why_full() const {
  const std::string backend = fifo_state_ == FifoState::open
                                  ? "the backend reads the inbound FIFO slower than devices send"
                                  : "no backend reads the inbound FIFO " + options_.fifo_path;
  if (wait_ == Wait::lock) return backend + ", and another worker holds the spool's lock";
  const std::uint64_t next_record = batch_.empty() ? 0 : record_end(batch_, 1);
  if (spooled_ + next_record > options_.spool_limit || spooled_ >= options_.spool_limit) {
    return backend + ", and the spool is at spool.max_size (" + std::to_string(spooled_) + " of " +
           std::to_string(options_.spool_limit) + " bytes)";
  }
  return backend + ", and the spool takes no more (" + std::to_string(spooled_) +
         " bytes spooled; its last write failed: see the error logged before)";
}

void InboundSink::flush() noexcept {
  if (idle()) {
    wait_ = Wait::none;
    return;
  }
  const auto now = Clock::now();
  if (fifo_state_ != FifoState::open && now >= reopen_at_) try_open_fifo(now);
  switch (spool_.lock()) {
    case Spool::Lock::busy: wait_ = Wait::lock; return;
    case Spool::Lock::failed: wait_ = Wait::later; return;
    case Spool::Lock::held: break;
  }
  // Under the lock, the FIFO gets the spool's bytes first and the batch only once the
  // spool is empty: so no record overtakes a spooled one, and no two writers interleave.
  Step step = Step::no_reader;
  if (fifo_state_ == FifoState::open) {
    step = drain_spool();
    if (step == Step::done) step = write_batch();
  }
  spool_batch();
  spooled_ = spool_.bytes();
  spool_.unlock();
  wait_ = next_wait(step);
}

int InboundSink::writable_fd() const noexcept {
  return wait_ == Wait::writable && fifo_state_ == FifoState::open ? fifo_.get() : -1;
}

std::optional<std::chrono::milliseconds> InboundSink::retry_in() const noexcept {
  using std::chrono::milliseconds;
  switch (wait_) {
    case Wait::none:
    case Wait::writable: return std::nullopt;
    case Wait::lock: return kLockRetryDelay;
    case Wait::soon: return milliseconds(0);
    case Wait::later: return kReopenDelay;
    case Wait::reopen: {
      const auto left = std::chrono::ceil<milliseconds>(reopen_at_ - Clock::now());
      return std::max(left, milliseconds(0));
    }
  }
  return std::nullopt;
}

InboundSink::Wait InboundSink::next_wait(Step step) const noexcept {
  if (idle()) return Wait::none;
  switch (step) {
    case Step::done: return Wait::none;  // not reached: a done step leaves nothing behind
    case Step::blocked: return Wait::writable;
    case Step::budget: return Wait::soon;
    case Step::no_reader: return Wait::reopen;
    case Step::failed: return Wait::later;
  }
  return Wait::later;
}

// A missing reader (ENXIO) is the normal state of a backend that has not started yet.
void InboundSink::try_open_fifo(Clock::time_point now) noexcept {
  const std::string& path = options_.fifo_path;
  reopen_at_ = now + kReopenDelay;
  auto opened = open_fifo_writer(path);
  if (!opened) {
    const int error = opened.error();
    if (error == ENXIO) {
      if (!std::exchange(said_no_reader_, true)) {
        spdlog::info("inbound FIFO {} has no reader; records are spooled until one opens it", path);
      }
    } else {
      fifo_log_.failed("open of inbound FIFO", path, error);
    }
    errno = error;
    return;
  }
  const int capacity = ::fcntl(opened->get(), F_GETPIPE_SZ);
  if (capacity > 0) pipe_capacity_ = static_cast<std::size_t>(capacity);
  // Replacing a `lost` descriptor only now keeps the pipe (and its unread bytes) alive.
  fifo_ = std::move(*opened);
  fifo_state_ = FifoState::open;
  fifo_log_.recovered("inbound FIFO " + path);
  if (std::exchange(said_no_reader_, false)) spdlog::info("inbound FIFO {} has a reader", path);
}

InboundSink::Written InboundSink::write_fifo(std::string_view data) noexcept {
  for (;;) {
    const ssize_t n = ::write(fifo_.get(), data.data(), data.size());
    if (n >= 0) {
      const auto bytes = static_cast<std::size_t>(n);
      return {bytes, bytes == data.size() ? Step::done : Step::blocked};
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN) return {0, Step::blocked};
    if (errno == EPIPE) {
      reader_lost();
      return {0, Step::no_reader};
    }
    fifo_log_.failed("write to inbound FIFO", options_.fifo_path, errno);
    fifo_.reset();
    fifo_state_ = FifoState::closed;
    reopen_at_ = Clock::now() + kReopenDelay;
    return {0, Step::failed};
  }
}

// The pipe keeps what the old reader did not read, and the next reader gets it first. A
// reader that read a part of the record at the cursor (nothing is left in the pipe) lost
// that record: it is sent again whole, so the next reader starts at a record boundary.
void InboundSink::reader_lost() noexcept {
  const std::string& path = options_.fifo_path;
  fifo_state_ = FifoState::lost;
  reopen_at_ = Clock::now() + kReopenDelay;
  said_no_reader_ = true;
  const std::size_t unread = unread_in_pipe();
  spdlog::warn("inbound FIFO {}: the reader left (EPIPE); {} unread bytes wait in the pipe for "
               "the next reader; spooling meanwhile", path, unread);
  const std::uint64_t cut = spool_.record_sent();
  if (cut == 0) return;
  if (unread == 0) {
    spool_.rewind_cut_record();
    spdlog::warn("inbound FIFO {}: the reader left after {} bytes of a record; the record is "
                 "sent whole to the next reader", path, cut);
  } else if (unread < cut) {
    spdlog::warn("inbound FIFO {}: the reader left inside a record; the next reader's first "
                 "line is the rest of it", path);
  }
}

std::size_t InboundSink::unread_in_pipe() const noexcept {
  int unread = 0;
  if (::ioctl(fifo_.get(), FIONREAD, &unread) != 0 || unread < 0) return 0;
  return static_cast<std::size_t>(unread);
}

InboundSink::Step InboundSink::drain_spool() noexcept {
  std::size_t budget = kDrainBudget;
  while (!spool_.empty()) {
    if (budget == 0) return Step::budget;
    std::string_view chunk;
    if (!spool_.peek(std::min(budget, pipe_capacity_), chunk)) return Step::failed;
    const Written written = write_fifo(chunk);
    if (!spool_.consume(written.bytes)) return Step::failed;
    budget -= written.bytes;
    if (written.step != Step::done) return written.step;
  }
  return Step::done;
}

InboundSink::Step InboundSink::write_batch() noexcept {
  while (!batch_.empty()) {
    // At most a pipeful per write (but always one whole record).
    std::size_t chunk = whole_records(batch_, pipe_capacity_);
    if (chunk == 0) chunk = record_end(batch_, 1);
    const Step step = write_chunk(chunk);
    if (step != Step::done) return step;
  }
  return Step::done;
}

// Writes the first `chunk` bytes of the batch. A write into an empty pipe that fits is
// never cut; any other may be, so its bytes go to the spool first (not yet counted as
// spooled): then the rest of a cut record is already where the next writer, of whatever
// process, continues from.
InboundSink::Step InboundSink::write_chunk(std::size_t chunk) noexcept {
  const std::string_view data(batch_.data(), chunk);
  const bool staged = unread_in_pipe() != 0 || chunk > pipe_capacity_;
  if (staged && !spool_.stage(data)) return Step::failed;
  const Written written = write_fifo(data);
  if (written.bytes == chunk) {
    if (staged) spool_.discard_stage();
    batch_.erase(0, chunk);
    return Step::done;
  }
  keep_cut_chunk(chunk, written.bytes, staged);
  return written.step == Step::done ? Step::blocked : written.step;
}

// The FIFO took `written` bytes of the chunk: the rest of a cut record must be spooled
// (even past the spool's limit: it is one record), and as many whole records after it as
// the limit allows. What is not spooled stays in the batch.
void InboundSink::keep_cut_chunk(std::size_t chunk, std::size_t written, bool staged) noexcept {
  std::string_view data(batch_.data(), chunk);
  if (!staged) {
    if (written == 0) return;
    // The kernel cut a write we expected whole: spool the cut record now.
    const std::size_t start = record_start(data, written);
    const std::size_t end = record_end(data, written);
    batch_.erase(0, start);
    data = std::string_view(batch_.data(), end - start);
    written -= start;
    if (!spool_.stage(data)) {
      spdlog::critical("inbound FIFO {}: a record was cut and its rest cannot be spooled; "
                       "another worker may write into it", options_.fifo_path);
      batch_.erase(0, written);
      return;
    }
  }
  const std::size_t cut_end = record_end(data, written);
  const std::uint64_t room = spool_.room();
  const std::uint64_t cut_rest = cut_end - written;
  const std::size_t keep =
      cut_end + whole_records(data.substr(cut_end), room > cut_rest ? room - cut_rest : 0);
  if (keep == written) {
    spool_.discard_stage();
  } else if (!spool_.commit(data.substr(0, keep), written)) {
    if (written > 0) {
      spdlog::critical("inbound FIFO {}: a record was cut and its rest cannot be spooled; "
                       "another worker may write into it", options_.fifo_path);
    }
    batch_.erase(0, written);
    return;
  }
  batch_.erase(0, keep);
}

void InboundSink::spool_batch() noexcept {
  if (batch_.empty()) return;
  const std::size_t n = whole_records(batch_, spool_.room());
  if (n > 0 && spool_.append(std::string_view(batch_.data(), n))) batch_.erase(0, n);
}

}  // namespace iotsocket::worker
