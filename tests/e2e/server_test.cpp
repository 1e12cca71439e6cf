// iotsocketd end to end: the built binary, real TLS on 127.0.0.1, a real registry and the
// real inbound FIFO.
#include <fcntl.h>

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <signal.h>
#include <thread>

#include "protocol/encoder.hpp"
#include "protocol/time.hpp"
#include "tests/e2e/harness.hpp"
#include "tests/unit/protocol/frame_builder.hpp"

namespace iotsocket::e2e {
namespace {

using protocol::DeviceId;
using protocol::test::FrameBuilder;

constexpr std::uint64_t kFirstId = 1234567890;
const std::string kKey = "1432qrzd23";

// The legacy client's frame with TIME = now: the bytes the devices in the field send.
FrameBuilder legacy_frame_now(std::uint64_t id = kFirstId) {
  FrameBuilder b;
  b.with_time(protocol::format_time(fresh_time()));
  b.with_device(protocol::to_string(DeviceId{id}));
  return b;
}

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.add_devices(kFirstId, 10, kKey);
    server_.start();
    reader_.emplace(server_.inbound_fifo());
  }

  // A device logged in with one message, whose record is read back.
  void expect_serving(std::uint64_t id, std::string_view payload) {
    Device d(server_.port());
    ASSERT_TRUE(d.send_frame(DeviceId{id}, kKey, payload));
    auto records = reader_->read(1);
    ASSERT_EQ(records.size(), 1u) << server_.log();
    EXPECT_EQ(records[0].device, DeviceId{id});
    EXPECT_EQ(records[0].payload, payload);
  }

  TestServer server_;
  std::optional<InboundReader> reader_;
};

TEST_F(ServerTest, LegacyFrameBecomesOneRecordInTheInboundFifo) {
  Device d(server_.port());
  ASSERT_TRUE(d.connected());
  ASSERT_TRUE(d.send_raw(legacy_frame_now().bytes()));
  auto records = reader_->read(1);
  ASSERT_EQ(records.size(), 1u) << server_.log();
  EXPECT_EQ(records[0].device, DeviceId{kFirstId});
  EXPECT_EQ(records[0].payload, "temp=33.5&humid=40%");
  EXPECT_TRUE(reader_->bad_lines().empty());
  EXPECT_TRUE(server_.wait_for_log("login device=1234567890 peer=127.0.0.1:"));
}

