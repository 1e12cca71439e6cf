// What the client writes: the login frame byte for byte as the legacy client writes it,
// payload checks, delimiter removal, order and TIMEs of many frames, pacing under
// max_rate, the queue limit, and close() writing what is queued.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <memory>
#include <string>

#include "protocol/encoder.hpp"
#include "tests/unit/client/fake_server.hpp"

namespace iotsocket::client::test {
namespace {

using namespace std::chrono_literals;

std::size_t frame_count(const FakeServer& server, std::size_t connection) {
  return server.inspect([connection](const std::vector<Connection>& c) {
    return c.size() > connection ? c[connection].frames.size() : 0;
  });
}

TEST(ClientFrames, TheLoginFrameIsTheLegacyClientsFrameByteForByte) {
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  options.device_id = "42";
  options.key = "1432qrzd23";
  options.keepalive_payload = "hello, this is the login";
  auto client = connected_client(options);
  ASSERT_TRUE(client);
  ASSERT_TRUE(server.wait_until(
      [](const std::vector<Connection>& c) { return !c.empty() && !c[0].frames.empty(); }, 3s));
  const Connection first = server.inspect([](const std::vector<Connection>& c) { return c[0]; });
  const ReceivedFrame& login = first.frames[0];

  // The legacy client's bytes, written out by hand: 10-digit DEVICE, the extra CRLF.
  const std::string expected = "IOT:1.1\r\nDATE:12/12/2019\r\nTIME:" + login.time_text +
                               "\r\nDEVICE:0000000042\r\nKEY:1432qrzd23\r\n\r\n\r\n"
                               "hello, this is the login|#|";
  EXPECT_EQ(first.received, expected);
  // The same as the protocol library's encoder makes of it.
  std::string encoded;
  ASSERT_FALSE(protocol::append_device_frame(encoded, protocol::DeviceId{42}, "1432qrzd23",
                                             login.time, "hello, this is the login"));
  EXPECT_EQ(first.received, encoded);

  // TIME: digits, '.', exactly four decimals, and now.
  EXPECT_EQ(login.time_text.find('.'), login.time_text.size() - 5) << login.time_text;
  EXPECT_EQ(login.time_text.find_first_not_of("0123456789."), std::string::npos)
      << login.time_text;
  const auto off = now_time() - login.time;
  EXPECT_LT(off, 3s);
  EXPECT_GT(off, -3s);
}

TEST(ClientFrames, TheLoginCarriesTheFirstQueuedPayloadInsteadOfTheKeepalive) {
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  options.keepalive_payload = "keepalive";
  auto client = make_client(options);
  ASSERT_TRUE(client);
  ASSERT_FALSE(client->send("first-reading"));
  ASSERT_FALSE(client->send("second-reading"));
  EXPECT_EQ(client->queued(), 2u);
  ASSERT_FALSE(client->connect());
  Events events;
  EXPECT_TRUE(drive_until(*client, events, [&] { return frame_count(server, 0) >= 2; }, 3s));
  const auto got = server.inspect([](const std::vector<Connection>& c) { return bodies(c[0]); });
  EXPECT_EQ(got, (std::vector<std::string>{"first-reading", "second-reading"}));
  EXPECT_EQ(client->queued(), 0u);
}

TEST(ClientFrames, SendRefusesPayloadsUnderFiveBytesAndQueuesNothing) {
  auto client = make_client(test_options(free_port()));
  ASSERT_TRUE(client);
  for (const char* payload : {"abc", "", "  abc \r\n", "ab|#|cd"}) {
    const auto error = client->send(payload);
    ASSERT_TRUE(error.has_value()) << '"' << payload << '"';
    EXPECT_EQ(name(error->code), "bad_payload") << error->message;
    EXPECT_FALSE(error->fatal);
  }
  EXPECT_EQ(client->queued(), 0u);
  EXPECT_FALSE(client->send("abcde"));  // five bytes: the control
  EXPECT_EQ(client->queued(), 1u);
}

TEST(ClientFrames, SendRefusesAPayloadOverTheBodyLimit) {
  auto client = make_client(test_options(free_port()));
  ASSERT_TRUE(client);
  const auto error = client->send(std::string(62535, 'x'));
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, ErrorCode::bad_payload);
  EXPECT_FALSE(client->send(std::string(62534, 'x')));
}

TEST(ClientFrames, TheDelimiterIsRemovedFromAPayload) {
  FakeServer server(certificates().server);
  auto client = connected_client(test_options(server.port()));
  ASSERT_TRUE(client);
  ASSERT_FALSE(client->send("temp|#|=21.5&humid=40%"));
  Events events;
  EXPECT_TRUE(drive_until(*client, events, [&] { return frame_count(server, 0) >= 2; }, 3s));
  const Connection c = server.inspect([](const std::vector<Connection>& all) { return all[0]; });
  ASSERT_EQ(c.frames.size(), 2u);
  EXPECT_EQ(c.frames[1].body, "temp=21.5&humid=40%");
  EXPECT_EQ(c.framing_error, "");
}

// Back to back: without pacing (max_rate 0) the client writes as fast as TLS takes them.
TEST(ClientFrames, TwoThousandFramesArriveInOrderWithRisingTimes) {
  constexpr int kFrames = 2000;
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  options.max_rate = 0;
  auto client = connected_client(options);
  ASSERT_TRUE(client);
  Events events;
  for (int i = 0; i < kFrames; ++i) {
    const std::string payload = "reading-" + std::to_string(i);
    auto error = client->send(payload);
    // A full queue means: let the client write for a moment (bounded), then again.
    for (int retry = 0; error && error->code == ErrorCode::queue_full && retry < 500; ++retry) {
      drive_for(*client, events, 5ms);
      error = client->send(payload);
    }
    ASSERT_FALSE(error) << i << ": " << name(error->code) << ": " << error->message;
  }
  EXPECT_TRUE(drive_until(*client, events, [&] { return frame_count(server, 0) >= kFrames + 1; },
                          10s));
  EXPECT_TRUE(events.errors.empty()) << events.describe();
  const Connection c = server.inspect([](const std::vector<Connection>& all) { return all[0]; });
  ASSERT_EQ(c.frames.size(), std::size_t{kFrames} + 1);  // the login, then the readings
  EXPECT_EQ(c.framing_error, "");
  for (int i = 0; i < kFrames; ++i) {
    const auto index = static_cast<std::size_t>(i) + 1;
    ASSERT_EQ(c.frames[index].body, "reading-" + std::to_string(i));
    ASSERT_GT(c.frames[index].time, c.frames[index - 1].time) << "frame " << index;
  }
  EXPECT_EQ(client->stats().frames_sent, std::uint64_t{kFrames} + 1);
  EXPECT_EQ(client->queued(), 0u);
}

// Options::max_rate: on average at most max_rate frames a second, in bursts of a third of
// it, so any window of W seconds holds at most max_rate / 3 + W * max_rate frames.
TEST(ClientFrames, FramesArePacedUnderMaxRate) {
  constexpr int kFrames = 40;
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  options.max_rate = 30;  // bursts of 10
  auto client = connected_client(options);
  ASSERT_TRUE(client);
  for (int i = 0; i < kFrames; ++i) ASSERT_FALSE(client->send("paced-" + std::to_string(i)));
  Events events;
  EXPECT_TRUE(drive_until(*client, events, [&] { return frame_count(server, 0) >= kFrames + 1; },
                          5s));
  const Connection c = server.inspect([](const std::vector<Connection>& all) { return all[0]; });
  ASSERT_EQ(c.frames.size(), std::size_t{kFrames} + 1);
  // In any half second: at most 10 + 15 frames (one more for the rounding of TIMEs).
  for (std::size_t first = 0; first < c.frames.size(); ++first) {
    std::size_t in_window = 0;
    for (const ReceivedFrame& frame : c.frames) {
      if (frame.time >= c.frames[first].time && frame.time - c.frames[first].time < 500ms) {
        ++in_window;
      }
    }
    ASSERT_LE(in_window, 26u) << "from frame " << first;
  }
  // So 40 readings take at least (40 - 10 - 10) / 30 s even after a full burst.
  EXPECT_GE(c.frames.back().time - c.frames[1].time, 600ms);
}

TEST(ClientFrames, SendIsQueueFullWhenQueueLimitFramesWait) {
  Options options = test_options(free_port());  // nothing listens: the frames wait
  options.queue_limit = 3;
  auto client = make_client(options);
  ASSERT_TRUE(client);
  EXPECT_FALSE(client->send("frame-1"));
  EXPECT_FALSE(client->send("frame-2"));
  EXPECT_FALSE(client->send("frame-3"));
  const auto error = client->send("frame-4");
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(name(error->code), "queue_full");
  EXPECT_FALSE(error->fatal);
  EXPECT_EQ(client->queued(), 3u);
}

TEST(ClientFrames, CloseWritesTheQueueThenEveryCallIsClosed) {
  FakeServer server(certificates().server);
  auto client = connected_client(test_options(server.port()));
  ASSERT_TRUE(client);
  ASSERT_FALSE(client->send("last-words-1"));
  ASSERT_FALSE(client->send("last-words-2"));
  client->close(2s);
  EXPECT_EQ(client->queued(), 0u);
  EXPECT_FALSE(client->online());
  EXPECT_EQ(client->fd(), -1);
  ASSERT_TRUE(server.wait_until(
      [](const std::vector<Connection>& c) { return c.size() == 1 && c[0].ended; }, 3s));
  const auto got = server.inspect([](const std::vector<Connection>& c) { return bodies(c[0]); });
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[1], "last-words-1");
  EXPECT_EQ(got[2], "last-words-2");

