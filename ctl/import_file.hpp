// The file `iotsocketctl devices import` reads: one `ID KEY` per line, separated by
// spaces or tabs; blank lines and lines starting with '#' are skipped. Keys cannot hold
// spaces, so a '#' inside a key is part of it (only whole-line comments exist).
#pragma once

#include <istream>
#include <string>
#include <vector>

#include "common/registry.hpp"
#include "common/expected.hpp"

namespace iotsocket::ctl {

// All devices of the file, or the first bad line: "line 7: ...". A device listed twice is
// a bad line too (the registry would refuse the whole import anyway; here it gets a line).
Expected<std::vector<DeviceKey>, std::string> read_import(std::istream& in);

}  // namespace iotsocket::ctl