TEST_F(ServerTest, RecordBytesAreTheDocumentedLineWithEscapes) {
  // Read the raw bytes, not parsed records: this is what a PHP backend sees.
  Device d(server_.port());
  ASSERT_TRUE(d.send_frame(DeviceId{kFirstId + 1}, kKey, "line1\nline2\\end\r"));
  std::string expected = "1234567891 line1\\nline2\\\\end\n";  // the body is stripped (rule 3)
  Fd fifo(::open(server_.inbound_fifo().c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  reader_.reset();
  std::string got;
  const auto deadline = Clock::now() + 10s;
  while (got.size() < expected.size() && Clock::now() < deadline) {
    char buf[256];
    ssize_t n = ::read(fifo.get(), buf, sizeof buf);
    if (n > 0) got.append(buf, static_cast<std::size_t>(n));
    else std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(got, expected);
}

TEST_F(ServerTest, FramesInOneWriteAndFramesSplitByteByByteAllArrive) {
  Device d(server_.port());
  std::string three;
  for (int i = 0; i < 3; ++i) {
    protocol::append_device_frame(three, DeviceId{kFirstId}, kKey, fresh_time(), "batch-" + std::to_string(i));
  }
  ASSERT_TRUE(d.send_raw(three));
  std::string split;
  protocol::append_device_frame(split, DeviceId{kFirstId}, kKey, fresh_time(), "byte by byte");
  for (char ch : split) ASSERT_TRUE(d.send_raw(std::string_view(&ch, 1)));
  auto records = reader_->read(4);
  ASSERT_EQ(records.size(), 4u) << server_.log();
  EXPECT_EQ(records[0].payload, "batch-0");
  EXPECT_EQ(records[2].payload, "batch-2");
  EXPECT_EQ(records[3].payload, "byte by byte");
}

// Each rejection of docs/PROTOCOL.md: the connection is closed, the reason is logged, and a
// device connected before keeps being served.
struct Rejection {
  const char* name;
  std::string bytes;     // sent after an optional good login frame
  bool login_first;      // send a valid frame first (continuity rules)
  const char* reason;    // the reason code in the log
};

std::vector<Rejection> rejections() {
  const auto now = fresh_time();
  const std::string stale = protocol::format_time(now - std::chrono::seconds(3));
  const std::string ahead = protocol::format_time(now + std::chrono::seconds(4));
  auto f = [] { return legacy_frame_now(); };
  std::vector<Rejection> r = {
      {"version_1_0", f().set(0, "IOT:1.0").bytes(), false, "reason=bad_version"},
      {"version_with_space", f().set(0, "IOT: 1.1").bytes(), false, "reason=bad_version"},
      {"four_headers", [&] { auto b = f(); b.headers.pop_back(); return b.bytes(); }(), false, "reason=bad_header_count"},
      {"six_headers", [&] { auto b = f(); b.headers.push_back("X:y"); return b.bytes(); }(), false, "reason=bad_header_count"},
      {"repeated_header", f().set(1, "IOT:1.1").bytes(), false, "reason=duplicate_header"},
      {"two_colons", f().set(1, "DATE:12:12").bytes(), false, "reason=bad_header_line"},
      {"no_blank_line", [&] { auto b = f(); b.separator = "\r\n"; return b.bytes(); }(), false, "reason=no_blank_line"},
      {"device_9_digits", f().with_device("123456789").bytes(), false, "reason=bad_device"},
      {"device_11_digits", f().with_device("12345678901").bytes(), false, "reason=bad_device"},
      {"device_letter", f().with_device("12345678a0").bytes(), false, "reason=bad_device"},
      {"empty_key", f().with_key("").bytes(), false, "reason=bad_key"},
      {"time_without_dot", f().with_time("1795571767").bytes(), false, "reason=bad_time"},
      {"time_3s_behind", f().with_time(stale).bytes(), false, "reason=time_skew"},
      {"time_4s_ahead", f().with_time(ahead).bytes(), false, "reason=time_skew"},
      {"body_4_bytes", f().with_body("abcd").bytes(), false, "reason=body_too_short"},
      {"header_block_1024", f().set(1, "DATE:" + std::string(1024, 'd')).bytes(), false, "reason=header_too_large"},
      {"no_delimiter_65536", std::string(65536, 'x'), false, "reason=frame_too_large"},
      {"wrong_key", f().with_key("wrong-key").bytes(), false, "reason=wrong_key"},
      {"unknown_device", f().with_device("0000000001").bytes(), false, "reason=unknown_device"},
      {"second_frame_other_device", f().with_device(protocol::to_string(DeviceId{kFirstId + 1})).bytes(), true, "reason=device_mismatch"},
      {"second_frame_other_key", f().with_key("other").bytes(), true, "reason=key_mismatch"},
  };
  return r;
}

TEST_F(ServerTest, EachRejectionClosesOnlyThatConnectionAndIsLogged) {
  const std::uint64_t bystander_id = kFirstId + 9;
  Device bystander(server_.port());
  ASSERT_TRUE(bystander.send_frame(DeviceId{bystander_id}, kKey, "bystander-hello"));
  ASSERT_EQ(reader_->read(1).size(), 1u);

  for (const Rejection& r : rejections()) {
    SCOPED_TRACE(r.name);
    const std::size_t before = server_.count_in_log(r.reason);
    Device d(server_.port());
    ASSERT_TRUE(d.connected());
    if (r.login_first) {
      ASSERT_TRUE(d.send_raw(legacy_frame_now().bytes()));
      ASSERT_EQ(reader_->read(1).size(), 1u);
    }
    d.send_raw(r.bytes);
    EXPECT_TRUE(d.wait_closed()) << "not closed";
    EXPECT_TRUE(server_.wait_for_log(r.reason)) << server_.log();
    EXPECT_EQ(server_.count_in_log(r.reason), before + 1);
    // The bystander is still served.
    ASSERT_TRUE(bystander.send_frame(DeviceId{bystander_id}, kKey, std::string("still-here-") + r.name));
    auto records = reader_->read(1);
    ASSERT_EQ(records.size(), 1u) << server_.log();
    EXPECT_EQ(records[0].payload, std::string("still-here-") + r.name);
  }
  EXPECT_TRUE(reader_->bad_lines().empty());
}

TEST_F(ServerTest, DisabledDeviceIsRefusedAndEnabledAgainIsServed) {
  ASSERT_EQ(server_.ctl({"devices", "disable", std::to_string(kFirstId + 2)}).exit_code, 0);
  Device d(server_.port());
  d.send_frame(DeviceId{kFirstId + 2}, kKey, "should not pass");
  EXPECT_TRUE(d.wait_closed());
  EXPECT_TRUE(server_.wait_for_log("device=1234567892 peer=127.0.0.1"));
  EXPECT_TRUE(server_.wait_for_log("reason=disabled_device"));
  EXPECT_TRUE(reader_->read(1, 300ms).empty());
  ASSERT_EQ(server_.ctl({"devices", "enable", std::to_string(kFirstId + 2)}).exit_code, 0);
  expect_serving(kFirstId + 2, "enabled again");
}

TEST_F(ServerTest, SecondLoginOfAConnectedDeviceIsRefusedOnEitherWorker) {
  Device first(server_.port());
  ASSERT_TRUE(first.send_frame(DeviceId{kFirstId + 3}, kKey, "first login"));
  ASSERT_EQ(reader_->read(1).size(), 1u);
  // Two workers, least-loaded hand-off: a few tries land on both of them.
  for (int i = 0; i < 4; ++i) {
    Device clone(server_.port());
    clone.send_frame(DeviceId{kFirstId + 3}, kKey, "clone login");
    EXPECT_TRUE(clone.wait_closed());
  }
  EXPECT_TRUE(server_.wait_for_log("reason=duplicate_login"));
  EXPECT_EQ(server_.count_in_log("reason=duplicate_login"), 4u);
  EXPECT_TRUE(reader_->read(1, 300ms).empty());
  // The first connection is untouched.
  ASSERT_TRUE(first.send_frame(DeviceId{kFirstId + 3}, kKey, "first still here"));
  auto records = reader_->read(1);
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].payload, "first still here");
}

TEST_F(ServerTest, FrameReplayedOnANewConnectionIsRefused) {
  std::string frame;
  protocol::append_device_frame(frame, DeviceId{kFirstId + 4}, kKey, fresh_time(), "recorded");
  {
    Device d(server_.port());
    ASSERT_TRUE(d.send_raw(frame));
    ASSERT_EQ(reader_->read(1).size(), 1u);
  }  // the device goes away; an attacker replays what it recorded, on new connections
  ASSERT_TRUE(server_.wait_for_log("closed device=1234567894"));
  for (int i = 0; i < 4; ++i) {  // both workers
    Device attacker(server_.port());
    attacker.send_raw(frame);
    EXPECT_TRUE(attacker.wait_closed());
  }
  EXPECT_EQ(server_.count_in_log("reason=replayed_time"), 4u) << server_.log();
  EXPECT_TRUE(reader_->read(1, 300ms).empty());
}

TEST_F(ServerTest, FrameReplayedAfterARestartIsRefused) {
  std::string frame;
  protocol::append_device_frame(frame, DeviceId{kFirstId + 5}, kKey, fresh_time(), "recorded");
  {
    Device d(server_.port());
    ASSERT_TRUE(d.send_raw(frame));
    ASSERT_EQ(reader_->read(1).size(), 1u);
  }
  ASSERT_TRUE(server_.wait_for_log("closed device=1234567895"));
  ASSERT_EQ(server_.stop(), 0);
  server_.start();
  Device attacker(server_.port());
  attacker.send_raw(frame);
  EXPECT_TRUE(attacker.wait_closed());
  EXPECT_TRUE(server_.wait_for_log("reason=replayed_time")) << server_.log();
}

std::vector<pid_t> children_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  std::vector<pid_t> out;
  for (pid_t child; in >> child;) out.push_back(child);
  return out;
}

