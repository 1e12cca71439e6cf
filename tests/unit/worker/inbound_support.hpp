// Test helpers for the inbound sink: a temporary directory with a real FIFO, a
// non-blocking FIFO reader, a bounded event-loop pump, child processes, and payloads that
// can be recomputed from (writer, sequence) so every delivered byte is checked.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "protocol/record.hpp"
#include "worker/inbound_sink.hpp"

namespace iotsocket::worker::test {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A fresh directory holding `inbound.fifo` (a real FIFO) and room for `spool/`.
class InboundTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The worker ignores SIGPIPE (EPIPE is handled); so must the tests.
    ::signal(SIGPIPE, SIG_IGN);
    std::string pattern = (std::filesystem::temp_directory_path() / "iotsocket-inbound-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    fifo_ = dir_ + "/inbound.fifo";
    spool_ = dir_ + "/spool";
    ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  InboundOptions options() const {
    return {.fifo_path = fifo_, .spool_dir = spool_, .memory_limit = 4U << 20,
            .spool_limit = 1ULL << 30, .segment_size = 64U << 20};
  }

  std::size_t segment_files() const {
    std::size_t n = 0;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(spool_, ec)) {
      if (e.path().filename().string().starts_with("seg-")) ++n;
    }
    return n;
  }

  std::string dir_, fifo_, spool_;
};

// Reads the FIFO without blocking; keeps what it read.
class FifoReader {
 public:
  explicit FifoReader(const std::string& path)
      : fd_(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)) {}
  ~FifoReader() { close(); }
  FifoReader(const FifoReader&) = delete;
  FifoReader& operator=(const FifoReader&) = delete;

  bool is_open() const { return fd_ >= 0; }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  // Reads what is there, at most `max` bytes. A FIFO without writers reads as 0: not EOF
  // for us (writers come and go).
  std::size_t read_some(std::size_t max = SIZE_MAX) {
    std::size_t total = 0;
    char buf[65536];
    while (fd_ >= 0 && total < max) {
      const ssize_t n = ::read(fd_, buf, std::min(sizeof buf, max - total));
      if (n <= 0) break;
      data_.append(buf, static_cast<std::size_t>(n));
      total += static_cast<std::size_t>(n);
    }
    return total;
  }
  // Waits up to `timeout` for something to read, then reads it.
  std::size_t wait_and_read(std::chrono::milliseconds timeout, std::size_t max = SIZE_MAX) {
    pollfd p{fd_, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(timeout.count()));
    // POLLHUP without data (no writer at the moment): do not spin.
    if (ready > 0 && !(p.revents & POLLIN)) std::this_thread::sleep_for(1ms);
    return read_some(max);
  }
  std::string& data() { return data_; }
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string data_;
};

// Splits complete lines off `data` (keeps a trailing partial line in it) and parses them;
// a line that does not parse fails the test.
inline std::vector<protocol::Record> take_records(std::string& data) {
  std::vector<protocol::Record> out;
  std::size_t start = 0;
  for (std::size_t nl; (nl = data.find('\n', start)) != std::string::npos; start = nl + 1) {
    auto record = protocol::parse_record(std::string_view(data).substr(start, nl - start));
    EXPECT_TRUE(record.has_value()) << "bad line at byte " << start << ": "
                                    << data.substr(start, std::min<std::size_t>(nl - start, 80));
    if (record) out.push_back(std::move(*record));
  }
  data.erase(0, start);
  return out;
}

// A payload that names its writer and sequence number and whose every other byte follows
// from them: sizes 5..max_size, with bytes that need escapes.
inline std::string make_payload(int writer, int seq, std::size_t max_size) {
  std::mt19937 rng(static_cast<unsigned>(writer * 1000003 + seq));
  std::string p = "w" + std::to_string(writer) + " s" + std::to_string(seq) + " ";
  const std::size_t size = std::max(p.size() + 1, 5 + rng() % (max_size - 4));
  static constexpr std::string_view kAlphabet = "abcdefghijklmnopqrstuvwxyz0123456789 \n\r\\|.-";
  while (p.size() + 1 < size) p.push_back(kAlphabet[rng() % kAlphabet.size()]);
  p.push_back('E');
  return p;
}

// (writer, seq) from a make_payload() payload.
inline std::pair<int, int> payload_origin(const std::string& payload) {
  int writer = -1, seq = -1;
  std::sscanf(payload.c_str(), "w%d s%d ", &writer, &seq);
  return {writer, seq};
}

// One event-loop step of a worker: flush, then wait (bounded) for what the sink asked for.
inline void step(InboundSink& sink, std::chrono::milliseconds max_wait = 20ms) {
  sink.flush();
  auto wait = max_wait;
  if (const auto retry = sink.retry_in()) wait = std::min(wait, *retry);
  pollfd p{sink.writable_fd(), POLLOUT, 0};
  if (p.fd >= 0) {
    ::poll(&p, 1, static_cast<int>(wait.count()));
  } else if (sink.retry_in() || !sink.idle()) {
    std::this_thread::sleep_for(wait);
  }
}

// Appends, stepping while the sink pushes back. False on timeout.
inline bool append_patiently(InboundSink& sink, protocol::DeviceId id, std::string_view payload,
                             Clock::time_point deadline, FifoReader* reader = nullptr) {
  while (!sink.append(id, payload)) {
    if (Clock::now() > deadline) return false;
    step(sink, 5ms);
    if (reader) reader->read_some();
  }
  return true;
}

// Steps the sink (and reads, when given a reader) until it is idle. False on timeout.
inline bool pump_until_idle(InboundSink& sink, Clock::time_point deadline,
                            FifoReader* reader = nullptr) {
  for (;;) {
    sink.flush();
    if (reader) reader->read_some();
    if (sink.idle()) return true;
    if (Clock::now() > deadline) return false;
    step(sink, 5ms);
  }
}

// A child process running `body`; its exit code is body's result (99 on an exception).
class Child {
 public:
  explicit Child(const std::function<int()>& body) {
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      int code = 99;
      try {
        code = body();
      } catch (...) {
      }
      ::_exit(code);
    }
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // The exit code, or nullopt if it is still running at the deadline (or died by signal).
  std::optional<int> wait(Clock::time_point deadline) {
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        reaped_ = true;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return std::nullopt;
      }
      if (Clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(2ms);
    }
  }
  // Waits until the child stopped itself (raise(SIGSTOP)).
  bool wait_stopped(Clock::time_point deadline) {
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG | WUNTRACED);
      if (r == pid_ && WIFSTOPPED(status)) return true;
      if (r == pid_) {
        reaped_ = true;
        return false;
      }
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(1ms);
    }
  }
  void kill_and_reap() {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    reaped_ = true;
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

}  // namespace iotsocket::worker::test
