// printable(): untrusted bytes made safe for one log line (issue 16, item 6).
#include "common/log_text.hpp"

#include <gtest/gtest.h>

#include <string>

namespace iotsocket {
namespace {

using namespace std::string_literals;

TEST(Printable, PlainAsciiStaysAsItIs) {
  EXPECT_EQ(printable("1234567890 hello-device"), "1234567890 hello-device");
  EXPECT_EQ(printable(""), "");
}

TEST(Printable, ControlBytesBecomeHexEscapes) {
  EXPECT_EQ(printable("a\x1b[2Jb"), "a\\x1b[2Jb");            // ESC: a terminal's commands
  EXPECT_EQ(printable("fake\rline"), "fake\\x0dline");         // CR: hides what came before
  EXPECT_EQ(printable("one\ntwo"), "one\\x0atwo");             // LF: a forged second line
  EXPECT_EQ(printable("nul\0byte"s), "nul\\x00byte");          // NUL
  EXPECT_EQ(printable("tab\tdel\x7f"), "tab\\x09del\\x7f");
}

TEST(Printable, ABackslashIsDoubledSoThatEveryEscapeIsOurs) {
  EXPECT_EQ(printable("a\\x1b"), "a\\\\x1b");
}

TEST(Printable, EveryByteAbove0x7fIsEscapedValidUtf8OrNot) {
  EXPECT_EQ(printable("\xff\xfe"), "\\xff\\xfe");              // never valid UTF-8
  EXPECT_EQ(printable("\xc3("), "\\xc3(");                      // a cut sequence
  EXPECT_EQ(printable("caf\xc3\xa9"), "caf\\xc3\\xa9");        // valid: é
  EXPECT_EQ(printable("\xe2\x80\xae"), "\\xe2\\x80\\xae");     // RIGHT-TO-LEFT OVERRIDE
}

TEST(Printable, ALongTextIsCutAndSaysHowMuchWasLeftOut) {
  const std::string long_text(1000, 'x');
  EXPECT_EQ(printable(long_text), std::string(80, 'x') + "...[920 more bytes]");
  EXPECT_EQ(printable(long_text, 10), std::string(10, 'x') + "...[990 more bytes]");
  EXPECT_EQ(printable(std::string(80, 'y')), std::string(80, 'y'));  // exactly the bound
  // The bound counts input bytes; their escapes may make the output longer.
  EXPECT_EQ(printable("\x1b\x1b\x1b", 2), "\\x1b\\x1b...[1 more bytes]");
}

}  // namespace
}  // namespace iotsocket