TEST_F(ServerTest, KilledWorkerIsReplacedAndItsDevicesLogInAgain) {
  // One device on each worker (least-loaded hand-off alternates).
  const std::uint64_t ids[2] = {kFirstId + 7, kFirstId + 8};
  std::string frames[2];
  Device a(server_.port()), b(server_.port());
  Device* devices[2] = {&a, &b};
  for (int i = 0; i < 2; ++i) {
    protocol::append_device_frame(frames[i], DeviceId{ids[i]}, kKey, fresh_time(), "before the kill");
    ASSERT_TRUE(devices[i]->send_raw(frames[i]));
  }
  ASSERT_EQ(reader_->read(2).size(), 2u);
  auto workers = children_of(server_.pid());
  ASSERT_EQ(workers.size(), 2u);
  ASSERT_EQ(::kill(workers[0], SIGKILL), 0);
  EXPECT_TRUE(server_.wait_for_log("died: signal Killed")) << server_.log();
  // The dead worker's device is free at once, and its replay mark is the TIME that worker
  // accepted last (a worker raises the mark before the frame goes anywhere): the frame it
  // accepted, replayed, is refused as a replay. The other device is still connected: its
  // frame replayed is a second login of it, refused as such.
  for (const std::string& frame : frames) {
    Device replay(server_.port());
    replay.send_raw(frame);
    EXPECT_TRUE(replay.wait_closed()) << server_.log();
  }
  EXPECT_TRUE(server_.wait_for_log("reason=replayed_time")) << server_.log();
  EXPECT_TRUE(server_.wait_for_log("reason=duplicate_login")) << server_.log();
  EXPECT_EQ(server_.count_in_log("reason=replayed_time"), 1u) << server_.log();
  EXPECT_EQ(server_.count_in_log("reason=duplicate_login"), 1u) << server_.log();
  // Replaced (after the 1 s crash-loop guard, since it died young).
  server_.wait_for_log_count(" ready", 3, 5s);
  EXPECT_EQ(server_.count_in_log(" ready"), 3u) << server_.log();
  // Exactly one of the two devices lost its connection; both can send again at once (the
  // dead worker's hold on its device was released), and the server serves new devices.
  int lost = 0;
  for (int i = 0; i < 2; ++i) {
    if (!devices[i]->send_frame(DeviceId{ids[i]}, kKey, "after the kill") ||
        devices[i]->wait_closed(300ms)) {
      ++lost;
      Device again(server_.port());
      ASSERT_TRUE(again.send_frame(DeviceId{ids[i]}, kKey, "after the kill")) << server_.log();
      ASSERT_EQ(reader_->read(1).size(), 1u) << server_.log();
    } else {
      ASSERT_EQ(reader_->read(1).size(), 1u) << server_.log();
    }
  }
  EXPECT_EQ(lost, 1);
  EXPECT_EQ(children_of(server_.pid()).size(), 2u);
}

