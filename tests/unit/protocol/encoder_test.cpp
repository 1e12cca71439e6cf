// The encoders write the legacy bytes exactly (docs/PROTOCOL.md "Frame").
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "frame_builder.hpp"
#include "protocol/encoder.hpp"
#include "protocol/frame.hpp"
#include "protocol/limits.hpp"

namespace iotsocket::protocol {
namespace {

Time time_of(const char* text) { return *parse_time(text); }

TEST(Encoder, WritesTheLegacyClientBytes) {
  std::string out;
  ASSERT_FALSE(append_device_frame(out, DeviceId{1234567890}, "1432qrzd23",
                                   time_of("1795571767.0581"), "temp=33.5&humid=40%"));
  EXPECT_EQ(out, test::kLegacyClientFrame);
}

TEST(Encoder, WritesTheLegacyPushBytes) {
  std::string out;
  ASSERT_FALSE(append_push_frame(out, DeviceId{123456789}, time_of("1795571771.1903"),
                                 "hello-device"));
  EXPECT_EQ(out, test::kLegacyPushFrame);
}

TEST(Encoder, AppendsToWhatIsAlreadyThere) {
  std::string out = "pending";
  ASSERT_FALSE(append_push_frame(out, DeviceId{123456789}, time_of("1795571771.1903"),
                                 "hello-device"));
  EXPECT_EQ(out, "pending" + test::kLegacyPushFrame);
}

TEST(Encoder, DeviceFramesCarryTenDigitsAndPushFramesTheNumber) {
  std::string device_frame;
  ASSERT_FALSE(append_device_frame(device_frame, DeviceId{42}, "k", time_of("1.0"), "hello"));
  EXPECT_NE(device_frame.find("\r\nDEVICE:0000000042\r\n"), std::string::npos);
  std::string push_frame;
  ASSERT_FALSE(append_push_frame(push_frame, DeviceId{42}, time_of("1.0"), "hello"));
  EXPECT_NE(push_frame.find("\r\nDEVICE:42\r\n"), std::string::npos);
}

TEST(Encoder, WritesTimeWithFourDecimals) {
  std::string out;
  ASSERT_FALSE(append_push_frame(out, DeviceId{1}, time_of("1795571771.05"), "hello"));
  EXPECT_NE(out.find("\r\nTIME:1795571771.0500\r\n"), std::string::npos);
}

TEST(Encoder, RemovesEveryDelimiterFromTheBody) {
  EXPECT_EQ(remove_delimiters("a|#|b|#|c"), "abc");
  EXPECT_EQ(remove_delimiters("|#||#|"), "");
  // A deletion that forms a new delimiter: Python's single-pass replace would leave "|#|".
  EXPECT_EQ(remove_delimiters("||#|#|"), "");
  EXPECT_EQ(remove_delimiters("|||###|||"), "|||###|||");
  EXPECT_EQ(remove_delimiters("|#|#|"), "#|");  // as str.replace: left to right
  EXPECT_EQ(remove_delimiters("no delimiter"), "no delimiter");

  std::string out;
  ASSERT_FALSE(append_push_frame(out, DeviceId{1}, time_of("1.0"), "he|#|llo|#|"));
  EXPECT_TRUE(out.ends_with("\r\n\r\nhello|#|"));
  EXPECT_EQ(out.find("|#|"), out.size() - 3);
}

// Found by the decoder fuzzer: "abc|#" followed by the delimiter reads "abc|#|#|", which
// a receiver cuts at the first "|#|", losing "|#" and leaving "#|" to poison the next frame.
TEST(Encoder, KeepsABodyEndingInHalfADelimiterIntact) {
  const struct {
    std::string payload, body;
  } cases[] = {
      {"hello|#", "hello|#"},
      {"hello||#", "hello||#"},
      {"|#hello|#", "|#hello|#"},
      {"hello|#  ", "hello|#"},
      {"hello|#|#", "hello#"},  // the "|#|" is deleted first (rule 11)
  };
  for (const auto& c : cases) {
    std::string out;
    ASSERT_FALSE(append_push_frame(out, DeviceId{1}, time_of("1.0"), c.payload));
    EXPECT_EQ(out.find("|#|"), out.size() - 3) << c.payload;
    const auto frame = parse_frame(std::string_view(out).substr(0, out.size() - 3),
                                   Direction::from_server);
    ASSERT_TRUE(frame) << c.payload << ": " << name(frame.error());
    EXPECT_EQ(frame->body, c.body);
  }
  std::string out;
  ASSERT_FALSE(append_push_frame(out, DeviceId{1}, time_of("1.0"), "hello|#"));
  EXPECT_TRUE(out.ends_with("\r\n\r\nhello|# |#|"));
}

TEST(Encoder, RefusesBodiesTheReceiverWouldRefuse) {
  const struct {
    std::string payload;
    FrameError error;
  } cases[] = {
      {"1234", FrameError::body_too_short},
      {"  1234 \r\n", FrameError::body_too_short},
      {"12|#|34", FrameError::body_too_short},
      {"", FrameError::body_too_short},
      {std::string(kMaxBody + 1, 'x'), FrameError::body_too_large},
  };
  for (const auto& c : cases) {
    std::string out = "kept";
    EXPECT_EQ(append_push_frame(out, DeviceId{1}, time_of("1.0"), c.payload), c.error);
    EXPECT_EQ(append_device_frame(out, DeviceId{1}, "key", time_of("1.0"), c.payload), c.error);
    EXPECT_EQ(out, "kept") << "nothing is appended on error";
    EXPECT_EQ(payload_error(c.payload), c.error);
  }
  EXPECT_FALSE(payload_error(std::string(kMaxBody, 'x')));
  EXPECT_FALSE(payload_error("  12345  "));
}

TEST(Encoder, RefusesKeysThatCannotSurviveTheTrip) {
  const std::vector<std::string> keys{"",         "a:b",   "trailing ", " leading",
                                      "tab\t",    "new\nline", "\x80",  "ab|#|cd",
                                      std::string(kMaxKeyBytes + 1, 'k')};
  for (const std::string& key : keys) {
    std::string out;
    EXPECT_EQ(append_device_frame(out, DeviceId{1}, key, time_of("1.0"), "hello"),
              FrameError::bad_key)
        << key;
    EXPECT_TRUE(out.empty());
  }
  EXPECT_TRUE(is_sendable_key(std::string(kMaxKeyBytes, 'k')));
  EXPECT_TRUE(is_sendable_key("!~AZaz09-_=+/|#"));  // ends in "|#", but "\r\n" follows
}

TEST(Encoder, RefusesIdsAndTimesItsOwnParserWouldRefuse) {
  std::string out;
  EXPECT_EQ(append_push_frame(out, DeviceId{kMaxDeviceId + 1}, time_of("1.0"), "hello"),
            FrameError::bad_device);
  EXPECT_EQ(append_device_frame(out, DeviceId{kMaxDeviceId + 1}, "k", time_of("1.0"), "hello"),
            FrameError::bad_device);
  EXPECT_EQ(append_push_frame(out, DeviceId{1}, kMaxTime + Tick{1}, "hello"), FrameError::bad_time);
  EXPECT_EQ(append_device_frame(out, DeviceId{1}, "k", Time{Tick{-1}}, "hello"),
            FrameError::bad_time);
  EXPECT_TRUE(out.empty());
  EXPECT_FALSE(append_push_frame(out, DeviceId{kMaxDeviceId}, kMaxTime, "hello"));
  EXPECT_NE(out.find("\r\nTIME:999999999999.9999\r\nDEVICE:9999999999\r\n"), std::string::npos);
}

TEST(Encoder, WritesTheBodyStripped) {
  std::string out;
  ASSERT_FALSE(append_device_frame(out, DeviceId{1}, "k", time_of("1.0"), " \r\n hello \t"));
  EXPECT_TRUE(out.ends_with("KEY:k\r\n\r\n\r\nhello|#|"));
}

// Whitespace around a payload does not count toward the body (rule 10) and could make a
// frame of any size; the stripped body keeps every frame within kMaxFrameBytes.
TEST(Encoder, NoPayloadMakesAFrameOverTheSizeLimit) {
  const std::string payload = "\n" + std::string(kMaxBody, 'x') + std::string(70'000, ' ');
  std::string out;
  ASSERT_FALSE(append_device_frame(out, DeviceId{kMaxDeviceId}, std::string(kMaxKeyBytes, 'k'),
                                   kMaxTime, payload));
  EXPECT_LE(out.size(), kMaxFrameBytes);
  std::string push;  // also with the space written after a body that ends in "|#"
  const std::string half_delimiter = std::string(kMaxBody - 2, 'x') + "|#" + std::string(70'000, '\n');
  ASSERT_FALSE(append_push_frame(push, DeviceId{kMaxDeviceId}, kMaxTime, half_delimiter));
  EXPECT_LE(push.size(), kMaxFrameBytes);
  EXPECT_TRUE(parse_frame(std::string_view(push).substr(0, push.size() - 3), Direction::from_server));
}

TEST(Encoder, TheLongestKeyStillMakesAValidFrame) {
  std::string out;
  ASSERT_FALSE(append_device_frame(out, DeviceId{kMaxDeviceId}, std::string(kMaxKeyBytes, 'k'),
                                   kMaxTime, "hello"));
  const auto frame = parse_frame(std::string_view(out).substr(0, out.size() - 3),
                                 Direction::from_device);
  ASSERT_TRUE(frame) << name(frame.error());
  EXPECT_EQ(frame->key.size(), kMaxKeyBytes);
}

}  // namespace
}  // namespace iotsocket::protocol
