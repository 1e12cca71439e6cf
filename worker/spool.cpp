#include "worker/spool.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <thread>
#include <type_traits>

#include <spdlog/spdlog.h>

namespace iotsocket::worker {
namespace {

static_assert(std::is_trivially_copyable_v<SpoolState>);
static_assert(sizeof(SpoolState) == 72, "the state file layout has no padding");

constexpr std::uint64_t kMagic = 0x4c4f4f5053544f49;  // "IOTSPOOL" read as little-endian
constexpr std::uint32_t kVersion = 1;
constexpr std::string_view kSegmentPrefix = "seg-";
// open() waits this long for the lock: holders keep it for one short step only.
constexpr auto kStartupLockWait = std::chrono::seconds(5);

std::uint64_t checksum(const SpoolState& state) noexcept {
  unsigned char bytes[offsetof(SpoolState, checksum)];
  std::memcpy(bytes, &state, sizeof bytes);
  std::uint64_t hash = 0xcbf29ce484222325;
  for (unsigned char b : bytes) {
    hash ^= b;
    hash *= 0x100000001b3;
  }
  return hash;
}

// What is wrong with a state, or nullptr.
const char* state_error(const SpoolState& s) noexcept {
  if (s.magic != kMagic) return "not a spool state file (bad magic)";
  if (s.version != kVersion) return "unknown spool state version";
  if (s.checksum != checksum(s)) return "checksum mismatch";
  if (s.head_segment > s.tail_segment) return "head segment after tail segment";
  if (s.record_offset > s.head_offset) return "record start after the cursor";
  if (s.head_segment == s.tail_segment && s.head_offset > s.tail_offset) {
    return "cursor after the write end";
  }
  return nullptr;
}

std::string errno_text(int error) { return std::strerror(error); }

std::string describe(const std::string& path, std::string_view what, int error) {
  return std::string(what) + " " + path + ": " + errno_text(error);
}

bool pwrite_all(int fd, std::string_view data, std::uint64_t offset) noexcept {
  while (!data.empty()) {
    const ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    offset += static_cast<std::uint64_t>(n);
  }
  return true;
}

}  // namespace

std::size_t record_start(std::string_view records, std::size_t n) noexcept {
  if (n == 0) return 0;
  const auto newline = records.rfind('\n', n - 1);
  return newline == std::string_view::npos ? 0 : newline + 1;
}

std::size_t record_end(std::string_view records, std::size_t n) noexcept {
  if (n == 0 || records[n - 1] == '\n') return n;
  const auto newline = records.find('\n', n);
  return newline == std::string_view::npos ? records.size() : newline + 1;
}

std::size_t whole_records(std::string_view records, std::uint64_t max) noexcept {
  if (max >= records.size()) return records.size();
  return record_start(records, static_cast<std::size_t>(max));
}

bool BurstLog::failed(std::string_view what, const std::string& path, int error) noexcept {
  if (failing_) return false;
  failing_ = true;
  spdlog::error("{} {} failed: {} (records stay queued; retrying)", what, path,
                errno_text(error));
  return true;
}

void BurstLog::recovered(std::string_view what) noexcept {
  if (!failing_) return;
  failing_ = false;
  spdlog::info("{} works again", what);
}

Expected<Spool, std::string> Spool::open(const SpoolOptions& options) {
  Spool spool(options);
  const std::string& dir = spool.options_.dir;
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) {
    return Unexpected{describe(dir, "spool directory", errno)};
  }
  const std::string lock_path = dir + "/lock";
  spool.lock_fd_.reset(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640));
  if (!spool.lock_fd_) return Unexpected{describe(lock_path, "spool lock file", errno)};
  spool.state_fd_.reset(::open(spool.state_path().c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640));
  if (!spool.state_fd_) return Unexpected{describe(spool.state_path(), "spool state file", errno)};

  const auto give_up = std::chrono::steady_clock::now() + kStartupLockWait;
  while (::flock(spool.lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) {
      return Unexpected{describe(lock_path, "flock on spool lock file", errno)};
    }
    if (std::chrono::steady_clock::now() > give_up) {
      return Unexpected{"spool lock file " + lock_path + ": still held by another process"};
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto loaded = spool.startup_load();
  ::flock(spool.lock_fd_.get(), LOCK_UN);
  if (!loaded) return Unexpected{loaded.error()};
  return spool;
}

Expected<bool, std::string> Spool::startup_load() {
  struct stat st {};
  if (::fstat(state_fd_.get(), &st) != 0) return Unexpected{describe(state_path(), "fstat", errno)};
  if (st.st_size == 0) {
    // A new spool. Segments without a state would be data we cannot place: refuse them.
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(options_.dir, ec)) {
      if (entry.path().filename().string().starts_with(kSegmentPrefix)) {
        return Unexpected{"spool " + options_.dir + ": segment " + entry.path().string() +
                          " but no state file; refusing to guess its order"};
      }
    }
    if (ec) return Unexpected{"spool directory " + options_.dir + ": " + ec.message()};
    state_ = SpoolState{.magic = kMagic, .version = kVersion, .head_segment = 1, .tail_segment = 1};
    if (!store_state()) return Unexpected{describe(state_path(), "write", errno)};
    return true;
  }
  if (st.st_size != static_cast<off_t>(sizeof(SpoolState))) {
    return Unexpected{"spool state file " + state_path() + ": wrong size " +
                      std::to_string(st.st_size) + " (corrupt or not ours)"};
  }
  if (::pread(state_fd_.get(), &state_, sizeof state_, 0) != static_cast<ssize_t>(sizeof state_)) {
    return Unexpected{describe(state_path(), "read", errno)};
  }
  if (const char* error = state_error(state_)) {
    return Unexpected{"spool state file " + state_path() + ": " + error};
  }
  auto segments = check_segments();
  if (!segments) return segments;
  remove_orphans();
  if (state_.bytes > 0) {
    spdlog::info("spool {}: {} bytes from an earlier run wait for the inbound FIFO",
                 options_.dir, state_.bytes);
  }
  return true;
}

