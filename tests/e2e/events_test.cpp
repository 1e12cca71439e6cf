// The lifecycle events FIFO (issue 6, item 6) end to end: a backend reading fifo.events
// sees connected, disconnected, push_queued, push_delivered and push_expired for the right
// devices, in order per device; and a backend that reads nothing (or is not there) blocks
// nothing. The built iotsocketd with real TLS, real FIFOs and the real offline queue.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

using protocol::DeviceId;

constexpr std::uint64_t kFirstId = 1300000000;
const std::string kKey = "events-test-key-0001";

std::string id_text(std::uint64_t id) { return protocol::to_string(DeviceId{id}); }

// The device's own address, as the server sees it: "127.0.0.1:PORT".
std::string local_address(const Device& d) {
  sockaddr_in me{};
  socklen_t length = sizeof me;
  ::getsockname(d.fd(), reinterpret_cast<sockaddr*>(&me), &length);
  return "127.0.0.1:" + std::to_string(ntohs(me.sin_port));
}

// The backend's end of the events FIFO: keeps every line it read.
class EventsReader {
 public:
  explicit EventsReader(const std::string& path)
      : fd_(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)) {
    if (!fd_) throw std::runtime_error("cannot open " + path);
  }
  int fd() const { return fd_.get(); }

  // Reads until the lines about device `id` are `count` or more, or `timeout` passed;
  // returns them in the order they arrived.
  std::vector<std::string> about(std::uint64_t id, std::size_t count,
                                 std::chrono::milliseconds timeout = 10s) {
    const auto deadline = Clock::now() + timeout;
    while (of(id).size() < count && Clock::now() < deadline) read_some(50ms);
    return of(id);
  }
  // Reads what arrives within `wait`, then the lines about `id`.
  std::vector<std::string> settled(std::uint64_t id, std::chrono::milliseconds wait = 300ms) {
    const auto deadline = Clock::now() + wait;
    while (Clock::now() < deadline) read_some(20ms);
    return of(id);
  }
  const std::vector<std::string>& all() const { return lines_; }

 private:
  std::vector<std::string> of(std::uint64_t id) const {
    const std::string needle = " " + id_text(id);
    std::vector<std::string> out;
    for (const auto& line : lines_) {
      const auto at = line.find(' ');
      if (at != std::string::npos && line.compare(at, needle.size(), needle) == 0 &&
          (line.size() == at + needle.size() || line[at + needle.size()] == ' ')) {
        out.push_back(line);
      }
    }
    return out;
  }
  void read_some(std::chrono::milliseconds wait) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return;
    char buf[65536];
    const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n <= 0) {
      std::this_thread::sleep_for(5ms);  // no writer yet: poll() reports POLLHUP at once
      return;
    }
    text_.append(buf, static_cast<std::size_t>(n));
    for (auto end = text_.find('\n'); end != std::string::npos; end = text_.find('\n')) {
      lines_.push_back(text_.substr(0, end));
      text_.erase(0, end + 1);
    }
  }

  Fd fd_;
  std::string text_;
  std::vector<std::string> lines_;
};

ServerOptions with_events(std::string extra_yaml) {
  ServerOptions options;
  options.events = true;
  options.extra_yaml = std::move(extra_yaml);
  return options;
}

// The backend reads the events FIFO from before the server starts (the test makes it, the
// server takes the existing FIFO), so every event of the run reaches it.
class EventsTest : public ::testing::Test {
 protected:
  explicit EventsTest(ServerOptions options = with_events("push: {offline_max: 2}\n"))
      : server_(std::move(options)) {}
  void SetUp() override {
    server_.add_devices(kFirstId, 10, kKey);
    ASSERT_EQ(::mkfifo(server_.events_fifo().c_str(), 0600), 0);
    events_.emplace(server_.events_fifo());
    server_.start();
    inbound_.emplace(server_.inbound_fifo());
  }

  // A device that has logged in (its first frame reached the inbound FIFO).
  std::unique_ptr<Device> logged_in(std::uint64_t id) {
    return e2e::logged_in(server_, *inbound_, id, kKey);
  }

