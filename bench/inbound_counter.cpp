#include "bench/inbound_counter.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "protocol/record.hpp"

namespace iotsocket::bench {

InboundCounter::InboundCounter(Fd read, Fd keep_writer, protocol::DeviceId first,
                               std::uint64_t count, Clock::time_point start)
    : read_(std::move(read)), keep_writer_(std::move(keep_writer)), first_(first.value),
      count_(count), start_(start) {
  stats_.enabled = true;
}

Expected<InboundCounter, std::string> InboundCounter::open(const std::string& path,
                                                           protocol::DeviceId first,
                                                           std::uint64_t count,
                                                           Clock::time_point start) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) {
    return Unexpected{"--count-inbound " + path + ": stat() failed: " + std::strerror(errno)};
  }
  if (!S_ISFIFO(st.st_mode)) return Unexpected{"--count-inbound " + path + ": not a FIFO"};
  // The read end first: opening the write end non-blocking needs a reader (else ENXIO).
  Fd r(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  if (!r) return Unexpected{"--count-inbound " + path + ": open() failed: " + std::strerror(errno)};
  Fd w(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!w) return Unexpected{"--count-inbound " + path + ": open() for the idle writer failed: " + std::strerror(errno)};
  discard_stale(r.get());
  return InboundCounter(std::move(r), std::move(w), first, count, start);
}

void InboundCounter::discard_stale(int fd) {
  // Records left in the pipe from before this run (no reader took them) are not this
  // run's: drop them. The server writes whole records, so no line is cut in two.
  char buf[65536];
  std::size_t dropped = 0;
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) dropped += static_cast<std::size_t>(n);
  if (dropped > 0) spdlog::info("--count-inbound: dropped {} bytes left in the FIFO from before the run", dropped);
}

void InboundCounter::on_readable(Clock::time_point now) {
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(read_.get(), buf, sizeof buf);
    if (n <= 0) return;  // EAGAIN (empty), or EOF, which the idle writer rules out
    lines_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    for (auto l = lines_.next(); l.status != protocol::LineStatus::need_more; l = lines_.next()) {
      if (l.status == protocol::LineStatus::too_long) {
        ++stats_.bad_lines;
      } else {
        count_line(l.text, now);
      }
    }
  }
}

void InboundCounter::count_line(std::string_view line, Clock::time_point now) {
  const auto record = protocol::parse_record(line);
  if (!record) {
    ++stats_.bad_lines;
    return;
  }
  const std::uint64_t id = record->device.value;
  if (id < first_ || id - first_ >= count_) {
    ++stats_.other_devices;
    return;
  }
  ++stats_.records;
  const double t = std::chrono::duration<double>(now - start_).count();
  if (!stats_.first_s) stats_.first_s = t;
  stats_.last_s = t;
}

}  // namespace iotsocket::bench