// Every segment between head and tail is there and they add up to the recorded size.
Expected<bool, std::string> Spool::check_segments() const {
  std::uint64_t total = 0;
  for (std::uint64_t segment = state_.head_segment; segment <= state_.tail_segment; ++segment) {
    const bool is_tail = segment == state_.tail_segment;
    if (is_tail && state_.tail_offset == 0) break;  // created on first append
    struct stat st {};
    const std::string path = segment_path(segment);
    if (::stat(path.c_str(), &st) != 0) {
      return Unexpected{"spool state file " + state_path() + " names " + path + ": " +
                        errno_text(errno)};
    }
    const auto size = static_cast<std::uint64_t>(st.st_size);
    const std::uint64_t end = is_tail ? state_.tail_offset : size;
    const std::uint64_t begin = segment == state_.head_segment ? state_.head_offset : 0;
    if (size < end || end < begin) {
      return Unexpected{"spool segment " + path + " is shorter than the state file " +
                        state_path() + " says"};
    }
    total += end - begin;
  }
  if (total != state_.bytes) {
    return Unexpected{"spool state file " + state_path() + " says " +
                      std::to_string(state_.bytes) + " bytes, the segments hold " +
                      std::to_string(total)};
  }
  return true;
}

// Segments before the head are drained; a process that died between storing the state
// and unlinking them left them behind.
void Spool::remove_orphans() const {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with(kSegmentPrefix)) continue;
    const std::string digits = name.substr(kSegmentPrefix.size());
    if (digits.size() != 16 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
    if (std::stoull(digits) < state_.head_segment) std::filesystem::remove(entry.path(), ec);
  }
}

std::string Spool::segment_path(std::uint64_t segment) const {
  char name[32];
  std::snprintf(name, sizeof name, "/seg-%016llu", static_cast<unsigned long long>(segment));
  return options_.dir + name;
}

std::string Spool::state_path() const { return options_.dir + "/state"; }

Spool::Lock Spool::lock() noexcept {
  if (::flock(lock_fd_.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK || errno == EINTR) return Lock::busy;
    io_log_.failed("flock on", options_.dir + "/lock", errno);
    return Lock::failed;
  }
  locked_ = true;
  staged_size_ = 0;
  if (!load_state()) {
    unlock();
    return Lock::failed;
  }
  return Lock::held;
}

void Spool::unlock() noexcept {
  if (!locked_) return;
  locked_ = false;
  ::flock(lock_fd_.get(), LOCK_UN);
}

bool Spool::load_state() noexcept {
  SpoolState loaded;
  const ssize_t n = ::pread(state_fd_.get(), &loaded, sizeof loaded, 0);
  if (n != static_cast<ssize_t>(sizeof loaded)) {
    io_log_.failed("read of", state_path(), n < 0 ? errno : EIO);
    return false;
  }
  if (const char* error = state_error(loaded)) {
    // Never repair it here: another process's data is at stake. Leave it to a restart.
    if (io_log_.failed("check of", state_path(), EINVAL)) {
      spdlog::error("spool state file {}: {}", state_path(), error);
    }
    return false;
  }
  state_ = loaded;
  return true;
}

bool Spool::store_state() noexcept {
  state_.checksum = checksum(state_);
  const std::string_view bytes(reinterpret_cast<const char*>(&state_), sizeof state_);
  if (!pwrite_all(state_fd_.get(), bytes, 0)) {
    io_log_.failed("write of", state_path(), errno);
    return false;
  }
  return true;
}

std::uint64_t Spool::room() const noexcept {
  return state_.bytes >= options_.limit ? 0 : options_.limit - state_.bytes;
}

bool Spool::segment_end(std::uint64_t segment, std::uint64_t& end) noexcept {
  if (segment == state_.tail_segment) {
    end = state_.tail_offset;
    return true;
  }
  // Closed segments were cut to their recorded end when the next one began.
  struct stat st {};
  const std::string path = segment_path(segment);
  if (::stat(path.c_str(), &st) != 0) {
    io_log_.failed("stat of", path, errno);
    return false;
  }
  end = static_cast<std::uint64_t>(st.st_size);
  return true;
}

