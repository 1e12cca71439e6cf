#include "bench/push_plan.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>

namespace iotsocket::bench {
namespace {

// Reads "<key>=<digits>;" at `at`, moving `at` past it.
std::optional<std::uint64_t> take_field(std::string_view body, std::size_t& at, char key) {
  if (body.size() < at + 2 || body[at] != key || body[at + 1] != '=') return std::nullopt;
  const char* first = body.data() + at + 2;
  const char* end = body.data() + body.size();
  std::uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(first, end, value);
  if (ec != std::errc{} || ptr == first || ptr == end || *ptr != ';') return std::nullopt;
  at = static_cast<std::size_t>(ptr - body.data()) + 1;
  return value;
}

}  // namespace

std::string make_push_payload(PushStamp stamp, std::size_t bytes) {
  std::string p = "p=" + std::to_string(stamp.seq) + ";t=" + std::to_string(stamp.sent_ns) + ";";
  if (p.size() >= bytes) return p;
  p.reserve(bytes);
  for (std::size_t i = 0; p.size() < bytes; ++i) p.push_back(static_cast<char>('a' + i % 26));
  return p;
}

std::optional<PushStamp> parse_push_payload(std::string_view body) {
  std::size_t at = 0;
  const auto seq = take_field(body, at, 'p');
  if (!seq) return std::nullopt;
  const auto sent = take_field(body, at, 't');
  if (!sent) return std::nullopt;
  return PushStamp{*seq, *sent};
}

void append_push_line(std::string& out, protocol::DeviceId device, std::string_view payload) {
  out += std::to_string(device.value);
  out += ' ';
  out += payload;
  out += '\n';
}

std::uint64_t pushes_due(double elapsed_s, double rate, std::uint64_t total) {
  if (rate <= 0) return total;
  if (!(elapsed_s >= 0)) return std::min<std::uint64_t>(total, 1);
  const double due = std::floor(elapsed_s * rate) + 1;
  return due >= static_cast<double>(total) ? total : static_cast<std::uint64_t>(due);
}

}  // namespace iotsocket::bench
