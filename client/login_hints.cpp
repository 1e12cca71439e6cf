#include "client/login_hints.hpp"

namespace iotsocket::client {
namespace {

std::string clock_check(std::optional<protocol::Tick> offset, protocol::Tick tolerance) {
  const std::string limit =
      "the server refuses a frame whose TIME is off its clock by its protocol.time_tolerance, "
      "3 s unless its operator changed it";
  if (!offset) {
    return "this clock: no push from the server came yet to compare it with; compare `date -u` "
           "here and on the server (" + limit + ")";
  }
  const protocol::Tick off = *offset < protocol::Tick::zero() ? -*offset : *offset;
  const std::string direction = *offset < protocol::Tick::zero() ? "behind" : "ahead of";
  // Half the tolerance: a push's TIME is taken before its trip here, and clocks drift.
  if (off * 2 < tolerance) {
    return "this clock agreed with the server's within " + protocol::seconds_text(off) +
           " at its last push: probably not the cause";
  }
  return "this clock FIRST: at its last push the server's clock was " + protocol::seconds_text(off) + " " +
         direction + " this one (" + limit + "); set this clock (NTP)";
}

}  // namespace

std::string refused_login_checklist(std::string_view device_id,
                                    std::optional<protocol::Tick> server_offset,
                                    protocol::Tick tolerance) {
  const std::string id(device_id);
  return "the server does not say why it refused a login; check, in this order: 1) " +
         clock_check(server_offset, tolerance) + "; 2) the key (--key, --key-file or "
         "IOTSOCKET_KEY) is the one `iotsocketctl devices add " + id + "` printed; 3) on the "
         "server, `iotsocketctl devices show " + id + "` says whether the device is registered "
         "and enabled, and names the reason of its last refused login (wrong_key, "
         "disabled_device, duplicate_login: connected elsewhere, time_skew)";
}

}  // namespace iotsocket::client
