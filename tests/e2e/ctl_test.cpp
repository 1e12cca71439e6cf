// iotsocketctl as an operator runs it: the built binary, a config file, a registry file in
// a temporary directory. What it stored is checked through DeviceRegistry.
#include <fcntl.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/registry.hpp"
#include "tests/e2e/harness.hpp"


namespace iotsocket {
namespace {

namespace fs = std::filesystem;

using Outcome = e2e::RunResult;

class CtlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "ctl_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    registry_ = (dir_ / "devices.db").string();
    config_ = (dir_ / "iotsocket.yaml").string();
    std::ofstream(config_) << "tls: {enabled: false}\n"
                           << "devices: {sqlite: " << registry_ << "}\n"
                           << "fifo: {push: " << (dir_ / "push.fifo").string() << "}\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs iotsocketctl --config <config> args..., with `input` on stdin.
  Outcome ctl(std::vector<std::string> args, const std::string& input = "") {
    args.insert(args.begin(), {std::string(IOTSOCKET_BIN_DIR) + "/iotsocketctl", "--config", config_});
    return e2e::run_command(args, input);
  }

  DeviceRegistry registry() {
    auto opened = DeviceRegistry::open(registry_, DeviceRegistry::Mode::read_write);
    if (!opened) ADD_FAILURE() << opened.error();
    return std::move(opened).value();
  }

  void expect_ok(const Outcome& r) {
    EXPECT_EQ(r.exit_code, 0) << "stdout: " << r.out << "\nstderr: " << r.err;
  }

