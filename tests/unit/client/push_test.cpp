// What the client reads: pushes as the legacy server writes them, however the bytes are
// split or joined, and the checks of docs/PROTOCOL.md ("What a client enforces on push frames");
// how they reach the caller (poll(), run_for(), an outer loop with fd() and wait_hint()).
#include <poll.h>

#include <gtest/gtest.h>

#include "tests/unit/client/fake_server.hpp"

namespace iotsocket::client::test {
namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kDevice = 1234567890;  // test_options()'s device_id

class ClientPushes : public ::testing::Test {
 protected:
  void SetUp() override {
    client_ = make_client(test_options(server_.port()));
    ASSERT_TRUE(client_);
    const auto error = client_->connect();
    ASSERT_FALSE(error.has_value()) << name(error->code) << ": " << error->message;
  }

  bool drive_until_pushes(std::size_t count, Millis timeout = 3s) {
    return drive_until(*client_, events_, [&] { return events_.pushes.size() >= count; }, timeout);
  }
  bool drive_until_error(ErrorCode code, Millis timeout = 3s) {
    return drive_until(*client_, events_, [&] { return events_.count(code) > 0; }, timeout);
  }

  FakeServer server_{certificates().server};
  std::unique_ptr<Client> client_;
  Events events_;
};

TEST_F(ClientPushes, APushArrivesThroughPollWithItsPayloadAndTime) {
  const protocol::Time time = now_time();
  server_.write(push_frame(kDevice, time, "hello-device"));
  ASSERT_TRUE(drive_until_pushes(1)) << events_.describe();
  EXPECT_EQ(events_.pushes[0].payload, "hello-device");
  EXPECT_EQ(protocol::to_time(events_.pushes[0].time), time);
  EXPECT_TRUE(events_.errors.empty()) << events_.describe();
  EXPECT_EQ(client_->stats().pushes_received, 1u);
}

TEST_F(ClientPushes, APushForTheShortFormOfTheDeviceIdArrives) {
  Options options = test_options(server_.port());
  options.device_id = "0000000042";
  auto client = make_client(options);  // a second client, logged in as device 42
  ASSERT_TRUE(client);
  client_.reset();                     // the fixture's client leaves the server free
  ASSERT_FALSE(client->connect().has_value());
  server_.write(push_frame(42, now_time(), "for-device-42"));  // DEVICE:42
  Events events;
  ASSERT_TRUE(drive_until(*client, events, [&] { return !events.pushes.empty(); }, 3s))
      << events.describe();
  EXPECT_EQ(events.pushes[0].payload, "for-device-42");
}

TEST_F(ClientPushes, ThreePushesWrittenInOneWriteAllArriveInOrder) {
  const protocol::Time time = now_time();
  server_.write(push_frame(kDevice, time, "push-one") +
                push_frame(kDevice, time + protocol::Tick{1}, "push-two") +
                push_frame(kDevice, time + protocol::Tick{2}, "push-three"));
  ASSERT_TRUE(drive_until_pushes(3)) << events_.describe();
  EXPECT_EQ(events_.pushes[0].payload, "push-one");
  EXPECT_EQ(events_.pushes[1].payload, "push-two");
  EXPECT_EQ(events_.pushes[2].payload, "push-three");
  EXPECT_TRUE(events_.errors.empty()) << events_.describe();
}

TEST_F(ClientPushes, APushSplitIntoSingleBytesArrivesWhole) {
  const std::string frame = push_frame(kDevice, now_time(), "one byte at a time");
  server_.write(frame, 1, 1ms);
  ASSERT_TRUE(drive_until_pushes(1, 5s)) << events_.describe();
  EXPECT_EQ(events_.pushes[0].payload, "one byte at a time");
  drive_for(*client_, events_, 50ms);
  EXPECT_EQ(events_.pushes.size(), 1u);
  EXPECT_TRUE(events_.errors.empty()) << events_.describe();
}

TEST_F(ClientPushes, APushOfTheLargestBodyArrivesOverManyReads) {
  std::string payload(62'534, 'b');
  payload.front() = '<';
  payload.back() = '>';
  server_.write(push_frame(kDevice, now_time(), payload));
  ASSERT_TRUE(drive_until_pushes(1)) << events_.describe();
  EXPECT_EQ(events_.pushes[0].payload, payload);
}

// The server's last words: a push and, in the same moment, its close. Both are reported.
TEST_F(ClientPushes, APushFollowedAtOnceByTheServersCloseIsStillDelivered) {
  server_.write(push_frame(kDevice, now_time(), "last-push"));
  server_.close_current();
  ASSERT_TRUE(drive_until(*client_, events_, [&] {
    return !events_.pushes.empty() && events_.count(ErrorCode::server_gone) > 0;
  }, 3s)) << events_.describe();
  EXPECT_EQ(events_.pushes[0].payload, "last-push");
  EXPECT_FALSE(events_.fatal());
}

TEST_F(ClientPushes, APushTenSecondsOldIsClockSkewAndTheConnectionStays) {
  server_.write(push_frame(kDevice, now_time() - 10s, "stale-push"));
  ASSERT_TRUE(drive_until_error(ErrorCode::clock_skew)) << events_.describe();
  EXPECT_FALSE(events_.fatal());
  EXPECT_TRUE(events_.pushes.empty());

  server_.write(push_frame(kDevice, now_time(), "fresh-push"));
  ASSERT_TRUE(drive_until_pushes(1)) << events_.describe();
  EXPECT_EQ(events_.pushes[0].payload, "fresh-push");
  EXPECT_EQ(client_->stats().connects, 1u);
  EXPECT_EQ(client_->stats().pushes_refused, 1u);
  EXPECT_EQ(server_.connection_count(), 1u);
}

TEST_F(ClientPushes, APushTenSecondsAheadIsClockSkew) {
  server_.write(push_frame(kDevice, now_time() + 10s, "future-push"));
  ASSERT_TRUE(drive_until_error(ErrorCode::clock_skew)) << events_.describe();
  EXPECT_TRUE(events_.pushes.empty());
}

TEST_F(ClientPushes, APushReusingTheTimeOfAnEarlierOneIsReplayedPush) {
  const protocol::Time time = now_time();
  server_.write(push_frame(kDevice, time, "original-push"));
  ASSERT_TRUE(drive_until_pushes(1)) << events_.describe();
  server_.write(push_frame(kDevice, time, "replayed-push"));
  ASSERT_TRUE(drive_until_error(ErrorCode::replayed_push)) << events_.describe();
  EXPECT_FALSE(events_.fatal());
  drive_for(*client_, events_, 50ms);
  ASSERT_EQ(events_.pushes.size(), 1u);
  EXPECT_EQ(events_.pushes[0].payload, "original-push");
  EXPECT_EQ(client_->stats().connects, 1u);
}

TEST_F(ClientPushes, APushForAnotherDeviceIsBadServerFrameAndDropped) {
  server_.write(push_frame(kDevice + 1, now_time(), "not-for-us"));
  ASSERT_TRUE(drive_until_error(ErrorCode::bad_server_frame)) << events_.describe();
  EXPECT_FALSE(events_.fatal());
  EXPECT_TRUE(events_.pushes.empty());
  // Dropped, not a broken stream: the connection stays and carries the next push.
  server_.write(push_frame(kDevice, now_time(), "for-us"));
  ASSERT_TRUE(drive_until_pushes(1)) << events_.describe();
  EXPECT_EQ(events_.pushes[0].payload, "for-us");
  EXPECT_EQ(server_.connection_count(), 1u);
  EXPECT_EQ(client_->stats().connects, 1u);
}

// "A TIME value already seen from the server is rejected": also on the next connection.
TEST_F(ClientPushes, APushReplayedOnTheNextConnectionIsReplayedPush) {
  const protocol::Time time = now_time();
  server_.write(push_frame(kDevice, time, "original-push"));
  ASSERT_TRUE(drive_until_pushes(1)) << events_.describe();
  server_.close_current();
  ASSERT_TRUE(drive_until(*client_, events_, [&] { return client_->stats().connects >= 2; }, 3s))
      << events_.describe();
  server_.write(push_frame(kDevice, time, "replayed-on-the-next-connection"));
  ASSERT_TRUE(drive_until_error(ErrorCode::replayed_push)) << events_.describe();
  EXPECT_EQ(events_.pushes.size(), 1u);
}

// IOT/1.1 has no login reply; a push proves the server took the login, so the client need
// not wait out login_grace (3 s here).
TEST(ClientLogin, APushBeforeTheLoginGraceEndsAcceptsTheLoginAtOnce) {
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  options.login_grace = 3s;
  server.write_after_login(push_frame(kDevice, now_time(), "welcome-push"));
  auto client = make_client(options);
  ASSERT_TRUE(client);
  const auto start = SteadyClock::now();
  const auto error = client->connect();
  const auto took = SteadyClock::now() - start;
  ASSERT_FALSE(error.has_value()) << error->message;
  EXPECT_TRUE(client->online());
  EXPECT_EQ(client->stats().connects, 1u);
  EXPECT_LT(took, 1500ms) << "connect() waited out login_grace";
  const Event event = client->poll(Millis::zero());
  ASSERT_TRUE(event.push.has_value());
  EXPECT_EQ(event.push->payload, "welcome-push");
}

// Garbage that breaks framing ends the connection; the client logs in again.
class ClientBrokenStream : public ClientPushes {
 protected:
  void expect_reconnect_after(std::string garbage) {
    server_.write(std::move(garbage));
    ASSERT_TRUE(drive_until_error(ErrorCode::bad_server_frame)) << events_.describe();
    EXPECT_FALSE(events_.fatal());
    EXPECT_TRUE(drive_until(*client_, events_,
                            [&] { return client_->stats().connects >= 2; }, 3s))
        << events_.describe();
    EXPECT_GE(server_.connection_count(), 2u);
    EXPECT_TRUE(events_.pushes.empty());
  }
};

TEST_F(ClientBrokenStream, SeventyThousandBytesWithoutDelimiterRenewTheConnection) {
  expect_reconnect_after(std::string(70'000, 'x'));
}

TEST_F(ClientBrokenStream, AFrameOfVersionOnePointZeroRenewsTheConnection) {
  std::string frame = push_frame(kDevice, now_time(), "old-version");
  frame.replace(frame.find("IOT:1.1"), 7, "IOT:1.0");
  expect_reconnect_after(frame);
}

TEST_F(ClientPushes, RunForHandsPushesToOnPushAndErrorsToOnError) {
  std::vector<std::string> payloads;
  std::vector<ErrorCode> errors;
  client_->on_push = [&payloads](const Push& push) { payloads.push_back(push.payload); };
  client_->on_error = [&errors](const Error& error) { errors.push_back(error.code); };
  const protocol::Time time = now_time();
  server_.write(push_frame(kDevice, time, "callback-one") +
                push_frame(kDevice, time - 10s, "callback-stale") +
                push_frame(kDevice, time + protocol::Tick{1}, "callback-two"));
  // In short runs until all three are handled: a loaded machine may deliver them late.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while ((payloads.size() < 2 || errors.empty()) && std::chrono::steady_clock::now() < deadline) {
    ASSERT_FALSE(client_->run_for(100ms).has_value());
  }
  EXPECT_EQ(payloads, (std::vector<std::string>{"callback-one", "callback-two"}));
  EXPECT_EQ(errors, std::vector<ErrorCode>{ErrorCode::clock_skew});
}

// A caller with its own event loop: fd() to watch, wait_hint() to sleep, poll(0) to work.
TEST_F(ClientPushes, AnOuterEventLoopGetsPushesWithFdAndWaitHint) {
  ASSERT_GE(client_->fd(), 0);
  server_.write(push_frame(kDevice, now_time(), "outer-loop-push"));
  std::optional<Push> push;
  const auto deadline = SteadyClock::now() + 3s;
  while (!push && SteadyClock::now() < deadline) {
    const Millis hint = std::min(client_->wait_hint(), Millis{200});
    pollfd p{client_->fd(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(hint.count()));
    Event event = client_->poll(Millis::zero());
    ASSERT_FALSE(event.error.has_value()) << event.error->message;
    push = std::move(event.push);
  }
  ASSERT_TRUE(push.has_value());
  EXPECT_EQ(push->payload, "outer-loop-push");
}

TEST_F(ClientPushes, WaitHintIsLongWhenIdleAndZeroWhileAPushWaitsToBeTaken) {
  // test_options(): keepalive 60 s, no renewal for 23 h; nothing is due for a long while.
  EXPECT_GT(client_->wait_hint(), 30s);
  const protocol::Time time = now_time();
  server_.write(push_frame(kDevice, time, "wake-up-one") +
                push_frame(kDevice, time + protocol::Tick{1}, "wake-up-two"));
  pollfd p{client_->fd(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 3000), 1);
  const Event first = client_->poll(Millis::zero());  // reads both, returns one
  ASSERT_TRUE(first.push.has_value());
  EXPECT_EQ(first.push->payload, "wake-up-one");
  EXPECT_EQ(client_->wait_hint(), Millis::zero());     // the other is waiting
  const Event second = client_->poll(Millis::zero());
  ASSERT_TRUE(second.push.has_value());
  EXPECT_EQ(second.push->payload, "wake-up-two");
  EXPECT_GT(client_->wait_hint(), 30s);
}

TEST(ClientOuterLoop, WaitHintWhileOfflineIsTheTimeUntilTheNextAttempt) {
  Options options = test_options(free_port());
  options.backoff_initial = 400ms;
  options.backoff_max = 400ms;
  auto client = make_client(options);
  ASSERT_TRUE(client);
  EXPECT_EQ(client->wait_hint(), Millis::zero());  // never tried: try now
  EXPECT_EQ(client->fd(), -1);
  const Event event = client->poll(Millis::zero());
  ASSERT_TRUE(event.error.has_value());
  EXPECT_EQ(event.error->code, ErrorCode::server_gone);
  // The backoff drew a wait in [200 ms, 400 ms]; some of it may have passed already.
  const Millis hint = client->wait_hint();
  EXPECT_GT(hint, Millis::zero());
  EXPECT_LE(hint, 401ms);
  EXPECT_EQ(client->fd(), -1);
}

}  // namespace
}  // namespace iotsocket::client::test
