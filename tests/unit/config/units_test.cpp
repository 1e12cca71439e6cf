#include "config/units.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace iotsocket::config {
namespace {

using namespace std::chrono_literals;

struct DurationCase {
  const char* text;
  Duration expected;
};

TEST(ParseDuration, EveryUnit) {
  const DurationCase cases[] = {
      {"500ms", 500ms}, {"1ms", 1ms}, {"90s", 90s},     {"1s", 1s},     {"5m", 5min},
      {"60m", 1h},      {"24h", 24h}, {"8760h", 8760h}, {"0090s", 90s}, {"1000ms", 1s},
  };
  for (const auto& c : cases) {
    const auto parsed = parse_duration(c.text);
    ASSERT_TRUE(parsed.has_value()) << c.text << ": " << parsed.error();
    EXPECT_EQ(*parsed, c.expected) << c.text;
  }
}

struct BadCase {
  const char* text;
  const char* fragment;
};

// Each text is refused with a message that contains its fragment and `always`.
template <class Parse>
void expect_refused(Parse parse, std::span<const BadCase> cases, std::string_view always = "") {
  for (const auto& c : cases) {
    const auto parsed = parse(c.text);
    ASSERT_FALSE(parsed.has_value()) << c.text;
    EXPECT_NE(parsed.error().find(c.fragment), std::string::npos)
        << c.text << ": " << parsed.error();
    EXPECT_NE(parsed.error().find(always), std::string::npos) << c.text << ": " << parsed.error();
  }
}

TEST(ParseDuration, RefusesWithAMessageThatSaysWhatIsAccepted) {
  const BadCase cases[] = {
      {"90", "duration without a unit '90'"},
      {"0s", "zero duration '0s'"},
      {"0ms", "zero duration"},
      {"-5s", "negative duration '-5s'"},
      {"5d", "unknown unit in duration '5d'"},
      {"5S", "unknown unit"},
      {"1.5s", "unknown unit"},
      {"5 s", "unknown unit"},
      {" 5s", "not a duration"},
      {"+5s", "not a duration"},
      {"", "not a duration ''"},
      {"s", "not a duration"},
      {"8761h", "too long; at most 8760h"},
      {"99999999999999999999999s", "too long"},
  };
  expect_refused([](std::string_view text) { return parse_duration(text); }, cases);
  const auto bare = parse_duration("90");
  ASSERT_FALSE(bare.has_value());
  EXPECT_NE(bare.error().find("ms, s, m or h"), std::string::npos) << bare.error();
}

struct SizeCase {
  const char* text;
  std::uint64_t expected;
};

TEST(ParseSize, EveryUnit) {
  const SizeCase cases[] = {
      {"0", 0},
      {"512", 512},
      {"512B", 512},
      {"4KiB", 4096},
      {"64MiB", 64ULL << 20},
      {"1GiB", 1ULL << 30},
      {"2TiB", 2ULL << 40},
      {"4KB", 4000},
      {"64MB", 64'000'000},
      {"1GB", 1'000'000'000},
      {"3TB", 3'000'000'000'000},
      {"18446744073709551615", 18446744073709551615ULL},
  };
  for (const auto& c : cases) {
    const auto parsed = parse_size(c.text);
    ASSERT_TRUE(parsed.has_value()) << c.text << ": " << parsed.error();
    EXPECT_EQ(*parsed, c.expected) << c.text;
  }
}

TEST(ParseSize, RefusesWithAMessageThatSaysWhatIsAccepted) {
  const BadCase cases[] = {
      {"4kb", "unknown unit in size '4kb'"},
      {"4K", "unknown unit"},
      {"1.5GiB", "unknown unit"},
      {"-1", "negative size '-1'"},
      {"", "not a size ''"},
      {"MiB", "not a size"},
      {"18446744073709551616", "size too large"},
      {"20000000TiB", "size too large"},
  };
  // Every refusal lists what is accepted.
  expect_refused([](std::string_view text) { return parse_size(text); }, cases,
                 "B, KiB, MiB, GiB, TiB (powers of 1024) or KB, MB, GB, TB (powers of 1000)");
}

TEST(ParseUnsigned, DigitsOnly) {
  EXPECT_EQ(parse_unsigned("0"), 0u);
  EXPECT_EQ(parse_unsigned("65535"), 65535u);
  EXPECT_EQ(parse_unsigned("18446744073709551615"), 18446744073709551615ULL);
  EXPECT_FALSE(parse_unsigned("18446744073709551616"));
  EXPECT_FALSE(parse_unsigned("-1"));
  EXPECT_FALSE(parse_unsigned("+1"));
  EXPECT_FALSE(parse_unsigned("1k"));
  EXPECT_FALSE(parse_unsigned("0x10"));
  EXPECT_FALSE(parse_unsigned(""));
}

}  // namespace
}  // namespace iotsocket::config
