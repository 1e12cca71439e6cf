// Property tests over random payloads: what the encoder writes, the decoder reads back as
// the receiver must see it, in any split of the reads; and FIFO records survive the trip.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "protocol/ascii.hpp"
#include "protocol/decoder.hpp"
#include "protocol/encoder.hpp"
#include "protocol/limits.hpp"
#include "protocol/record.hpp"

namespace iotsocket::protocol {
namespace {

// A fixed seed keeps a failure reproducible; the trace names it and the iteration.
constexpr std::uint32_t kSeed = 0x10750c7;

class Generator {
 public:
  explicit Generator(std::uint32_t seed) : random_(seed) {}

  std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(random_); }

  // Payloads rich in what the format treats specially: delimiters and their parts, CR/LF,
  // whitespace at the ends, backslashes, NUL and high bytes; sometimes near the size limit.
  std::string payload() {
    static constexpr std::string_view kPieces[] = {"|#|", "|", "#", "\r\n", "\r\n\r\n", " ",
                                                   "\t", "\\", "\\n", std::string_view("\0", 1),
                                                   "\xff", "IOT:1.1", "abc", "0123456789"};
    const std::size_t size = below(8) == 0 ? kMaxBody - 20 + below(40) : below(300);
    std::string out;
    while (out.size() < size) {
      if (below(3) == 0) {
        out.append(kPieces[below(std::size(kPieces))]);
      } else {
        out.push_back(static_cast<char>(below(256)));
      }
    }
    return out;
  }

  std::string key() {
    std::string out(1 + below(40), 'k');
    for (char& c : out) {
      do c = static_cast<char>('!' + below(94));
      while (c == ':');
    }
    return out;
  }

  DeviceId device() { return DeviceId{below(kMaxDeviceId + 1)}; }
  Time time() { return Time{Tick{static_cast<std::int64_t>(below(20'000'000'000'000))}}; }

 private:
  std::mt19937_64 random_;
};

// Feeds `stream` in random-sized reads and returns the frames, or the error, it decodes to.
struct Decoded1 {
  bool ok = false;
  FrameError error{};
  DeviceId device;
  Time time;
  std::string key;
  std::string body;
};

Decoded1 decode_single(Generator& gen, const std::string& stream, Direction direction) {
  Decoder decoder(direction);
  Decoded1 result;
  int frames = 0;
  for (std::size_t at = 0; at < stream.size();) {
    const std::size_t chunk = 1 + gen.below(gen.below(2) == 0 ? 16 : 8192);
    decoder.feed(std::string_view(stream).substr(at, chunk));
    at += chunk;
    for (Decoded d = decoder.next(); d.status != DecodeStatus::need_more; d = decoder.next()) {
      if (d.status == DecodeStatus::failed) {
        result.error = d.error;
        return result;
      }
      ++frames;
      result = {true, {}, d.frame.device, d.frame.time, std::string(d.frame.key),
                std::string(d.frame.body)};
    }
  }
  EXPECT_EQ(frames, 1);
  EXPECT_EQ(decoder.buffered(), 0u);
  return result;
}

TEST(RoundTrip, DeviceFramesDecodeToWhatWasSent) {
  Generator gen(kSeed);
  int encoded = 0;
  for (int i = 0; i < 2000; ++i) {
    SCOPED_TRACE(::testing::Message() << "seed " << kSeed << ", iteration " << i);
    const std::string payload = gen.payload();
    const std::string key = gen.key();
    const DeviceId device = gen.device();
    const Time time = gen.time();

    std::string stream;
    const auto error = append_device_frame(stream, device, key, time, payload);
    ASSERT_EQ(error, payload_error(payload)) << "the encoder refuses exactly the invalid bodies";
    if (error) continue;
    ++encoded;

    const Decoded1 got = decode_single(gen, stream, Direction::from_device);
    ASSERT_TRUE(got.ok) << name(got.error);
    EXPECT_EQ(got.device, device);
    EXPECT_EQ(got.time, time);
    EXPECT_EQ(got.key, key);
    EXPECT_EQ(got.body, std::string(strip(remove_delimiters(payload))));
  }
  EXPECT_GT(encoded, 1000) << "the generator should mostly make valid payloads";
}

TEST(RoundTrip, PushFramesDecodeToWhatWasSent) {
  Generator gen(kSeed + 1);
  for (int i = 0; i < 2000; ++i) {
    SCOPED_TRACE(::testing::Message() << "seed " << kSeed + 1 << ", iteration " << i);
    const std::string payload = gen.payload();
    const DeviceId device = gen.device();
    const Time time = gen.time();

    std::string stream;
    if (append_push_frame(stream, device, time, payload)) continue;
    const Decoded1 got = decode_single(gen, stream, Direction::from_server);
    ASSERT_TRUE(got.ok) << name(got.error);
    EXPECT_EQ(got.device, device);
    EXPECT_EQ(got.time, time);
    EXPECT_EQ(got.key, "AJ");
    EXPECT_EQ(got.body, std::string(strip(remove_delimiters(payload))));
  }
}

TEST(RoundTrip, RecordsReadBackAsWritten) {
  Generator gen(kSeed + 2);
  for (int i = 0; i < 2000; ++i) {
    SCOPED_TRACE(::testing::Message() << "seed " << kSeed + 2 << ", iteration " << i);
    const std::string payload = gen.payload();
    const DeviceId device = gen.device();
    std::string line;
    append_record(line, device, payload);
    ASSERT_EQ(line.find('\n'), line.size() - 1);
    line.pop_back();
    const auto record = parse_record(line);
    if (const auto error = payload_error(payload)) {
      ASSERT_FALSE(record);
      continue;
    }
    ASSERT_TRUE(record) << name(record.error());
    EXPECT_EQ(record->device, device);
    EXPECT_EQ(record->payload, payload);
  }
}

}  // namespace
}  // namespace iotsocket::protocol