TEST_F(ServerTest, SpeaksTls12AndTls13AndRefusesOlderVersions) {
  auto s_client = [&](std::vector<std::string> extra) {
    std::vector<std::string> argv{"/usr/bin/openssl", "s_client", "-connect",
                                  "127.0.0.1:" + std::to_string(server_.port()), "-brief"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return run_command(argv);
  };
  auto tls13 = s_client({"-tls1_3"});
  EXPECT_EQ(tls13.exit_code, 0) << tls13.err;
  EXPECT_NE(tls13.err.find("Protocol version: TLSv1.3"), std::string::npos) << tls13.err;
  auto tls12 = s_client({"-tls1_2"});
  EXPECT_EQ(tls12.exit_code, 0) << tls12.err;
  EXPECT_NE(tls12.err.find("Protocol version: TLSv1.2"), std::string::npos) << tls12.err;
  // A client willing to speak TLS 1.1 (security level 0 lifts the client's own ban).
  auto tls11 = s_client({"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"});
  EXPECT_NE(tls11.exit_code, 0);
  EXPECT_NE(tls11.err.find("alert protocol version"), std::string::npos) << tls11.err;
  EXPECT_TRUE(server_.wait_for_log("unsupported protocol")) << server_.log();
}

TEST_F(ServerTest, PlainTcpWithoutTlsIsRefusedByTheTlsListener) {
  Device plain(server_.port(), /*tls=*/false);
  plain.send_raw(legacy_frame_now().bytes());
  EXPECT_TRUE(plain.wait_closed());
  EXPECT_TRUE(server_.wait_for_log("tls failed peer=127.0.0.1"));
  expect_serving(kFirstId + 6, "tls devices still served");
}

}  // namespace
}  // namespace iotsocket::e2e
