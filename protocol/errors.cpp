#include "protocol/errors.hpp"

#include <array>
#include <cstddef>

namespace iotsocket::protocol {
namespace {

#define IOTSOCKET_NAME_ITEM(name) #name,
constexpr std::array<std::string_view, 18> kFrameErrorNames{
    IOTSOCKET_FRAME_ERRORS(IOTSOCKET_NAME_ITEM)};
constexpr std::array<std::string_view, 7> kRecordErrorNames{
    IOTSOCKET_RECORD_ERRORS(IOTSOCKET_NAME_ITEM)};
#undef IOTSOCKET_NAME_ITEM

// The array sizes above are written out so that adding an error without growing them
// fails to compile here instead of yielding an empty name.
#define IOTSOCKET_COUNT_ITEM(name) +1
static_assert(kFrameErrorNames.size() == 0 IOTSOCKET_FRAME_ERRORS(IOTSOCKET_COUNT_ITEM));
static_assert(kRecordErrorNames.size() == 0 IOTSOCKET_RECORD_ERRORS(IOTSOCKET_COUNT_ITEM));
#undef IOTSOCKET_COUNT_ITEM

template <class Names, class Enum>
std::string_view lookup(const Names& names, Enum error) noexcept {
  const auto index = static_cast<std::size_t>(error);
  return index < names.size() ? names[index] : std::string_view{"unknown_error"};
}

}  // namespace

std::string_view name(FrameError error) noexcept { return lookup(kFrameErrorNames, error); }
std::string_view name(RecordError error) noexcept { return lookup(kRecordErrorNames, error); }

}  // namespace iotsocket::protocol
