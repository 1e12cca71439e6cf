// "1 device", "2 devices": a count and its noun, for the lines people read (iotsocketctl,
// systemd's STATUS=). Log lines that scripts parse keep their fixed form.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace iotsocket {

inline std::string counted(std::uint64_t count, std::string_view one, std::string_view many) {
  return std::to_string(count) + ' ' + std::string(count == 1 ? one : many);
}

}  // namespace iotsocket