  TestServer server_;
  std::optional<EventsReader> events_;
  std::optional<InboundReader> inbound_;
};

TEST_F(EventsTest, EveryEventLineAppearsForAConnectADisconnectAQueuedAndADeliveredPush) {
  const std::uint64_t id = kFirstId;
  const std::string e = id_text(id);
  auto d = logged_in(id);
  const std::string first_peer = local_address(*d);
  ASSERT_EQ(events_->about(id, 1), std::vector<std::string>{"connected " + e + " " + first_peer});

  // A connected device: delivered, never queued.
  server_.push_lines(push_record(id, "live-push"));
  ASSERT_EQ(d->read_pushes(1).size(), 1u) << server_.log();
  ASSERT_EQ(events_->about(id, 2).back(), "push_delivered " + e);

  d.reset();  // the device leaves
  ASSERT_EQ(events_->about(id, 3).back(), "disconnected " + e + " peer_closed");

  // An offline device: queued now, delivered when it logs in again.
  server_.push_lines(push_record(id, "offline-push"));
  ASSERT_EQ(events_->about(id, 4).back(), "push_queued " + e);
  auto again = logged_in(id);
  const auto pushes = again->read_pushes(1);
  ASSERT_EQ(pushes.size(), 1u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "offline-push");

  events_->about(id, 6);
  EXPECT_EQ(events_->settled(id),
            (std::vector<std::string>{"connected " + e + " " + first_peer,
                                      "push_delivered " + e,
                                      "disconnected " + e + " peer_closed",
                                      "push_queued " + e,
                                      "connected " + e + " " + local_address(*again),
                                      "push_delivered " + e}))
      << server_.log();
}

TEST_F(EventsTest, APushEvictedFromAFullOfflineQueueIsExpired) {
  const std::uint64_t id = kFirstId + 1;
  const std::string e = id_text(id);
  server_.push_lines(push_record(id, "first") + push_record(id, "second") + push_record(id, "third"));
  events_->about(id, 4);
  // push.offline_max is 2: the third push evicts the first.
  EXPECT_EQ(events_->settled(id), (std::vector<std::string>{"push_queued " + e, "push_queued " + e,
                                                            "push_queued " + e, "push_expired " + e}))
      << server_.log();
  auto d = logged_in(id);
  const auto pushes = d->read_pushes(2);
  ASSERT_EQ(pushes.size(), 2u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "second");
  EXPECT_EQ(events_->about(id, 7).back(), "push_delivered " + e);
}

TEST_F(EventsTest, ARejectedLoginIsNoEvent) {
  const std::uint64_t id = kFirstId + 2;
  Device d(server_.port());
  ASSERT_TRUE(d.send_frame(DeviceId{id}, "not-the-key", "hello"));
  ASSERT_TRUE(d.wait_closed());
  ASSERT_TRUE(server_.wait_for_log("reason=wrong_key"));
  auto ok = logged_in(kFirstId + 3);  // an event after the rejection: the rejection's came first
  events_->about(kFirstId + 3, 1);
  EXPECT_TRUE(events_->settled(id).empty());
}

TEST_F(EventsTest, AStoppingServerSaysEveryDeviceIsDisconnected) {
  auto a = logged_in(kFirstId + 5);
  auto b = logged_in(kFirstId + 6);
  events_->about(kFirstId + 5, 1);
  events_->about(kFirstId + 6, 1);
  ASSERT_EQ(server_.stop(SIGTERM), 0);
  for (std::uint64_t id : {kFirstId + 5, kFirstId + 6}) {
    const auto lines = events_->about(id, 2);
    ASSERT_EQ(lines.size(), 2u) << server_.log();
    EXPECT_EQ(lines[1], "disconnected " + id_text(id) + " server_shutdown");
  }
}

class ExpiryEventsTest : public EventsTest {
 protected:
  ExpiryEventsTest() : EventsTest(with_events("push: {offline_max_age: 500ms}\n")) {}
};

