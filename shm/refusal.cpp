#include "shm/refusal.hpp"

#include "shm/worker_counters.hpp"

namespace iotsocket::shm {
namespace {

// The rejections the device itself is to blame for; see refusal.hpp for those left out.
constexpr bool is_recorded(const CloseReason& reason) noexcept {
  return reason.rejection && reason.name != "unknown_device" &&
         reason.name != "registry_error" && reason.name != "device_table_full";
}
static_assert(kCloseReasonCount < 255);

}  // namespace

// A code is the reason's index in kCloseReasons + 1: that list only grows at its end (its
// indexes are places in the shared segment), so an iotsocketctl of the same layout version
// reads what the server wrote.
std::uint8_t refusal_code(std::string_view reason) noexcept {
  const std::size_t index = close_reason_index(reason);
  if (index + 1 == kCloseReasonCount || !is_recorded(kCloseReasons[index])) return 0;
  return static_cast<std::uint8_t>(index + 1);
}

std::string_view refusal_name(std::uint8_t code) noexcept {
  if (code == 0 || code >= kCloseReasonCount || !is_recorded(kCloseReasons[code - 1])) return {};
  return kCloseReasons[code - 1].name;
}

}  // namespace iotsocket::shm