  fs::path dir_;
  std::string registry_;
  std::string config_;
};

TEST_F(CtlTest, AddGeneratesAndPrintsTheKeyOnce) {
  const Outcome r = ctl({"devices", "add", "42"});
  expect_ok(r);
  std::smatch match;
  ASSERT_TRUE(std::regex_match(r.out, match, std::regex("0000000042 ([A-Za-z0-9_-]{32})\n"))) << r.out;
  EXPECT_NE(r.err.find("iotsocketctl cannot show it again"), std::string::npos) << r.err;
  auto devices = registry();
  EXPECT_EQ(devices.verify(DeviceId{42}, match[1].str()), LoginCheck::ok);
}

TEST_F(CtlTest, AddWithKeyPrintsTheIdOnly) {
  const Outcome r = ctl({"devices", "add", "0000000042", "--key", "legacy-key"});
  expect_ok(r);
  EXPECT_EQ(r.out, "0000000042\n");
  EXPECT_EQ(registry().verify(DeviceId{42}, "legacy-key"), LoginCheck::ok);
}

TEST_F(CtlTest, AddTwiceFails) {
  expect_ok(ctl({"devices", "add", "42", "--key", "k1"}));
  const Outcome r = ctl({"devices", "add", "0042", "--key", "k2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "iotsocketctl: device 0000000042 already exists\n");
  EXPECT_EQ(registry().verify(DeviceId{42}, "k1"), LoginCheck::ok);
}

TEST_F(CtlTest, AddRefusesAKeyThatCannotBeSent) {
  const Outcome r = ctl({"devices", "add", "42", "--key", "a:b"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("a key must be"), std::string::npos) << r.err;
}

TEST_F(CtlTest, DisableEnableRemove) {
  expect_ok(ctl({"devices", "add", "7", "--key", "seven"}));
  expect_ok(ctl({"devices", "disable", "7"}));
  EXPECT_EQ(registry().verify(DeviceId{7}, "seven"), LoginCheck::disabled);
  expect_ok(ctl({"devices", "enable", "0000000007"}));
  EXPECT_EQ(registry().verify(DeviceId{7}, "seven"), LoginCheck::ok);
  expect_ok(ctl({"devices", "remove", "7"}));
  EXPECT_EQ(registry().verify(DeviceId{7}, "seven"), LoginCheck::unknown_device);
}

TEST_F(CtlTest, AbsentDeviceFailsWithItsName) {
  expect_ok(ctl({"devices", "add", "7"}));
  for (const char* command : {"remove", "disable", "enable"}) {
    const Outcome r = ctl({"devices", command, "42"});
    EXPECT_EQ(r.exit_code, 1) << command;
    EXPECT_EQ(r.err, "iotsocketctl: no device 0000000042\n") << command;
  }
}

TEST_F(CtlTest, ListShowsEveryDevice) {
  expect_ok(ctl({"devices", "add", "9", "--key", "nine"}));
  expect_ok(ctl({"devices", "add", "10"}));
  expect_ok(ctl({"devices", "disable", "9"}));
  registry().record_session_end(DeviceId{10},
                                std::chrono::sys_seconds{std::chrono::seconds{1'700'000'000}},
                                protocol::Time{});
  const Outcome r = ctl({"devices", "list"});
  expect_ok(r);
  std::istringstream lines(r.out);
  std::string header, first, second, extra;
  std::getline(lines, header);
  std::getline(lines, first);
  std::getline(lines, second);
  EXPECT_FALSE(std::getline(lines, extra)) << extra;
  EXPECT_TRUE(std::regex_match(header, std::regex("ID +ENABLED +CREATED +LAST SEEN"))) << header;
  const std::string iso = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ";
  EXPECT_TRUE(std::regex_match(first, std::regex("0000000009 +no +" + iso + " +never"))) << first;
  EXPECT_TRUE(std::regex_match(second, std::regex("0000000010 +yes +" + iso + " +2023-11-14T22:13:20Z")))
      << second;
}

TEST_F(CtlTest, ImportsAFile) {
  const fs::path file = dir_ / "fleet.txt";
  std::ofstream(file) << "# fleet of three\n\n1 key-one\n  0000000002\tkey#two  \r\n\n3 key-three\n";
  const Outcome r = ctl({"devices", "import", file.string()});
  expect_ok(r);
  EXPECT_EQ(r.out, "imported 3 devices\n");
  auto devices = registry();
  EXPECT_EQ(devices.verify(DeviceId{1}, "key-one"), LoginCheck::ok);
  EXPECT_EQ(devices.verify(DeviceId{2}, "key#two"), LoginCheck::ok);
  EXPECT_EQ(devices.verify(DeviceId{3}, "key-three"), LoginCheck::ok);
}

TEST_F(CtlTest, ImportsStdinWithFastHash) {
  std::string input;
  for (int i = 1; i <= 1000; ++i) input += std::to_string(i) + " random-key-" + std::to_string(i * 31) + "\n";
  const Outcome r = ctl({"devices", "import", "--fast-hash", "-"}, input);
  expect_ok(r);
  EXPECT_EQ(r.out, "imported 1000 devices\n");
  auto devices = registry();
  EXPECT_EQ(devices.verify(DeviceId{500}, "random-key-15500"), LoginCheck::ok);
  const auto listed = devices.list();
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 1000u);
}

TEST_F(CtlTest, BadImportLineImportsNothing) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"1 one\n2 two\n3\n", "stdin:3: expected `ID KEY`"},
      {"1 one\n# note\nabc two\n", "stdin:3: bad device ID 'abc'"},
      {"1 one\n2 two words\n", "stdin:2: expected `ID KEY`"},
      {"1 one\n2 a:b\n", "stdin:2: a key must be"},
      {"1 one\n\n01 again\n", "stdin:3: device 0000000001 appears twice (first on line 1)"},
      {"1 one\n42 two\n", "device 0000000042 already exists"},
  };
  expect_ok(ctl({"devices", "add", "42"}));
  for (const auto& [input, message] : cases) {
    const Outcome r = ctl({"devices", "import", "-"}, input);
    EXPECT_EQ(r.exit_code, 1) << input;
    EXPECT_NE(r.err.find(message), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("nothing imported"), std::string::npos) << r.err;
    EXPECT_EQ(registry().verify(DeviceId{1}, "one"), LoginCheck::unknown_device) << input;
  }
}

// Every bad line is named in one run (the first 100, then a count), each on a line of its
// own whatever bytes the file holds, and nothing is imported.
TEST_F(CtlTest, EveryBadImportLineIsReportedAndNothingImported) {
  const fs::path file = dir_ / "fleet.txt";
  std::ofstream(file) << "1 one\nabc two\n3\n4 four\n4 again\n\x1b[2J\xff five\n6 six\n";
  const Outcome r = ctl({"devices", "import", file.string()});
  EXPECT_EQ(r.exit_code, 1);
  const std::string name = file.string();
  EXPECT_EQ(r.err, "iotsocketctl: " + name + ":2: bad device ID 'abc'\n"
                   "iotsocketctl: " + name + ":3: expected `ID KEY`\n"
                   "iotsocketctl: " + name + ":5: device 0000000004 appears twice (first on line 4)\n"
                   "iotsocketctl: " + name + ":6: bad device ID '\\x1b[2J\\xff'\n"
                   "iotsocketctl: " + name + ": 4 bad lines; nothing imported\n");
  EXPECT_EQ(registry().verify(DeviceId{1}, "one"), LoginCheck::unknown_device);

  std::string garbage;
  for (int i = 0; i < 250; ++i) garbage += "x" + std::to_string(i) + " key\n";
  const Outcome many = ctl({"devices", "import", "-"}, "7 seven\n" + garbage);
  EXPECT_EQ(many.exit_code, 1);
  EXPECT_NE(many.err.find("stdin:101: bad device ID 'x99'\n"), std::string::npos) << many.err;
  EXPECT_EQ(many.err.find("stdin:102:"), std::string::npos) << many.err;
  EXPECT_NE(many.err.find("iotsocketctl: stdin: ... and 150 more bad lines\n"
                          "iotsocketctl: stdin: 250 bad lines; nothing imported\n"),
            std::string::npos)
      << many.err;
  EXPECT_EQ(registry().verify(DeviceId{7}, "seven"), LoginCheck::unknown_device);
}

TEST_F(CtlTest, BadIdIsAUsageError) {
  for (const char* id : {"abc", "12345678901", "-1", ""}) {
    const Outcome r = ctl({"devices", "remove", id});
    EXPECT_EQ(r.exit_code, 2) << id;
    EXPECT_NE(r.err.find("is not a device ID"), std::string::npos) << r.err;
  }
  EXPECT_FALSE(fs::exists(registry_));
}

TEST_F(CtlTest, MissingPartsAreUsageErrors) {
  EXPECT_EQ(ctl({}).exit_code, 2);
  EXPECT_EQ(ctl({"devices"}).exit_code, 2);
  EXPECT_EQ(ctl({"devices", "add"}).exit_code, 2);
  EXPECT_EQ(ctl({"devices", "frobnicate", "1"}).exit_code, 2);
  EXPECT_EQ(ctl({"devices", "import"}).exit_code, 2);
}

TEST_F(CtlTest, HelpExitsZeroAndExplainsFastHash) {
  const Outcome r = ctl({"devices", "import", "--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("--fast-hash"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("random"), std::string::npos) << r.out;
}

TEST_F(CtlTest, MissingConfigIsNamedAndTheHintSaysHowToGiveAnother) {
  const std::string missing = (dir_ / "nope.yaml").string();
  const Outcome r = e2e::run_command({std::string(IOTSOCKET_BIN_DIR) + "/iotsocketctl", "--config", missing,
                     "devices", "list"},
                    "");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(missing), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("hint: give the server's config with --config FILE (default "
                       "/etc/iotsocket/iotsocket.yaml, the package's; make run's is var/iotsocket.yaml)"),
            std::string::npos)
      << r.err;
}

TEST_F(CtlTest, AConfigThatIsThereButBrokenGetsNoHint) {
  std::ofstream(config_) << "workers: many\n";
  const Outcome r = ctl({"devices", "list"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("workers"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("hint:"), std::string::npos) << r.err;
}

// An operator types --config where it comes to mind: after the subcommand too.
TEST_F(CtlTest, ConfigIsAcceptedAfterTheSubcommand) {
  const std::string bin = std::string(IOTSOCKET_BIN_DIR) + "/iotsocketctl";
  expect_ok(e2e::run_command({bin, "devices", "add", "42", "--key", "k42", "--config", config_}));
  expect_ok(e2e::run_command({bin, "devices", "add", "--config", config_, "43", "--key", "k43"}));
  expect_ok(e2e::run_command({bin, "devices", "disable", "-c", config_, "43"}));
  EXPECT_EQ(registry().verify(DeviceId{42}, "k42"), LoginCheck::ok);
  EXPECT_EQ(registry().verify(DeviceId{43}, "k43"), LoginCheck::disabled);
  // push checks the registry before it looks for a server: the ID is not taken for the config.
  const Outcome push = e2e::run_command({bin, "push", "--config", config_, "44", "hello"});
  EXPECT_EQ(push.exit_code, 1);
  EXPECT_NE(push.err.find("no device 0000000044 in the registry"), std::string::npos) << push.err;
}

TEST_F(CtlTest, EverySubcommandsHelpListsConfig) {
  const std::vector<std::vector<std::string>> commands{
      {"devices"},           {"devices", "add"},     {"devices", "list"}, {"devices", "show"},
      {"devices", "remove"}, {"devices", "disable"}, {"devices", "enable"}, {"devices", "import"},
      {"status"},            {"push"}};
  for (std::vector<std::string> command : commands) {
    command.insert(command.begin(), std::string(IOTSOCKET_BIN_DIR) + "/iotsocketctl");
    command.emplace_back("--help");
    const Outcome r = e2e::run_command(command);
    EXPECT_EQ(r.exit_code, 0) << ::testing::PrintToString(command);
    EXPECT_NE(r.out.find("-c,--config TEXT"), std::string::npos) << ::testing::PrintToString(command) << r.out;
  }
}

// The server would refuse it: the backend developer hears it from the command, exit 1.
TEST_F(CtlTest, PushToADeviceNotInTheRegistryFailsWithTheReason) {
  expect_ok(ctl({"devices", "add", "7", "--key", "seven"}));
  const Outcome r = ctl({"push", "42", "hello"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err,
            "iotsocketctl: no device 0000000042 in the registry " + registry_ +
                ": the server would refuse the push (add it with: iotsocketctl devices add 0000000042)\n");
  // A registered device passes the check; with no server running, that is the next failure.
  const Outcome known = ctl({"push", "7", "hello"});
  EXPECT_EQ(known.exit_code, 1);
  EXPECT_EQ(known.err.find("in the registry"), std::string::npos) << known.err;
  EXPECT_NE(known.err.find("fifo.push"), std::string::npos) << known.err;
  // A disabled one too, with a note that the push waits until the device may log in.
  expect_ok(ctl({"devices", "disable", "7"}));
  const Outcome disabled = ctl({"push", "7", "hello"});
  EXPECT_EQ(disabled.exit_code, 1);
  EXPECT_NE(disabled.err.find("iotsocketctl: note: device 0000000007 is disabled: the push waits in the "
                              "offline queue until it is enabled and logs in\n"),
            std::string::npos)
      << disabled.err;
}

TEST_F(CtlTest, ListOfAMissingRegistryNamesIt) {
  const Outcome r = ctl({"devices", "list"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(registry_), std::string::npos) << r.err;
}

}  // namespace
}  // namespace iotsocket
