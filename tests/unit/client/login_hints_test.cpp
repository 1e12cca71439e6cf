// What the client tells its user after a refused login: the checks in order, the clock
// first when the server's last push showed it off, and how to learn the server's reason.
#include <gtest/gtest.h>

#include "client/login_hints.hpp"

namespace iotsocket::client {
namespace {

using protocol::Tick;
using namespace std::chrono_literals;

const Tick kTolerance = std::chrono::duration_cast<Tick>(3s);

std::string checklist(std::optional<Tick> offset) {
  return refused_login_checklist("0000000042", offset, kTolerance);
}

TEST(RefusedLoginChecklist, WithoutAPushItSaysHowToCompareTheClocks) {
  const std::string text = checklist(std::nullopt);
  EXPECT_NE(text.find("1) this clock: no push from the server came yet"), std::string::npos) << text;
  EXPECT_NE(text.find("date -u"), std::string::npos) << text;
  EXPECT_NE(text.find("protocol.time_tolerance, 3 s unless its operator changed it"), std::string::npos)
      << text;
}

TEST(RefusedLoginChecklist, AClockOffByHalfTheToleranceOrMoreComesFirstWithItsDirection) {
  const std::string ahead = checklist(std::chrono::duration_cast<Tick>(5200ms));
  EXPECT_NE(ahead.find("1) this clock FIRST: at its last push the server's clock was 5.2 s ahead of this one"),
            std::string::npos)
      << ahead;
  const std::string behind = checklist(-std::chrono::duration_cast<Tick>(1500ms));
  EXPECT_NE(behind.find("this clock FIRST: at its last push the server's clock was 1.5 s behind this one"),
            std::string::npos)
      << behind;
  EXPECT_NE(behind.find("set this clock (NTP)"), std::string::npos) << behind;
}

TEST(RefusedLoginChecklist, AClockWithinHalfTheToleranceIsProbablyNotTheCause) {
  const std::string text = checklist(-std::chrono::duration_cast<Tick>(1499ms));
  EXPECT_NE(text.find("1) this clock agreed with the server's within 1.5 s at its last push: probably not "
                      "the cause"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("FIRST"), std::string::npos) << text;
}

TEST(RefusedLoginChecklist, TheKeyAndTheServersOwnAnswerFollowForThisDevice) {
  for (const auto offset : {std::optional<Tick>{}, std::optional<Tick>{Tick{0}},
                            std::optional<Tick>{std::chrono::duration_cast<Tick>(10s)}}) {
    const std::string text = checklist(offset);
    const auto clock = text.find("1) ");
    const auto key = text.find("2) the key (--key, --key-file or IOTSOCKET_KEY)");
    const auto server = text.find("3) on the server, `iotsocketctl devices show 0000000042`");
    ASSERT_NE(key, std::string::npos) << text;
    ASSERT_NE(server, std::string::npos) << text;
    EXPECT_LT(clock, key);
    EXPECT_LT(key, server);
    for (const char* reason : {"wrong_key", "disabled_device", "duplicate_login", "time_skew"}) {
      EXPECT_NE(text.find(reason), std::string::npos) << reason << " in " << text;
    }
  }
}

}  // namespace
}  // namespace iotsocket::client
