#include "shm/refusal.hpp"

#include <array>
#include <iterator>

#include "protocol/errors.hpp"

namespace iotsocket::shm {
namespace {

// A code is an index + 1 into this list: append only, so that an iotsocketctl of the same
// layout version reads what the server wrote.
constexpr std::string_view kReasons[] = {
    "wrong_key", "disabled_device", "duplicate_login",
#define IOTSOCKET_REASON_ITEM(name) #name,
    IOTSOCKET_FRAME_ERRORS(IOTSOCKET_REASON_ITEM)
#undef IOTSOCKET_REASON_ITEM
};
static_assert(std::size(kReasons) < 255);

}  // namespace

std::uint8_t refusal_code(std::string_view reason) noexcept {
  for (std::size_t i = 0; i < std::size(kReasons); ++i) {
    if (kReasons[i] == reason) return static_cast<std::uint8_t>(i + 1);
  }
  return 0;
}

std::string_view refusal_name(std::uint8_t code) noexcept {
  if (code == 0 || code > std::size(kReasons)) return {};
  return kReasons[code - 1];
}

}  // namespace iotsocket::shm
