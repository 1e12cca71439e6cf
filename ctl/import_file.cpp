#include "ctl/import_file.hpp"

#include <optional>
#include <string_view>
#include <unordered_map>

#include "protocol/device_id.hpp"
#include "protocol/encoder.hpp"

namespace iotsocket::ctl {
namespace {

constexpr std::string_view kBlanks = " \t\r";  // \r: files written on Windows

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

}  // namespace

Expected<std::vector<DeviceKey>, std::string> read_import(std::istream& in) {
  std::vector<DeviceKey> devices;
  std::unordered_map<DeviceId, std::size_t> first_line;
  std::string line;
  for (std::size_t number = 1; std::getline(in, line); ++number) {
    const auto fail = [number](const std::string& what) {
      return Unexpected{"line " + std::to_string(number) + ": " + what};
    };
    std::string_view rest = line;
    const std::string_view id_text = next_field(rest);
    if (id_text.empty() || id_text.front() == '#') continue;
    const std::string_view key = next_field(rest);
    if (key.empty() || !next_field(rest).empty()) return fail("expected `ID KEY`");
    const auto id = protocol::parse_device_id(id_text);
    if (!id) return fail("bad device ID '" + std::string(id_text) + "'");
    if (!protocol::is_sendable_key(key)) {
      return fail("a key must be 1 to 512 printable ASCII characters, without ':' or \"|#|\"");
    }
    if (const auto [it, added] = first_line.emplace(*id, number); !added) {
      return fail("device " + protocol::to_string(*id) + " appears twice (first on line " +
                  std::to_string(it->second) + ")");
    }
    devices.push_back({*id, std::string(key)});
  }
  if (in.bad()) return Unexpected{std::string("read error")};
  return devices;
}

}  // namespace iotsocket::ctl