bool Spool::peek(std::size_t max, std::string_view& out) noexcept {
  out = {};
  if (empty() || max == 0) return true;
  std::uint64_t end = 0;
  if (!segment_end(state_.head_segment, end)) return false;
  if (state_.head_offset >= end) {
    if (!leave_drained_segment()) return false;
    return peek(max, out);  // at most once more: the next segment is not drained
  }
  const std::string path = segment_path(state_.head_segment);
  const Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    io_log_.failed("open of", path, errno);
    return false;
  }
  const auto length = static_cast<std::size_t>(std::min<std::uint64_t>(max, end - state_.head_offset));
  buffer_.resize(length);
  const ssize_t n = ::pread(fd.get(), buffer_.data(), length, static_cast<off_t>(state_.head_offset));
  if (n != static_cast<ssize_t>(length)) {
    io_log_.failed("read of", path, n < 0 ? errno : EIO);
    return false;
  }
  io_log_.recovered("the spool");
  out = buffer_;
  return true;
}

bool Spool::leave_drained_segment() noexcept {
  const std::uint64_t drained = state_.head_segment;
  state_.head_segment += 1;
  state_.head_offset = 0;
  state_.record_offset = 0;
  if (!store_state()) return false;
  ::unlink(segment_path(drained).c_str());
  return true;
}

bool Spool::consume(std::size_t n) noexcept {
  if (n == 0) return true;
  const std::string_view sent(buffer_.data(), n);
  const std::size_t start = record_start(sent, n);
  if (start > 0) state_.record_offset = state_.head_offset + start;
  state_.head_offset += n;
  state_.bytes -= n;
  if (state_.bytes == 0) {
    reset_empty();
    return true;
  }
  return store_state();
}

// Drained to the last byte: start afresh on a new segment number and delete the old ones,
// so that an idle server leaves an empty spool directory.
void Spool::reset_empty() noexcept {
  const std::uint64_t first = state_.head_segment;
  const std::uint64_t last = state_.tail_segment;
  state_.head_segment = state_.tail_segment = last + 1;
  state_.head_offset = state_.record_offset = state_.tail_offset = 0;
  if (!store_state()) return;
  for (std::uint64_t segment = first; segment <= last; ++segment) {
    ::unlink(segment_path(segment).c_str());
  }
}

bool Spool::rewind_cut_record() noexcept {
  const std::uint64_t back = state_.head_offset - state_.record_offset;
  if (back == 0) return true;
  state_.head_offset = state_.record_offset;
  state_.bytes += back;
  return store_state();
}

bool Spool::rotate() noexcept {
  const std::string path = segment_path(state_.tail_segment);
  // Garbage past the recorded end (a writer died before committing) must not be read as
  // records once this segment's end is taken from its size.
  if (::truncate(path.c_str(), static_cast<off_t>(state_.tail_offset)) != 0) {
    io_log_.failed("truncate of", path, errno);
    return false;
  }
  if (empty()) {
    reset_empty();
    return true;
  }
  state_.tail_segment += 1;
  state_.tail_offset = 0;
  return store_state();
}

bool Spool::stage(std::string_view records) noexcept {
  staged_size_ = 0;
  if (state_.tail_offset > 0 && state_.tail_offset + records.size() > options_.segment_size) {
    if (!rotate()) return false;
  }
  const std::string path = segment_path(state_.tail_segment);
  const Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0640));
  if (!fd) {
    io_log_.failed("open of", path, errno);
    return false;
  }
  if (!pwrite_all(fd.get(), records, state_.tail_offset)) {
    io_log_.failed("write of", path, errno);
    return false;
  }
  io_log_.recovered("the spool");
  staged_segment_ = state_.tail_segment;
  staged_offset_ = state_.tail_offset;
  staged_size_ = records.size();
  return true;
}

bool Spool::commit(std::string_view records, std::size_t sent) noexcept {
  if (records.size() > staged_size_ || staged_segment_ != state_.tail_segment ||
      staged_offset_ != state_.tail_offset || (sent > 0 && !empty())) {
    spdlog::critical("spool {}: commit without a matching stage", options_.dir);
    std::abort();
  }
  const std::uint64_t begin = state_.tail_offset;
  state_.tail_offset += records.size();
  state_.bytes += records.size() - sent;
  if (sent > 0) {
    state_.head_offset = begin + sent;
    state_.record_offset = begin + record_start(records, sent);
  }
  staged_size_ = 0;
  return store_state();
}

void Spool::discard_stage() noexcept {
  if (staged_size_ == 0) return;
  staged_size_ = 0;
  // Not needed for correctness (the next stage overwrites it); keeps the directory clean.
  const std::string path = segment_path(state_.tail_segment);
  const int result = state_.tail_offset == 0
                         ? ::unlink(path.c_str())
                         : ::truncate(path.c_str(), static_cast<off_t>(state_.tail_offset));
  if (result != 0) spdlog::debug("cleaning {} failed: {}", path, errno_text(errno));
}

}  // namespace iotsocket::worker
