// docs/PROTOCOL.md rules 2 to 10 on single frames, table-driven: each row breaks one rule.
// (Time tolerance, replay and DEVICE/KEY continuity are in session_test.cpp; the
// registry-backed rejections arrive with the server's end-to-end tests.)
#include <gtest/gtest.h>

#include <string>

#include "frame_builder.hpp"
#include "protocol/frame.hpp"
#include "protocol/limits.hpp"

namespace iotsocket::protocol {
namespace {

using test::content_of;
using test::FrameBuilder;
using test::kLegacyClientFrame;
using test::kLegacyPushFrame;

std::string without_delimiter(const std::string& frame) {
  return frame.substr(0, frame.size() - kDelimiter.size());
}

TEST(FrameParser, AcceptsTheLegacyClientBytes) {
  const std::string content = without_delimiter(kLegacyClientFrame);
  const auto frame = parse_frame(content, Direction::from_device);
  ASSERT_TRUE(frame) << name(frame.error());
  EXPECT_EQ(frame->device, DeviceId{1234567890});
  EXPECT_EQ(frame->key, "1432qrzd23");
  EXPECT_EQ(frame->date, "12/12/2019");
  EXPECT_EQ(frame->time_text, "1795571767.0581");
  EXPECT_EQ(frame->time.time_since_epoch().count(), 17955717670581);
  EXPECT_EQ(frame->body, "temp=33.5&humid=40%");
}

TEST(FrameParser, AcceptsTheLegacyPushBytes) {
  const std::string content = without_delimiter(kLegacyPushFrame);
  const auto frame = parse_frame(content, Direction::from_server);
  ASSERT_TRUE(frame) << name(frame.error());
  EXPECT_EQ(frame->device, DeviceId{123456789});
  EXPECT_EQ(frame->key, "AJ");
  EXPECT_EQ(frame->time.time_since_epoch().count(), 17955717711903);
  EXPECT_EQ(frame->body, "hello-device");
}

// Names each parameterized case after its `what`, so a failure says which row broke.
struct NamedByWhat {
  template <class Row>
  std::string operator()(const ::testing::TestParamInfo<Row>& row) const {
    return row.param.what;
  }
};

struct Accepted {
  const char* what;
  FrameBuilder frame;
  std::string body;
};

class FrameParserAccepts : public ::testing::TestWithParam<Accepted> {};

TEST_P(FrameParserAccepts, Frame) {
  const std::string content = GetParam().frame.content();
  const auto frame = parse_frame(content, Direction::from_device);
  ASSERT_TRUE(frame) << name(frame.error());
  EXPECT_EQ(frame->body, GetParam().body);
}

FrameBuilder reordered() {
  FrameBuilder b;
  b.headers = {"KEY:1432qrzd23", "DEVICE:1234567890", "TIME:1795571767.0581", "IOT:1.1",
               "DATE:12/12/2019"};
  return b;
}

INSTANTIATE_TEST_SUITE_P(
    Protocol, FrameParserAccepts,
    ::testing::Values(
        Accepted{"body_with_spaces", FrameBuilder{}.with_body("  a b  c d e  "), "a b  c d e"},
        // Rule 3 strips exactly space, \t, \n, \v, \f, \r: not NUL, \x1c or \xa0.
        Accepted{"body_stripped_of_all_six_spaces", FrameBuilder{}.with_body(" \t\n\v\f\rhello\r\f\v\n\t "),
                 "hello"},
        Accepted{"body_keeps_other_control_bytes",
                 FrameBuilder{}.with_body(std::string("\x1c\xa0hello\0", 8)),
                 std::string("\x1c\xa0hello\0", 8)},
        Accepted{"body_of_exactly_5_bytes", FrameBuilder{}.with_body("12345"), "12345"},
        Accepted{"header_lines_in_another_order", reordered(), "temp=33.5&humid=40%"},
        Accepted{"single_crlf_blank_line", [] {
                   FrameBuilder b;
                   b.separator = "\r\n\r\n";
                   return b;
                 }(),
                 "temp=33.5&humid=40%"},
        Accepted{"device_id_with_leading_zeros", FrameBuilder{}.with_device("0000000042"),
                 "temp=33.5&humid=40%"},
        Accepted{"time_with_one_decimal", FrameBuilder{}.with_time("1795571767.5"),
                 "temp=33.5&humid=40%"},
        Accepted{"time_with_six_decimals", FrameBuilder{}.with_time("1795571767.123456"),
                 "temp=33.5&humid=40%"},
        Accepted{"date_is_not_checked", FrameBuilder{}.set(1, "DATE:whenever"),
                 "temp=33.5&humid=40%"},
        Accepted{"empty_date", FrameBuilder{}.set(1, "DATE:"), "temp=33.5&humid=40%"},
        Accepted{"body_holding_crlfcrlf", FrameBuilder{}.with_body("a\r\n\r\nb\r\n\r\nc"),
                 "a\r\n\r\nb\r\n\r\nc"},
        Accepted{"body_of_62534_bytes", FrameBuilder{}.with_body(std::string(62534, 'x')),
                 std::string(62534, 'x')}),
    NamedByWhat{});

struct Rejected {
  const char* what;
  std::string content;
  FrameError error;
};

class FrameParserRejects : public ::testing::TestWithParam<Rejected> {};

TEST_P(FrameParserRejects, Frame) {
  const auto frame = parse_frame(GetParam().content, Direction::from_device);
  ASSERT_FALSE(frame) << "accepted: " << GetParam().what;
  EXPECT_EQ(name(frame.error()), name(GetParam().error));
}

FrameBuilder with_headers(std::vector<std::string> headers) {
  FrameBuilder b;
  b.headers = std::move(headers);
  return b;
}

// A valid frame whose header block (measured as received, up to the blank line) is
// `size` bytes: the DATE value is padded.
std::string header_block_of(std::size_t size) {
  FrameBuilder b;
  const std::size_t date_value = std::string("12/12/2019").size();
  const std::size_t base = b.content().find("\r\n\r\n");
  b.set(1, "DATE:" + std::string(size - base + date_value, 'd'));
  return b.content();
}


INSTANTIATE_TEST_SUITE_P(
    Protocol, FrameParserRejects,
    ::testing::Values(
        Rejected{"iot_1_0", FrameBuilder{}.set(0, "IOT:1.0").content(), FrameError::bad_version},
        Rejected{"iot_space_1_1", FrameBuilder{}.set(0, "IOT: 1.1").content(),
                 FrameError::bad_version},
        Rejected{"iot_1_1_space", FrameBuilder{}.set(0, "IOT:1.1 ").content(),
                 FrameError::bad_version},
        Rejected{"four_headers",
                 with_headers({"IOT:1.1", "DATE:1", "TIME:1795571767.0581", "DEVICE:1234567890"})
                     .content(),
                 FrameError::bad_header_count},
        Rejected{"six_headers",
                 with_headers({"IOT:1.1", "DATE:1", "TIME:1795571767.0581", "DEVICE:1234567890",
                               "KEY:k", "X:1"})
                     .content(),
                 FrameError::bad_header_count},
        Rejected{"six_headers_one_repeated",
                 with_headers({"IOT:1.1", "DATE:1", "TIME:1795571767.0581", "DEVICE:1234567890",
                               "KEY:k", "DATE:2"})
                     .content(),
                 FrameError::bad_header_count},
        Rejected{"repeated_header",
                 with_headers({"IOT:1.1", "DATE:1", "TIME:1795571767.0581", "DEVICE:1234567890",
                               "DATE:2"})
                     .content(),
                 FrameError::duplicate_header},
        Rejected{"header_line_with_two_colons", FrameBuilder{}.set(1, "DATE:12:12").content(),
                 FrameError::bad_header_line},
        Rejected{"header_line_without_colon", FrameBuilder{}.set(1, "DATE 12").content(),
                 FrameError::bad_header_line},
        Rejected{"lowercase_header_name", FrameBuilder{}.set(0, "iot:1.1").content(),
                 FrameError::unknown_header},
        Rejected{"header_name_with_space", FrameBuilder{}.set(0, "IOT :1.1").content(),
                 FrameError::unknown_header},
        Rejected{"no_blank_line", [] {
                   FrameBuilder b;
                   b.separator = "\r\n";
                   return b.content();
                 }(),
                 FrameError::no_blank_line},
        Rejected{"only_whitespace", "\r\n  \t ", FrameError::no_blank_line},
        Rejected{"empty_header_block", "\r\n\r\nbody of the frame", FrameError::bad_header_count},
        Rejected{"device_of_9_digits", FrameBuilder{}.with_device("123456789").content(),
                 FrameError::bad_device},
        Rejected{"device_of_11_digits", FrameBuilder{}.with_device("12345678901").content(),
                 FrameError::bad_device},
        Rejected{"device_with_a_letter", FrameBuilder{}.with_device("12345a7890").content(),
                 FrameError::bad_device},
        Rejected{"device_with_a_sign", FrameBuilder{}.with_device("+123456789").content(),
                 FrameError::bad_device},
        Rejected{"empty_key", FrameBuilder{}.with_key("").content(), FrameError::bad_key},
        Rejected{"time_without_dot", FrameBuilder{}.with_time("1795571767").content(),
                 FrameError::bad_time},
        Rejected{"time_without_decimals", FrameBuilder{}.with_time("1795571767.").content(),
                 FrameError::bad_time},
        Rejected{"time_without_seconds", FrameBuilder{}.with_time(".0581").content(),
                 FrameError::bad_time},
        Rejected{"time_with_two_dots", FrameBuilder{}.with_time("1795571767.05.81").content(),
                 FrameError::bad_time},
        Rejected{"time_negative", FrameBuilder{}.with_time("-1795571767.0581").content(),
                 FrameError::bad_time},
        Rejected{"time_with_exponent", FrameBuilder{}.with_time("1.7e9").content(),
                 FrameError::bad_time},
        Rejected{"time_in_clock_format", FrameBuilder{}.with_time("15.13.54.420103").content(),
                 FrameError::bad_time},
        Rejected{"body_of_4_bytes", FrameBuilder{}.with_body("1234").content(),
                 FrameError::body_too_short},
        Rejected{"body_of_4_bytes_padded", FrameBuilder{}.with_body(" \t1234\r\n ").content(),
                 FrameError::body_too_short},
        Rejected{"empty_body", FrameBuilder{}.with_body("").content(), FrameError::body_too_short},
        Rejected{"body_of_62535_bytes", FrameBuilder{}.with_body(std::string(62535, 'x')).content(),
                 FrameError::body_too_large},
        Rejected{"header_block_of_1024_bytes", header_block_of(1024), FrameError::header_too_large},
        Rejected{"content_of_65533_bytes", content_of(65533), FrameError::frame_too_large}),
    NamedByWhat{});

TEST(FrameParser, HeaderBlockOf1023BytesIsAccepted) {
  const std::string content = header_block_of(1023);
  ASSERT_EQ(content.find("\r\n\r\n"), 1023u);
  EXPECT_TRUE(parse_frame(content, Direction::from_device));
  ASSERT_EQ(header_block_of(1024).find("\r\n\r\n"), 1024u);
}

TEST(FrameParser, ContentOf65532BytesIsAccepted) {
  const std::string content = content_of(65532);
  ASSERT_EQ(content.size(), 65532u);
  const auto frame = parse_frame(content, Direction::from_device);
  ASSERT_TRUE(frame) << name(frame.error());
  EXPECT_EQ(frame->body, "hello");
}

TEST(FrameParser, PushFramesCarryDeviceIdsWithoutLeadingZeros) {
  for (const char* id : {"0", "7", "123456789", "9999999999", "0000000007"}) {
    const std::string content = FrameBuilder{}.with_device(id).content();
    EXPECT_TRUE(parse_frame(content, Direction::from_server)) << id;
  }
  for (const char* id : {"", "10000000000", "12a", "-1"}) {
    const std::string content = FrameBuilder{}.with_device(id).content();
    const auto frame = parse_frame(content, Direction::from_server);
    ASSERT_FALSE(frame) << id;
    EXPECT_EQ(frame.error(), FrameError::bad_device) << id;
  }
}

TEST(FrameParser, KeyIsTakenAsWritten) {
  // Nothing is trimmed inside a header line (rule 4); only the block's ends are stripped.
  const std::string content = FrameBuilder{}.with_key(" spaced key").content();
  const auto frame = parse_frame(content, Direction::from_device);
  ASSERT_TRUE(frame) << name(frame.error());
  EXPECT_EQ(frame->key, " spaced key");
}

}  // namespace
}  // namespace iotsocket::protocol
