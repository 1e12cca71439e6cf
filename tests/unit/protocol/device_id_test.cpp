// Rule 8: device IDs are numbers; frames from devices carry exactly 10 digits.
#include <gtest/gtest.h>

#include "protocol/device_id.hpp"

namespace iotsocket::protocol {
namespace {

TEST(DeviceId, ExactFormIsTenDigits) {
  EXPECT_EQ(parse_device_id_exact("1234567890"), DeviceId{1234567890});
  EXPECT_EQ(parse_device_id_exact("0123456789"), DeviceId{123456789});
  EXPECT_EQ(parse_device_id_exact("0000000000"), DeviceId{0});
  for (const char* bad : {"", "123456789", "12345678901", "12345a7890", " 123456789",
                          "123456789 ", "+123456789", "-123456789", "１２３４５６７８９０"}) {
    EXPECT_FALSE(parse_device_id_exact(bad)) << bad;
  }
}

TEST(DeviceId, NumericFormTakesAnyLeadingZeros) {
  EXPECT_EQ(parse_device_id("0123456789"), parse_device_id("123456789"));
  EXPECT_EQ(parse_device_id("7"), DeviceId{7});
  EXPECT_EQ(parse_device_id("00000000000000000000042"), DeviceId{42});
  EXPECT_EQ(parse_device_id("9999999999"), DeviceId{kMaxDeviceId});
  for (const char* bad : {"", "10000000000", "99999999999999999999999", "1 ", "x", "-1", "1.0"}) {
    EXPECT_FALSE(parse_device_id(bad)) << bad;
  }
}

TEST(DeviceId, WritesBothForms) {
  std::string padded, plain;
  append_device_id_padded(padded, DeviceId{42});
  append_device_id(plain, DeviceId{42});
  EXPECT_EQ(padded, "0000000042");
  EXPECT_EQ(plain, "42");
  EXPECT_EQ(to_string(DeviceId{kMaxDeviceId}), "9999999999");
  EXPECT_EQ(to_string(DeviceId{0}), "0000000000");
}

}  // namespace
}  // namespace iotsocket::protocol
