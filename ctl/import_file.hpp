// The file `iotsocketctl devices import` reads: one `ID KEY` per line, separated by
// spaces or tabs; blank lines and lines starting with '#' are skipped. Keys cannot hold
// spaces, so a '#' inside a key is part of it (only whole-line comments exist).
#pragma once

#include <cstddef>
#include <istream>
#include <string>
#include <vector>

#include "common/registry.hpp"
#include "common/expected.hpp"

namespace iotsocket::ctl {

struct BadLine {
  std::size_t line = 0;  // 1-based
  std::string what;      // what is wrong, the file's text in it made printable
};

// Every bad line of a file, so that one run of the command shows all there is to mend.
struct BadLines {
  static constexpr std::size_t kMaxKept = 100;  // a file of garbage is not echoed whole
  std::vector<BadLine> first;  // the first kMaxKept, in file order
  std::size_t count = 0;       // all of them
  std::string read_error;      // the file could not be read to its end
};

// All devices of the file, or its bad lines. A device listed twice is a bad line too (the
// registry would refuse the whole import anyway; here it gets a line).
Expected<std::vector<DeviceKey>, BadLines> read_import(std::istream& in);

}  // namespace iotsocket::ctl
