// Bytes from outside (a push FIFO line, an import file, a value in the config file) made
// safe for one log line: whoever wrote them must not be able to end the line and forge
// another, move a terminal's cursor (ESC), hide text (CR) or fill the log with one input.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace iotsocket {

// `text` as printable ASCII: a byte outside 0x20..0x7e (control bytes, DEL, and every byte
// of 0x80 and above, valid UTF-8 or not) becomes \xNN and a backslash becomes \\, so an
// escape in the output always comes from us. At most `max` bytes of `text` are shown; a
// longer text ends in "...[N more bytes]".
std::string printable(std::string_view text, std::size_t max = 80);

}  // namespace iotsocket
