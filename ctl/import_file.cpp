#include "ctl/import_file.hpp"

#include <optional>
#include <string_view>
#include <unordered_map>

#include "common/log_text.hpp"
#include "protocol/device_id.hpp"
#include "protocol/encoder.hpp"

namespace iotsocket::ctl {
namespace {

constexpr std::string_view kBlanks = " \t\r";  // \r: files written on Windows
constexpr std::size_t kShownId = 40;  // bytes of a bad ID quoted in its message

// Splits off the first blank-separated field of `rest`.
std::string_view next_field(std::string_view& rest) {
  const std::size_t start = rest.find_first_not_of(kBlanks);
  if (start == std::string_view::npos) {
    rest = {};
    return {};
  }
  rest.remove_prefix(start);
  const std::size_t end = std::min(rest.find_first_of(kBlanks), rest.size());
  const std::string_view field = rest.substr(0, end);
  rest.remove_prefix(end);
  return field;
}

// What is wrong with one line, or nullopt when it is a device (added to `devices`).
std::optional<std::string> take_line(std::string_view line, std::size_t number,
                                     std::vector<DeviceKey>& devices,
                                     std::unordered_map<DeviceId, std::size_t>& first_line) {
  std::string_view rest = line;
  const std::string_view id_text = next_field(rest);
  if (id_text.empty() || id_text.front() == '#') return std::nullopt;
  const std::string_view key = next_field(rest);
  if (key.empty() || !next_field(rest).empty()) return "expected `ID KEY`";
  const auto id = protocol::parse_device_id(id_text);
  if (!id) return "bad device ID '" + printable(id_text, kShownId) + "'";
  if (!protocol::is_sendable_key(key)) {
    return "a key must be 1 to 512 printable ASCII characters, without ':' or \"|#|\"";
  }
  if (const auto [it, added] = first_line.emplace(*id, number); !added) {
    return "device " + protocol::to_string(*id) + " appears twice (first on line " +
           std::to_string(it->second) + ")";
  }
  devices.push_back({*id, std::string(key)});
  return std::nullopt;
}

}  // namespace

Expected<std::vector<DeviceKey>, BadLines> read_import(std::istream& in) {
  std::vector<DeviceKey> devices;
  std::unordered_map<DeviceId, std::size_t> first_line;
  BadLines bad;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    auto what = take_line(line, number, devices, first_line);
    if (!what) continue;
    if (bad.first.size() < BadLines::kMaxKept) bad.first.push_back({number, std::move(*what)});
    ++bad.count;
  }
  if (in.bad()) bad.read_error = "read error";
  if (bad.count > 0 || !bad.read_error.empty()) return Unexpected{std::move(bad)};
  return devices;
}

}  // namespace iotsocket::ctl
