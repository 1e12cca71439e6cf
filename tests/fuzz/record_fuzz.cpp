// Fuzzes the push FIFO reader: lines, then records. Input: one control byte (the size of
// the reads), then the FIFO stream. Properties:
//  - the same lines whether the stream is fed at once or in reads, none over the bound;
//  - every record parsed is written back (append_record) to a line that parses the same;
//  - escaping then unescaping any bytes gives them back.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "protocol/line_reader.hpp"
#include "protocol/record.hpp"

namespace {

using namespace iotsocket::protocol;

// Small enough that fuzz inputs reach it, so the too_long path is exercised too.
constexpr std::size_t kFuzzMaxLine = 512;

std::vector<std::string> read_lines(std::string_view stream, std::size_t chunk) {
  LineReader reader(kFuzzMaxLine);
  std::vector<std::string> lines;
  for (std::size_t at = 0; at < stream.size(); at += chunk) {
    reader.feed(stream.substr(at, chunk));
    for (NextLine l = reader.next(); l.status != LineStatus::need_more; l = reader.next()) {
      FUZZ_CHECK(l.status == LineStatus::too_long || l.text.size() <= kFuzzMaxLine);
      lines.push_back(l.status == LineStatus::line ? std::string(l.text) : "\n(too long)");
    }
    FUZZ_CHECK(reader.pending() <= kFuzzMaxLine);
  }
  return lines;
}

void check_record_round_trip(const std::string& line) {
  const auto record = parse_record(line);
  if (!record) return;
  std::string written;
  append_record(written, record->device, record->payload);
  FUZZ_CHECK(!written.empty() && written.back() == '\n');
  written.pop_back();
  FUZZ_CHECK(written.find('\n') == std::string::npos);
  const auto again = parse_record(written);
  FUZZ_CHECK(again && *again == *record);
}

void check_escape_round_trip(std::string_view bytes) {
  std::string escaped;
  append_escaped(escaped, bytes);
  FUZZ_CHECK(escaped.find('\n') == std::string::npos);
  const auto back = unescape(escaped);
  FUZZ_CHECK(back && *back == bytes);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::size_t chunk = 1 + data[0];
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);

  const auto lines = read_lines(stream, stream.size() + 1);
  FUZZ_CHECK(read_lines(stream, chunk) == lines);
  for (const std::string& line : lines) check_record_round_trip(line);
  check_escape_round_trip(stream);
  return 0;
}
