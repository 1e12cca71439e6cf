// Rule 1: the byte stream is cut at each "|#|", whatever the split of the reads.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "frame_builder.hpp"
#include "protocol/decoder.hpp"
#include "protocol/limits.hpp"

namespace iotsocket::protocol {
namespace {

using test::content_of;
using test::FrameBuilder;
using test::kLegacyClientFrame;

// Everything a decoder makes of a stream: the bodies of the frames, then "!error" or
// nothing when the stream ended waiting for more.
std::vector<std::string> drain(Decoder& decoder) {
  std::vector<std::string> out;
  for (Decoded d = decoder.next();; d = decoder.next()) {
    if (d.status == DecodeStatus::frame) {
      out.emplace_back(d.frame.body);
      continue;
    }
    if (d.status == DecodeStatus::failed) out.push_back("!" + std::string(name(d.error)));
    return out;
  }
}

// Feeds `stream` in pieces of `chunk` bytes, draining after each one.
std::vector<std::string> decode_in_chunks(const std::string& stream, std::size_t chunk) {
  Decoder decoder(Direction::from_device);
  std::vector<std::string> out;
  for (std::size_t at = 0; at < stream.size(); at += chunk) {
    decoder.feed(std::string_view(stream).substr(at, chunk));
    for (auto& body : drain(decoder)) out.push_back(std::move(body));
    if (decoder.failed()) break;
  }
  return out;
}

std::string three_frames() {
  return FrameBuilder{}.with_body("first").bytes() + FrameBuilder{}.with_body("second").bytes() +
         FrameBuilder{}.with_body("third").bytes();
}

const std::vector<std::string> kThreeBodies{"first", "second", "third"};

TEST(Decoder, AcceptsTheLegacyClientBytesInOneRead) {
  EXPECT_EQ(decode_in_chunks(kLegacyClientFrame, kLegacyClientFrame.size()),
            std::vector<std::string>{"temp=33.5&humid=40%"});
}

TEST(Decoder, DecodesThreeFramesFromOneRead) {
  const std::string stream = three_frames();
  EXPECT_EQ(decode_in_chunks(stream, stream.size()), kThreeBodies);
}

TEST(Decoder, SplitsByteByByte) { EXPECT_EQ(decode_in_chunks(three_frames(), 1), kThreeBodies); }

TEST(Decoder, EveryChunkSizeGivesTheSameFrames) {
  const std::string stream = three_frames();
  for (std::size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    ASSERT_EQ(decode_in_chunks(stream, chunk), kThreeBodies) << "chunk of " << chunk;
  }
}

TEST(Decoder, EverySplitPointGivesTheSameFrames) {
  const std::string stream = three_frames();
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    Decoder decoder(Direction::from_device);
    decoder.feed(std::string_view(stream).substr(0, split));
    auto bodies = drain(decoder);
    decoder.feed(std::string_view(stream).substr(split));
    for (auto& b : drain(decoder)) bodies.push_back(std::move(b));
    ASSERT_EQ(bodies, kThreeBodies) << "split at " << split;
  }
}

TEST(Decoder, IgnoresEmptyPieces) {
  const std::string stream = "|#||#|" + FrameBuilder{}.with_body("first").bytes() + "|#|" +
                             FrameBuilder{}.with_body("second").bytes() + "|#|";
  EXPECT_EQ(decode_in_chunks(stream, stream.size()), (std::vector<std::string>{"first", "second"}));
}

TEST(Decoder, KeepsAPartialFrameUntilItsDelimiterArrives) {
  Decoder decoder(Direction::from_device);
  const std::string frame = FrameBuilder{}.bytes();
  decoder.feed(std::string_view(frame).substr(0, frame.size() - 1));  // all but the last '|'
  EXPECT_EQ(decoder.next().status, DecodeStatus::need_more);
  EXPECT_EQ(decoder.buffered(), frame.size() - 1);
  decoder.feed("|");
  const Decoded d = decoder.next();
  ASSERT_EQ(d.status, DecodeStatus::frame);
  EXPECT_EQ(d.frame.device, DeviceId{1234567890});
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(Decoder, AnInvalidFrameFailsTheStreamForGood) {
  Decoder decoder(Direction::from_device);
  decoder.feed(FrameBuilder{}.with_body("good one").bytes() +
               FrameBuilder{}.set(0, "IOT:1.0").bytes() + FrameBuilder{}.bytes());
  EXPECT_EQ(decoder.next().status, DecodeStatus::frame);
  Decoded d = decoder.next();
  ASSERT_EQ(d.status, DecodeStatus::failed);
  EXPECT_EQ(d.error, FrameError::bad_version);
  // The valid frame after it is not decoded: the connection is to be closed.
  decoder.feed(FrameBuilder{}.bytes());
  d = decoder.next();
  EXPECT_EQ(d.status, DecodeStatus::failed);
  EXPECT_EQ(d.error, FrameError::bad_version);
  EXPECT_EQ(decoder.buffered(), 0u);
}

TEST(Decoder, Refuses65535BytesWithoutDelimiter) {
  Decoder decoder(Direction::from_device);
  decoder.feed(std::string(kMaxFrameBytes - 1, 'a'));
  // 65534 bytes are still buffered: the decision falls on the byte that makes 65535.
  EXPECT_EQ(decoder.next().status, DecodeStatus::need_more);
  decoder.feed("a");
  const Decoded d = decoder.next();
  ASSERT_EQ(d.status, DecodeStatus::failed);
  EXPECT_EQ(d.error, FrameError::frame_too_large);
}

TEST(Decoder, RefusesAnEndlessStreamWithoutBufferingIt) {
  Decoder decoder(Direction::from_device);
  const std::string chunk(16384, 'z');
  std::size_t reads = 0;
  while (!decoder.failed() && reads < 100) {
    decoder.feed(chunk);
    (void)decoder.next();
    ++reads;
  }
  EXPECT_TRUE(decoder.failed());
  EXPECT_LE(reads * chunk.size(), kMaxFrameBytes + chunk.size());
  EXPECT_EQ(decoder.allocated(), 0u);
}

// The limit is 65535 bytes including the delimiter: 65532 bytes of content are a frame,
// 65533 are not, and it does not matter how the bytes around the limit are split.
TEST(Decoder, FrameStraddlingTheSizeLimit) {
  for (std::size_t tail_chunk : {1u, 2u, 3u, 7u, 4096u}) {
    for (std::size_t size : {kMaxFrameContent - 1, kMaxFrameContent, kMaxFrameContent + 1}) {
      const std::string stream = content_of(size) + "|#|" + FrameBuilder{}.with_body("after").bytes();
      Decoder decoder(Direction::from_device);
      const std::size_t head = size - 8;  // the last bytes of the frame arrive in small reads
      decoder.feed(std::string_view(stream).substr(0, head));
      std::vector<std::string> bodies = drain(decoder);
      for (std::size_t at = head; at < stream.size() && !decoder.failed(); at += tail_chunk) {
        decoder.feed(std::string_view(stream).substr(at, tail_chunk));
        for (auto& b : drain(decoder)) bodies.push_back(std::move(b));
      }
      const auto expected = size <= kMaxFrameContent ? std::vector<std::string>{"hello", "after"}
                                                     : std::vector<std::string>{"!frame_too_large"};
      EXPECT_EQ(bodies, expected) << "content " << size << ", tail reads of " << tail_chunk;
    }
  }
}

TEST(Decoder, GivesBackItsBufferOnceEmpty) {
  Decoder decoder(Direction::from_device);
  decoder.feed(content_of(60000) + "|#|");
  ASSERT_EQ(decoder.next().status, DecodeStatus::frame);
  EXPECT_EQ(decoder.next().status, DecodeStatus::need_more);
  EXPECT_EQ(decoder.buffered(), 0u);
  EXPECT_EQ(decoder.allocated(), 0u);
}

TEST(Decoder, HoldsAtMostOnePartialFrame) {
  Decoder decoder(Direction::from_device);
  const std::string frame = FrameBuilder{}.bytes();
  for (int i = 0; i < 1000; ++i) {
    decoder.feed(frame);
    ASSERT_EQ(decoder.next().status, DecodeStatus::frame);
  }
  decoder.feed(std::string_view(frame).substr(0, 10));
  EXPECT_EQ(decoder.next().status, DecodeStatus::need_more);
  EXPECT_EQ(decoder.buffered(), 10u);
}

TEST(Decoder, DecodesPushFramesFromTheServer) {
  Decoder decoder(Direction::from_server);
  decoder.feed(test::kLegacyPushFrame + test::kLegacyPushFrame);
  EXPECT_EQ(drain(decoder), (std::vector<std::string>{"hello-device", "hello-device"}));
}

TEST(Decoder, DeviceDirectionRefusesAShortDeviceId) {
  Decoder decoder(Direction::from_device);
  decoder.feed(test::kLegacyPushFrame);
  EXPECT_EQ(drain(decoder), std::vector<std::string>{"!bad_device"});
}

}  // namespace
}  // namespace iotsocket::protocol
