#include "bench/push_writer.hpp"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>

#include <spdlog/spdlog.h>

#include "bench/push_plan.hpp"

namespace iotsocket::bench {
namespace {

// A write(2) of at most PIPE_BUF bytes to a pipe is atomic: all of it or (non-blocking)
// EAGAIN. So a batch never interleaves with another writer's records, and on EAGAIN it is
// built again, with a fresh send time, once the FIFO has room.
constexpr std::size_t kBatchBytes = PIPE_BUF;
// When paced pushes are caught up, the writer sleeps until the next is due, but at least
// this long: at 10,000 pushes/s it writes about ten per write(2), each stamped at the write.
constexpr auto kMinPause = std::chrono::milliseconds(1);
// How often waits look at the stop conditions.
constexpr auto kPoll = std::chrono::milliseconds(10);
// Without --count-inbound the writer cannot see the server accept the logins: it gives the
// server this long after the last login frame was written. With it, it waits for the
// records, up to kLoginWait.
constexpr auto kLoginGrace = std::chrono::seconds(1);
constexpr auto kLoginWait = std::chrono::seconds(10);

std::uint64_t steady_ns(Clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

// Why the writer must stop now, or nothing.
std::optional<std::string> stop_reason(const Progress& progress, Clock::time_point deadline) {
  if (g_stop.load()) return "signal";
  if (Clock::now() >= deadline) return "deadline";
  if (progress.ended.load() == progress.loops) return "loops ended";
  return std::nullopt;
}

bool stopping(const Progress& progress, Clock::time_point deadline) {
  return stop_reason(progress, deadline).has_value();
}

// Sleeps until `until`, in steps that keep an eye on the stop conditions. False when the
// run stops first.
bool sleep_until(Clock::time_point until, const Progress& progress, Clock::time_point deadline) {
  for (;;) {
    if (stopping(progress, deadline)) return false;
    const auto now = Clock::now();
    if (now >= until) return true;
    std::this_thread::sleep_until(std::min({until, now + kPoll, deadline}));
  }
}

}  // namespace

Expected<PushWriter, std::string> PushWriter::open(const std::string& path) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return Unexpected{"--push-fifo " + path + ": stat() failed: " + std::strerror(errno)};
  }
  if (!S_ISFIFO(st.st_mode)) return Unexpected{"--push-fifo " + path + ": not a FIFO"};
  Fd fd(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!fd && errno == ENXIO) {
    return Unexpected{"--push-fifo " + path + ": nobody has it open for reading (is iotsocketd running "
                      "with this FIFO as fifo.push?)"};
  }
  if (!fd) return Unexpected{"--push-fifo " + path + ": open() failed: " + std::strerror(errno)};
  return PushWriter(std::move(fd));
}

PushWriteStats PushWriter::run(const Options& options, Progress& progress, Clock::time_point start,
                               Clock::time_point deadline) {
  start_ = start;
  PushWriteStats stats;
  stats.enabled = true;
  stats.requested = options.pushes.value_or(0);
  stats.rate = options.push_rate.value_or(0);
  const auto targets = wait_for_targets(options, progress, deadline);
  stats.devices = targets.size();
  if (targets.empty()) {
    stats.stopped = stop_reason(progress, deadline).value_or("no devices");
    if (stats.stopped == "no devices") spdlog::warn("push mode: no device logged in; no pushes written");
  } else {
    spdlog::info("pushing {} pushes to {} devices, {}", stats.requested, targets.size(),
                 stats.rate > 0 ? fmt::format("{} per second", stats.rate) : std::string("unpaced"));
    write_pushes(options, targets, progress, deadline, stats);
    spdlog::info("pushes written: {} of {} ({})", stats.written, stats.requested, stats.stopped);
  }
  progress.push.writer_done.store(true);
  return stats;
}

