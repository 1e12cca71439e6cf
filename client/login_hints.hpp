// What to check after the server refused a login. IOT/1.1 has no refusal frame: the server
// closes the connection, whatever the cause (a wrong key, an unknown or disabled device,
// a login elsewhere, a skewed clock), so that a prober learns nothing. The device's user
// gets an ordered list instead, starting with what this side can see: its own clock
// against the server's, as the TIME of the server's last push showed it.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protocol/time.hpp"

namespace iotsocket::client {

// `server_offset`: the server's TIME minus this clock, at the last push (nullopt: no push
// seen yet). `tolerance`: this side's limit for the server's TIMEs (Options::time_tolerance,
// 3 s as the server's by default); an offset of half of it or more is named first.
std::string refused_login_checklist(std::string_view device_id,
                                    std::optional<protocol::Tick> server_offset,
                                    protocol::Tick tolerance);

}  // namespace iotsocket::client
