#include "config/units.hpp"

#include <array>
#include <charconv>
#include <limits>
#include <span>
#include <utility>

namespace iotsocket::config {
namespace {

using Unit = std::pair<std::string_view, std::uint64_t>;  // suffix, factor

constexpr std::uint64_t kMs = 1;
constexpr std::uint64_t kSecond = 1000 * kMs;
constexpr std::array<Unit, 4> kDurationUnits{
    {{"ms", kMs}, {"s", kSecond}, {"m", 60 * kSecond}, {"h", 3600 * kSecond}}};

constexpr std::uint64_t kKi = 1024;
constexpr std::uint64_t kK = 1000;
constexpr std::array<Unit, 10> kSizeUnits{{{"", 1},
                                           {"B", 1},
                                           {"KiB", kKi},
                                           {"MiB", kKi* kKi},
                                           {"GiB", kKi* kKi* kKi},
                                           {"TiB", kKi* kKi* kKi* kKi},
                                           {"KB", kK},
                                           {"MB", kK* kK},
                                           {"GB", kK* kK* kK},
                                           {"TB", kK* kK* kK* kK}}};

constexpr std::string_view kDurationForm =
    "a positive integer with a unit: ms, s, m or h (e.g. 500ms, 90s, 5m, 24h)";
constexpr std::string_view kSizeForm =
    "an integer number of bytes, optionally with a unit: B, KiB, MiB, GiB, TiB (powers of "
    "1024) or KB, MB, GB, TB (powers of 1000), e.g. 4096, 64MiB, 1GB";

// "90s" → 90 and "s". Leading digits only: no sign, no fraction, no spaces.
struct Number {
  std::uint64_t value = 0;
  std::string_view unit;
};
enum class NumberError { none, no_digits, too_large };

NumberError split_number(std::string_view text, Number& out) {
  const char* const end = text.data() + text.size();
  const auto [rest, ec] = std::from_chars(text.data(), end, out.value);
  if (ec == std::errc::invalid_argument) return NumberError::no_digits;
  if (ec == std::errc::result_out_of_range) return NumberError::too_large;
  out.unit = std::string_view(rest, static_cast<std::size_t>(end - rest));
  return NumberError::none;
}

std::optional<std::uint64_t> factor_of(std::span<const Unit> units, std::string_view unit) {
  for (const auto& [name, factor] : units) {
    if (name == unit) return factor;
  }
  return std::nullopt;
}

Unexpected<std::string> fail(std::string_view what, std::string_view text, std::string_view form) {
  return Unexpected<std::string>{std::string(what) + " '" + std::string(text) + "'; expected " +
                                 std::string(form)};
}

Unexpected<std::string> too_long(std::string_view text) {
  return Unexpected<std::string>{"duration '" + std::string(text) + "' is too long; at most " +
                                 std::to_string(kMaxDuration.count() / 3'600'000) + "h (a year)"};
}

}  // namespace

std::optional<std::uint64_t> parse_unsigned(std::string_view text) {
  Number number;
  if (split_number(text, number) != NumberError::none || !number.unit.empty()) return std::nullopt;
  return number.value;
}

Expected<Duration, std::string> parse_duration(std::string_view text) {
  if (text.starts_with('-')) return fail("negative duration", text, kDurationForm);
  Number number;
  switch (split_number(text, number)) {
    case NumberError::no_digits:
      return fail("not a duration", text, kDurationForm);
    case NumberError::too_large:
      return too_long(text);
    case NumberError::none:
      break;
  }
  if (number.unit.empty()) return fail("duration without a unit", text, kDurationForm);
  const auto factor = factor_of(kDurationUnits, number.unit);
  if (!factor) return fail("unknown unit in duration", text, kDurationForm);
  if (number.value == 0) return fail("zero duration", text, kDurationForm);
  if (number.value > static_cast<std::uint64_t>(kMaxDuration.count()) / *factor) {
    return too_long(text);
  }
  return Duration{static_cast<Duration::rep>(number.value * *factor)};
}

Expected<std::uint64_t, std::string> parse_size(std::string_view text) {
  if (text.starts_with('-')) return fail("negative size", text, kSizeForm);
  Number number;
  switch (split_number(text, number)) {
    case NumberError::no_digits:
      return fail("not a size", text, kSizeForm);
    case NumberError::too_large:
      return fail("size too large", text, kSizeForm);
    case NumberError::none:
      break;
  }
  const auto factor = factor_of(kSizeUnits, number.unit);
  if (!factor) return fail("unknown unit in size", text, kSizeForm);
  if (number.value > std::numeric_limits<std::uint64_t>::max() / *factor) {
    return fail("size too large", text, kSizeForm);
  }
  return number.value * *factor;
}

}  // namespace iotsocket::config
