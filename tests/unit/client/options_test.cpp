// Client::create(): options it must refuse (bad_options, fatal, the option named in the
// message), each one change away from options it accepts.
#include <gtest/gtest.h>

#include <functional>
#include <ostream>

#include "tests/unit/client/fake_server.hpp"

namespace iotsocket::client::test {
namespace {

using namespace std::chrono_literals;

// Valid options (no server needed: create() does not connect).
Options valid_options() { return test_options(9000); }

TEST(ClientOptions, TheValidOptionsAreAccepted) {
  EXPECT_TRUE(make_client(valid_options()));
}

TEST(ClientOptions, ShortDeviceIdsAndInsecureAloneAreAccepted) {
  Options options = valid_options();
  options.device_id = "42";
  EXPECT_TRUE(make_client(options));
  options.device_id = "0000000042";
  EXPECT_TRUE(make_client(options));
  options.pins.clear();
  options.insecure = true;
  EXPECT_TRUE(make_client(options));
}

struct BadOption {
  const char* name;          // the test's name
  std::function<void(Options&)> change;
  const char* option;        // what the message must name
};

void PrintTo(const BadOption& bad, std::ostream* out) { *out << bad.name; }

const BadOption kBadOptions[] = {
    {"EmptyHost", [](Options& o) { o.host.clear(); }, "host"},
    {"PortZero", [](Options& o) { o.port = 0; }, "port"},
    {"DeviceIdOfElevenDigits", [](Options& o) { o.device_id = "12345678901"; }, "device_id"},
    {"DeviceIdWithALetter", [](Options& o) { o.device_id = "12a"; }, "device_id"},
    {"EmptyDeviceId", [](Options& o) { o.device_id.clear(); }, "device_id"},
    {"KeyWithAColon", [](Options& o) { o.key = "abc:def"; }, "key"},
    {"KeyWithASpace", [](Options& o) { o.key = "abc def"; }, "key"},
    {"EmptyKey", [](Options& o) { o.key.clear(); }, "key"},
    {"NoWayToAuthenticateTheServer", [](Options& o) { o.pins.clear(); }, "ca_file"},
    {"InsecureTogetherWithPins", [](Options& o) { o.insecure = true; }, "insecure"},
    {"APinThatDoesNotParse", [](Options& o) { o.pins.push_back("sha256/abc="); }, "pins"},
    {"CaFileThatDoesNotExist",
     [](Options& o) { o.ca_file = certificates().dir + "/no-such-file.pem"; }, "ca_file"},
    {"CertFileHoldingNoCertificate",  // the key file given by mistake
     [](Options& o) { o.cert_file = certificates().server.key_file; }, "cert_file"},
    {"BackoffMaxBelowBackoffInitial",
     [](Options& o) {
       o.backoff_initial = 100ms;
       o.backoff_max = 99ms;
     },
     "backoff_max"},
    {"KeepalivePayloadTooShort", [](Options& o) { o.keepalive_payload = "abc"; },
     "keepalive_payload"},
    {"ConnectTimeoutZero", [](Options& o) { o.connect_timeout = 0ms; }, "connect_timeout"},
    {"NegativeLoginGrace", [](Options& o) { o.login_grace = -1ms; }, "login_grace"},
    {"TimeToleranceZero", [](Options& o) { o.time_tolerance = 0ms; }, "time_tolerance"},
    {"NegativeKeepalive", [](Options& o) { o.keepalive = -1ms; }, "keepalive"},
    {"NegativeMaxConnectionAge", [](Options& o) { o.max_connection_age = -1ms; },
     "max_connection_age"},
    {"BackoffInitialZero", [](Options& o) { o.backoff_initial = 0ms; }, "backoff_initial"},
    {"QueueLimitZero", [](Options& o) { o.queue_limit = 0; }, "queue_limit"},
};

class ClientRefusesOption : public ::testing::TestWithParam<BadOption> {};

TEST_P(ClientRefusesOption, WithBadOptionsNamingIt) {
  Options options = valid_options();
  GetParam().change(options);
  Error error;
  error.code = ErrorCode::closed;  // anything but the expected code
  const auto client = Client::create(options, &error);
  EXPECT_EQ(client, nullptr);
  EXPECT_EQ(name(error.code), "bad_options");
  EXPECT_TRUE(error.fatal);
  EXPECT_NE(error.message.find(GetParam().option), std::string::npos) << error.message;
}

INSTANTIATE_TEST_SUITE_P(Options, ClientRefusesOption, ::testing::ValuesIn(kBadOptions),
                         [](const ::testing::TestParamInfo<BadOption>& param) {
                           return std::string(param.param.name);
                         });

TEST(ClientOptions, CreateWithoutAnErrorOutputStillRefuses) {
  Options options = valid_options();
  options.port = 0;
  EXPECT_EQ(Client::create(options, nullptr), nullptr);
}

}  // namespace
}  // namespace iotsocket::client::test
