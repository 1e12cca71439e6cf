// The FIFO record format: `ID payload\n` with \n, \r and \\ escapes.
#include <gtest/gtest.h>

#include <string>

#include "protocol/limits.hpp"
#include "protocol/record.hpp"

namespace iotsocket::protocol {
namespace {

TEST(Record, ParsesIdAndPayload) {
  const auto record = parse_record("1234567890 temp=33.5&humid=40%");
  ASSERT_TRUE(record) << name(record.error());
  EXPECT_EQ(record->device, DeviceId{1234567890});
  EXPECT_EQ(record->payload, "temp=33.5&humid=40%");
}

TEST(Record, ReadsTheIdAsANumber) {
  EXPECT_EQ(parse_record("42 hello")->device, DeviceId{42});
  EXPECT_EQ(parse_record("0000000042 hello")->device, DeviceId{42});
}

TEST(Record, SplitsAtTheFirstSpaceOnly) {
  EXPECT_EQ(parse_record("42 a b  c d e")->payload, "a b  c d e");
  EXPECT_EQ(parse_record("42  leading")->payload, " leading");
}

TEST(Record, UnescapesTheThreeEscapes) {
  EXPECT_EQ(parse_record(R"(42 line1\nline2\r\\end)")->payload, "line1\nline2\r\\end");
  EXPECT_EQ(parse_record(R"(42 \\n is not a newline)")->payload, "\\n is not a newline");
}

TEST(Record, KeepsEveryOtherByteAsIs) {
  const std::string raw = std::string(1, '\0') + "\x01\t\r\xff|#|hello";
  const auto record = parse_record("42 " + raw);
  ASSERT_TRUE(record) << name(record.error());
  EXPECT_EQ(record->payload, raw);
}

struct Bad {
  const char* what;
  std::string line;
  RecordError error;
};

class RecordRejects : public ::testing::TestWithParam<Bad> {};

TEST_P(RecordRejects, Line) {
  const auto record = parse_record(GetParam().line);
  ASSERT_FALSE(record) << GetParam().line;
  EXPECT_EQ(name(record.error()), name(GetParam().error)) << GetParam().line;
}

INSTANTIATE_TEST_SUITE_P(
    Protocol, RecordRejects,
    ::testing::Values(Bad{"empty", "", RecordError::empty_line},
                      Bad{"id_only", "1234567890", RecordError::no_space},
                      Bad{"tab_instead_of_space", "1234567890\thello", RecordError::no_space},
                      Bad{"empty_id", " hello world", RecordError::bad_device_id},
                      Bad{"letter_in_id", "12a4 hello world", RecordError::bad_device_id},
                      Bad{"negative_id", "-1 hello world", RecordError::bad_device_id},
                      Bad{"id_above_10_digits", "99999999999 hello world", RecordError::bad_device_id},
                      Bad{"unknown_escape", R"(42 C:\temp\file)", RecordError::bad_escape},
                      Bad{"trailing_backslash", R"(42 hello world\)", RecordError::bad_escape},
                      Bad{"payload_of_4_bytes", "42 abcd", RecordError::payload_too_short},
                      Bad{"empty_payload", "42 ", RecordError::payload_too_short},
                      Bad{"payload_of_2_bytes_padded", "42   ab   ", RecordError::payload_too_short},
                      Bad{"payload_short_after_delimiter_removal", "42 ab|#|cd", RecordError::payload_too_short},
                      Bad{"payload_only_newlines", R"(42 \n\n\n\n\n)", RecordError::payload_too_short},
                      Bad{"payload_too_large", "42 " + std::string(kMaxBody + 1, 'x'), RecordError::payload_too_large}),
    [](const ::testing::TestParamInfo<Bad>& row) { return std::string(row.param.what); });

TEST(Record, AcceptsTheLargestPayload) {
  EXPECT_TRUE(parse_record("42 " + std::string(kMaxBody, 'x')));
}

TEST(Record, WritesTheTenDigitIdAndEscapes) {
  std::string out;
  append_record(out, DeviceId{42}, "a\nb\\c\rd");
  EXPECT_EQ(out, "0000000042 a\\nb\\\\c\\rd\n");
}

TEST(Record, WrittenRecordsReadBackTheSame) {
  for (const std::string payload : {"hello", "a\nb\nc\nd\ne", "\\\\\\\\\\", "\r\n\r\n\r\nxxxxx",
                                    "trailing backslash\\"}) {
    std::string line;
    append_record(line, DeviceId{1234567890}, payload);
    ASSERT_TRUE(line.ends_with('\n'));
    ASSERT_EQ(line.find('\n'), line.size() - 1) << "one line per record";
    line.pop_back();
    const auto record = parse_record(line);
    ASSERT_TRUE(record) << name(record.error()) << ": " << line;
    EXPECT_EQ(*record, (Record{DeviceId{1234567890}, payload}));
  }
}

}  // namespace
}  // namespace iotsocket::protocol