  const auto sent = client->send("too-late");
  ASSERT_TRUE(sent.has_value());
  EXPECT_EQ(sent->code, ErrorCode::closed);
  EXPECT_TRUE(sent->fatal);
  const Event event = client->poll(10ms);
  ASSERT_TRUE(event.error.has_value());
  EXPECT_EQ(event.error->code, ErrorCode::closed);
  EXPECT_EQ(server.connection_count(), 1u);
}

}  // namespace
}  // namespace iotsocket::client::test

namespace iotsocket::client::test {
namespace {

// A clock that steps back (an NTP correction, a Pi without RTC) must not make the client
// send a TIME below one it sent (the server would refuse it as a replay): frames wait,
// one warning says why, and they go out once the clock has caught up.
TEST(ClientFrames, AClockThatStepsBackHoldsFramesAndSaysWhy) {
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  auto offset = std::make_shared<std::atomic<long>>(0);  // milliseconds
  options.clock = [offset] {
    return std::chrono::system_clock::now() + std::chrono::milliseconds(offset->load());
  };
  auto lines = std::make_shared<std::vector<std::string>>();
  options.log = [lines](LogLevel, std::string_view line) { lines->emplace_back(line); };
  auto client = connected_client(options);
  ASSERT_TRUE(client);
  offset->store(-5000);
  ASSERT_FALSE(client->send("after-the-step"));
  Events events;
  drive_for(*client, events, 500ms);
  EXPECT_EQ(frame_count(server, 0), 1u);  // the login only: the frame waits
  const auto warned = std::count_if(lines->begin(), lines->end(), [](const std::string& l) {
    return l.find("stepped back") != std::string::npos;
  });
  EXPECT_EQ(warned, 1);
  offset->store(0);
  EXPECT_TRUE(drive_until(*client, events, [&] { return frame_count(server, 0) == 2; }, 3s))
      << events.describe();
  const Connection first = server.inspect([](const std::vector<Connection>& c) { return c[0]; });
  EXPECT_GT(first.frames[1].time, first.frames[0].time);
  EXPECT_EQ(first.frames[1].body, "after-the-step");
}

}  // namespace
}  // namespace iotsocket::client::test