std::vector<protocol::DeviceId> PushWriter::wait_for_targets(const Options& options, Progress& progress,
                                                             Clock::time_point deadline) const {
  PushProgress& p = progress.push;
  std::vector<protocol::DeviceId> targets;
  for (;;) {
    if (stopping(progress, deadline)) return {};
    {
      std::lock_guard lock(p.mutex);
      if (p.published == progress.loops) {
        targets = p.targets;
        break;
      }
    }
    std::this_thread::sleep_for(kPoll);
  }
  std::sort(targets.begin(), targets.end());
  if (targets.empty()) return targets;
  if (options.count_inbound.empty()) {
    if (!sleep_until(Clock::now() + kLoginGrace, progress, deadline)) return {};
    return targets;
  }
  // The server forwards a login frame once it accepted it: then the device takes pushes.
  const auto give_up = Clock::now() + kLoginWait;
  while (p.inbound_records.load() < targets.size()) {
    if (Clock::now() >= give_up) {
      spdlog::warn("push mode: the inbound FIFO carried {} records for {} logged-in devices after {} s; "
                   "pushing anyway", p.inbound_records.load(), targets.size(), kLoginWait.count());
      break;
    }
    if (!sleep_until(Clock::now() + kPoll, progress, deadline)) return {};
  }
  return targets;
}

void PushWriter::write_pushes(const Options& options, const std::vector<protocol::DeviceId>& targets,
                              Progress& progress, Clock::time_point deadline, PushWriteStats& stats) {
  const std::uint64_t total = stats.requested;
  const auto t0 = Clock::now();
  std::string batch;
  batch.reserve(kBatchBytes + options.payload_bytes + 64);
  std::uint64_t next = 0;
  stats.stopped = "done";
  while (next < total) {
    if (auto why = stop_reason(progress, deadline)) {
      stats.stopped = *why;
      return;
    }
    const auto now = Clock::now();
    const std::uint64_t due = pushes_due(std::chrono::duration<double>(now - t0).count(), stats.rate, total);
    if (next >= due) {
      const auto next_due = t0 + seconds(static_cast<double>(next) / stats.rate);
      sleep_until(std::max(next_due, now + kMinPause), progress, deadline);
      continue;
    }
    // Whole lines up to PIPE_BUF bytes (a longer line goes alone), all stamped now.
    batch.clear();
    const std::uint64_t sent_ns = steady_ns(now);
    std::uint64_t lines = 0;
    for (std::uint64_t seq = next; seq < due; ++seq) {
      const std::size_t before = batch.size();
      append_push_line(batch, targets[seq % targets.size()],
                       make_push_payload(PushStamp{seq, sent_ns}, options.payload_bytes));
      if (batch.size() > kBatchBytes && lines > 0) {
        batch.resize(before);
        break;
      }
      ++lines;
    }
    const ssize_t n = ::write(fd_.get(), batch.data(), batch.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      wait_writable();
      continue;
    }
    if (n < 0) {
      spdlog::error("push mode: write() to the push FIFO failed: {}", std::strerror(errno));
      stats.stopped = "error";
      return;
    }
    if (static_cast<std::size_t>(n) < batch.size() &&
        !write_rest(std::string_view(batch).substr(static_cast<std::size_t>(n)), deadline)) {
      stats.stopped = "error";
      return;
    }
    next += lines;
    stats.written = next;
    progress.push.written.store(next);
    const double at = std::chrono::duration<double>(now - start_).count();
    if (!stats.first_write_s) stats.first_write_s = at;
    stats.last_write_s = std::chrono::duration<double>(Clock::now() - start_).count();
  }
}

bool PushWriter::write_rest(std::string_view bytes, Clock::time_point deadline) {
  // A line is half in the FIFO: finish it even on a signal, else the server would read it
  // joined to whatever the next writer writes. Only the deadline stops it.
  while (!bytes.empty()) {
    if (Clock::now() >= deadline) {
      spdlog::error("push mode: the deadline came with a push record half written");
      return false;
    }
    const ssize_t n = ::write(fd_.get(), bytes.data(), bytes.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
      wait_writable();
      continue;
    }
    if (n < 0) {
      spdlog::error("push mode: write() to the push FIFO failed: {}", std::strerror(errno));
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

void PushWriter::wait_writable() const {
  pollfd p{fd_.get(), POLLOUT, 0};
  ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(100).count()));
}

}  // namespace iotsocket::bench
