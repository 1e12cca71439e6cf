// The reasons a login of a known device can be refused, as small codes: the device table
// keeps a device's last refusal in one atomic word (time and code), so that `iotsocketctl
// devices show` can say why a device does not get in without a registry write per
// attempt (a flood of bad logins costs a store in memory, not a disk write).
//
// Not listed, so never recorded: unknown_device (an attacker could fill the table with
// IDs that do not exist), registry_error and device_table_full (the server's trouble, not
// the device's; they are in the log).
#pragma once

#include <cstdint>
#include <string_view>

namespace iotsocket::shm {

// 0 when `reason` is not one that is recorded; else 1..254.
std::uint8_t refusal_code(std::string_view reason) noexcept;
// The reason of a code refusal_code() gave; "" for 0 or a code this version does not know.
std::string_view refusal_name(std::uint8_t code) noexcept;

}  // namespace iotsocket::shm