TEST_F(ExpiryEventsTest, APushThatWaitedTooLongIsExpiredWhenItsDeviceLogsIn) {
  const std::uint64_t id = kFirstId + 4;
  const std::string e = id_text(id);
  server_.push_lines(push_record(id, "too-late"));
  ASSERT_EQ(events_->about(id, 1).back(), "push_queued " + e);
  std::this_thread::sleep_for(800ms);  // let it pass push.offline_max_age (setup, not a check)
  auto d = logged_in(id);
  events_->about(id, 3);
  EXPECT_EQ(events_->settled(id),
            (std::vector<std::string>{"push_queued " + e, "connected " + e + " " + local_address(*d),
                                      "push_expired " + e}))
      << server_.log();
  EXPECT_TRUE(d->read_pushes(1, 300ms).empty());
}

// Nobody has the events FIFO open: devices, pushes and inbound records go on as ever.
TEST(EventsWithoutReader, NobodyReadingBlocksNothing) {
  TestServer server(with_events(""));
  server.add_devices(kFirstId, 2, kKey);
  server.start();
  InboundReader inbound(server.inbound_fifo());
  ASSERT_TRUE(server.wait_for_log("has no reader"));
  for (int round = 0; round < 3; ++round) {
    Device d(server.port());
    ASSERT_TRUE(d.send_frame(DeviceId{kFirstId}, kKey, "round-" + std::to_string(round)));
    ASSERT_EQ(inbound.read(1).size(), 1u) << server.log();
    server.push_lines(push_record(kFirstId, "push-" + std::to_string(round)));
    const auto pushes = d.read_pushes(1);
    ASSERT_EQ(pushes.size(), 1u) << server.log();
    EXPECT_EQ(pushes[0].payload, "push-" + std::to_string(round));
  }
}

// A backend that opened the FIFO and stopped reading: the pipe fills, the events wait in
// the worker's memory, devices are served, and the lines all arrive once it reads again.
TEST(EventsWithSlowReader, AFullPipeBlocksNothingAndTheEventsArriveLater) {
  TestServer server(with_events(""));
  server.add_devices(kFirstId, 2, kKey);
  ASSERT_EQ(::mkfifo(server.events_fifo().c_str(), 0600), 0);
  EventsReader events(server.events_fifo());
  server.start();
  ASSERT_GT(::fcntl(events.fd(), F_SETPIPE_SZ, 4096), 0);  // a pipe of one page fills fast
  InboundReader inbound(server.inbound_fifo());
  Device d(server.port());
  ASSERT_TRUE(d.send_frame(DeviceId{kFirstId}, kKey, "hello"));
  ASSERT_EQ(inbound.read(1).size(), 1u) << server.log();
  constexpr std::size_t kPushes = 2000;  // ~50 KB of push_delivered lines: 12 times the pipe
  std::string burst;
  for (std::size_t i = 0; i < kPushes; ++i) burst += push_record(kFirstId, "push-" + std::to_string(i));
  server.push_lines(burst);
  const auto pushes = d.read_pushes(kPushes, 30s);
  ASSERT_EQ(pushes.size(), kPushes) << server.log();
  ASSERT_TRUE(d.send_frame(DeviceId{kFirstId}, kKey, "still-served"));
  const auto records = inbound.read(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].payload, "still-served");
  // Now the backend reads: every line, in order (they did not fit the pipe: they waited in
  // the worker's memory while the device got its pushes).
  const auto lines = events.about(kFirstId, kPushes + 1, 30s);
  ASSERT_EQ(lines.size(), kPushes + 1) << server.log();
  EXPECT_EQ(lines[0], "connected " + id_text(kFirstId) + " " + local_address(d));
  for (std::size_t i = 1; i < lines.size(); ++i) ASSERT_EQ(lines[i], "push_delivered " + id_text(kFirstId));
  EXPECT_EQ(server.count_in_log("events dropped"), 0u);
}

}  // namespace
}  // namespace iotsocket::e2e
