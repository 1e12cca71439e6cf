#include "protocol/time.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>

#include "protocol/ascii.hpp"

namespace iotsocket::protocol {
namespace {

constexpr int kDecimals = 4;
constexpr std::int64_t kTicksPerSecond = Tick::period::den;
static_assert(kTicksPerSecond == 10'000);

// Digits to a number no larger than kMaxTimeSeconds, or nullopt.
std::optional<std::int64_t> parse_seconds(std::string_view digits) noexcept {
  std::int64_t value = 0;
  for (char c : digits) {
    value = value * 10 + (c - '0');
    if (value > kMaxTimeSeconds) return std::nullopt;
  }
  return value;
}

}  // namespace

std::optional<Time> parse_time(std::string_view text) noexcept {
  const auto dot = text.find('.');
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string_view whole = text.substr(0, dot);
  const std::string_view fraction = text.substr(dot + 1);
  if (!all_digits(whole) || !all_digits(fraction)) return std::nullopt;

  const auto seconds = parse_seconds(whole);
  if (!seconds) return std::nullopt;
  std::int64_t ticks_in_second = 0;
  for (int i = 0; i < kDecimals; ++i) {
    const auto index = static_cast<std::size_t>(i);
    ticks_in_second = ticks_in_second * 10 + (index < fraction.size() ? fraction[index] - '0' : 0);
  }
  return Time{Tick{*seconds * kTicksPerSecond + ticks_in_second}};
}

void append_time(std::string& out, Time t) {
  const std::int64_t ticks = std::max<std::int64_t>(t.time_since_epoch().count(), 0);
  char buffer[32];
  // 20 digits at most: to_chars cannot fail on this buffer.
  char* end = std::to_chars(buffer, buffer + sizeof buffer, ticks / kTicksPerSecond).ptr;
  *end++ = '.';
  std::int64_t fraction = ticks % kTicksPerSecond;
  for (int divisor = 1000; divisor > 0; divisor /= 10) {
    *end++ = static_cast<char>('0' + fraction / divisor);
    fraction %= divisor;
  }
  out.append(buffer, end);
}

std::string format_time(Time t) {
  std::string out;
  append_time(out, t);
  return out;
}

std::string seconds_text(Tick ticks) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(ticks.count()) / 10'000.0);
  return text;
}

std::optional<Time> TimeStamper::next(Time now, Tick max_lead) noexcept {
  const Time candidate = std::max(now, last_ + Tick{1});
  if (candidate - now >= max_lead) return std::nullopt;
  last_ = candidate;
  return candidate;
}

}  // namespace iotsocket::protocol
