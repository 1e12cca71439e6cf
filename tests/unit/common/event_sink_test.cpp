// EventSink against a real FIFO: the line grammar, no reader (lines wait, then reach the
// reader that opens), a full pipe (lines wait in memory, then drain), the memory bound
// (the oldest dropped and counted), a reader that closes and another that opens, and lines
// of several processes that never interleave. Every wait is bounded in count and time.
#include "common/event_sink.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace iotsocket {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class EventSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ::signal(SIGPIPE, SIG_IGN);  // as in iotsocketd: a vanished reader is EPIPE
    std::string pattern = (std::filesystem::temp_directory_path() / "iotsocket-events-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    fifo_ = dir_ + "/events.fifo";
    ASSERT_EQ(::mkfifo(fifo_.c_str(), 0600), 0);
  }
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  EventSinkOptions options(std::size_t memory = 1U << 20) const {
    return {.path = fifo_,
            .memory_limit = memory,
            .reopen_delay = 10ms,
            .blocked_retry = 1ms,
            .warn_interval = 60s};
  }
  Fd open_reader() const { return Fd(::open(fifo_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)); }

  std::string dir_, fifo_;
};

// Reads what the pipe holds now, without waiting.
std::string read_now(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return out;
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// Flushes and reads until `lines` whole lines arrived or 10 s passed.
std::vector<std::string> pump(EventSink& sink, int fd, std::size_t lines) {
  std::string text;
  std::vector<std::string> out;
  const auto deadline = Clock::now() + 10s;
  while (out.size() < lines && Clock::now() < deadline) {
    sink.flush();
    pollfd p{fd, POLLIN, 0};
    ::poll(&p, 1, 5);
    text += read_now(fd);
    for (auto end = text.find('\n'); end != std::string::npos; end = text.find('\n')) {
      out.push_back(text.substr(0, end));
      text.erase(0, end + 1);
    }
  }
  return out;
}

PeerAddress peer(const char* ip, std::uint16_t port) {
  PeerAddress p;
  auto* in = reinterpret_cast<sockaddr_in*>(&p.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &in->sin_addr);
  p.length = sizeof(sockaddr_in);
  return p;
}

TEST_F(EventSinkTest, WritesOneLinePerEventInTheDocumentedGrammar) {
  Fd reader = open_reader();
  ASSERT_TRUE(reader);
  EventSink sink(options());
  ASSERT_TRUE(sink.has_reader());
  const protocol::DeviceId id{1234567890};
  sink.connected(id, peer("203.0.113.7", 51234));
  sink.push_queued(id);
  sink.push_delivered(id);
  sink.push_expired(protocol::DeviceId{42});
  sink.disconnected(id, "idle_timeout");
  const auto lines = pump(sink, reader.get(), 5);
  EXPECT_EQ(lines, (std::vector<std::string>{"connected 1234567890 203.0.113.7:51234",
                                             "push_queued 1234567890", "push_delivered 1234567890",
                                             "push_expired 0000000042",
                                             "disconnected 1234567890 idle_timeout"}));
  EXPECT_EQ(sink.pending_bytes(), 0u);
  EXPECT_FALSE(sink.retry_in());
}

TEST_F(EventSinkTest, OffWithAnEmptyPath) {
  EventSink sink(EventSinkOptions{});
  EXPECT_FALSE(sink.enabled());
  sink.push_queued(protocol::DeviceId{1});
  sink.flush();
  EXPECT_EQ(sink.pending_bytes(), 0u);
  EXPECT_FALSE(sink.retry_in());
}

TEST_F(EventSinkTest, WithoutAReaderLinesWaitAndReachTheReaderThatOpens) {
  EventSink sink(options());
  EXPECT_FALSE(sink.has_reader());
  for (std::uint64_t i = 1; i <= 3; ++i) sink.push_queued(protocol::DeviceId{i});
  sink.flush();
  EXPECT_GT(sink.pending_bytes(), 0u);
  ASSERT_TRUE(sink.retry_in());  // the loop wakes up to look for a reader
  Fd reader = open_reader();
  ASSERT_TRUE(reader);
  const auto lines = pump(sink, reader.get(), 3);
  EXPECT_EQ(lines, (std::vector<std::string>{"push_queued 0000000001", "push_queued 0000000002",
                                             "push_queued 0000000003"}));
  EXPECT_EQ(sink.dropped(), 0u);
}

TEST_F(EventSinkTest, AFullPipeKeepsLinesInMemoryUntilTheReaderCatchesUp) {
  Fd reader = open_reader();
  ASSERT_TRUE(reader);
  EventSink sink(options(8U << 20));
  ASSERT_TRUE(sink.has_reader());
  ASSERT_GT(::fcntl(reader.get(), F_SETPIPE_SZ, 4096), 0);  // a small pipe fills fast
  std::uint64_t emitted = 0;
  while (sink.pending_bytes() == 0 && emitted < 100000) {
    sink.push_delivered(protocol::DeviceId{++emitted});
    sink.flush();  // never waits, even though nobody reads
  }
  ASSERT_GT(sink.pending_bytes(), 0u) << "the pipe never filled";
  EXPECT_EQ(sink.retry_in(), std::chrono::milliseconds(1));
  for (int i = 0; i < 1000; ++i) sink.push_delivered(protocol::DeviceId{++emitted});
  const auto lines = pump(sink, reader.get(), emitted);
  ASSERT_EQ(lines.size(), emitted);
  for (std::uint64_t i = 0; i < emitted; ++i) {
    ASSERT_EQ(lines[i], "push_delivered " + protocol::to_string(protocol::DeviceId{i + 1}));
  }
  EXPECT_EQ(sink.dropped(), 0u);
  EXPECT_EQ(sink.pending_bytes(), 0u);
}

TEST_F(EventSinkTest, BeyondTheMemoryBoundTheOldestAreDroppedAndCounted) {
  EventSink sink(options(1024));  // no reader: everything stays in memory
  const std::size_t line = std::string("push_expired 0000000001\n").size();
  for (std::uint64_t i = 1; i <= 1000; ++i) sink.push_expired(protocol::DeviceId{i});
  sink.flush();
  const std::size_t kept = 1024 / line;
  EXPECT_EQ(sink.dropped(), 1000 - kept);
  EXPECT_LE(sink.pending_bytes(), 1024u);
  Fd reader = open_reader();
  ASSERT_TRUE(reader);
  const auto lines = pump(sink, reader.get(), kept);
  ASSERT_EQ(lines.size(), kept);
  // The newest survive, in order, with no gap among them.
  for (std::size_t i = 0; i < kept; ++i) {
    EXPECT_EQ(lines[i], "push_expired " + protocol::to_string(protocol::DeviceId{1000 - kept + 1 + i}));
  }
}

TEST_F(EventSinkTest, AReaderThatClosesAndReopensGetsTheEventsFromThenOn) {
  EventSink sink(options());
  {
    Fd first = open_reader();
    ASSERT_TRUE(first);
    sink.push_queued(protocol::DeviceId{1});
    ASSERT_EQ(pump(sink, first.get(), 1), std::vector<std::string>{"push_queued 0000000001"});
  }
  sink.push_queued(protocol::DeviceId{2});  // EPIPE: nobody reads it now; it waits
  sink.flush();
  EXPECT_FALSE(sink.has_reader());
  Fd second = open_reader();
  ASSERT_TRUE(second);
  sink.push_queued(protocol::DeviceId{3});
  EXPECT_EQ(pump(sink, second.get(), 2),
            (std::vector<std::string>{"push_queued 0000000002", "push_queued 0000000003"}));
}

TEST_F(EventSinkTest, LinesOfSeveralProcessesNeverInterleave) {
  Fd reader = open_reader();
  ASSERT_TRUE(reader);
  constexpr int kWriters = 4;
  constexpr std::uint64_t kEach = 5000;
  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    const pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      EventSink sink(options());
      for (std::uint64_t i = 0; i < kEach; ++i) {
        sink.connected(protocol::DeviceId{static_cast<std::uint64_t>(w) * 1000000 + i},
                       peer("198.51.100.2", static_cast<std::uint16_t>(40000 + w)));
        sink.flush();
      }
      sink.flush_before_exit(10s);
      ::_exit(sink.pending_bytes() == 0 && sink.dropped() == 0 ? 0 : 1);
    }
    children.push_back(pid);
  }
  std::string text;
  const auto deadline = Clock::now() + 20s;
  std::size_t lines = 0;
  while (lines < kWriters * kEach && Clock::now() < deadline) {
    pollfd p{reader.get(), POLLIN, 0};
    ::poll(&p, 1, 5);
    const std::string got = read_now(reader.get());
    lines += static_cast<std::size_t>(std::count(got.begin(), got.end(), '\n'));
    text += got;
  }
  for (pid_t pid : children) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  }
  // Each writer's lines arrive whole and in its order.
  std::vector<std::uint64_t> next(kWriters, 0);
  std::istringstream in(text);
  std::string line;
  std::size_t seen = 0;
  while (std::getline(in, line)) {
    ++seen;
    const int w = line.empty() ? -1 : line.back() - '0';
    ASSERT_TRUE(w >= 0 && w < kWriters) << line;
    const std::uint64_t id = static_cast<std::uint64_t>(w) * 1000000 + next[static_cast<std::size_t>(w)]++;
    ASSERT_EQ(line, "connected " + protocol::to_string(protocol::DeviceId{id}) + " 198.51.100.2:" +
                        std::to_string(40000 + w));
  }
  EXPECT_EQ(seen, kWriters * kEach);
}

}  // namespace
}  // namespace iotsocket
