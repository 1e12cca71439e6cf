// How the client decides that it talks to its server: pins parsed strictly and computed as
// the openssl command line computes them; then each way of authenticating the server (pin,
// certificate file, CA file, insecure) against a real TLS server on 127.0.0.1.
#include "client/trust.hpp"

#include <openssl/pem.h>
#include <openssl/x509.h>

#include <gtest/gtest.h>

#include <cstdio>
#include <memory>

#include "tests/unit/client/fake_server.hpp"

namespace iotsocket::client::test {
namespace {

using namespace std::chrono_literals;

// SHA-256 of the empty string, as a pin. Its last base64 digit, 'U', has the two unused
// bits at zero (canonical); 'V' decodes to the same bytes with one of them set.
constexpr std::string_view kGoodPin = "sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
constexpr Sha256 kEmptyStringSha256 = {
    0xe3, 0xb0, 0xc4, 0x42, 0x98, 0xfc, 0x1c, 0x14, 0x9a, 0xfb, 0xf4, 0xc8, 0x99, 0x6f, 0xb9, 0x24,
    0x27, 0xae, 0x41, 0xe4, 0x64, 0x9b, 0x93, 0x4c, 0xa4, 0x95, 0x99, 0x1b, 0x78, 0x52, 0xb8, 0x55};

std::string with_char(std::string_view text, std::size_t at, char c) {
  std::string changed(text);
  changed[at] = c;
  return changed;
}

std::string library_pin(const std::string& cert_file) {
  std::unique_ptr<FILE, int (*)(FILE*)> in(std::fopen(cert_file.c_str(), "r"), &std::fclose);
  if (!in) return "cannot open " + cert_file;
  std::unique_ptr<X509, void (*)(X509*)> cert(PEM_read_X509(in.get(), nullptr, nullptr, nullptr),
                                              &X509_free);
  if (!cert) return "no certificate in " + cert_file;
  return pin_of(cert.get());
}

// ---- parse_pin and pin_of ----

TEST(ParsePin, AcceptsAPinAndDecodesItsDigest) {
  const auto pin = parse_pin(kGoodPin);
  ASSERT_TRUE(pin.has_value());
  EXPECT_EQ(*pin, kEmptyStringSha256);
}

TEST(ParsePin, RefusesAnotherPrefix) {
  const std::string_view base64 = kGoodPin.substr(7);
  EXPECT_FALSE(parse_pin("sha1/" + std::string(base64)));
  EXPECT_FALSE(parse_pin("SHA256/" + std::string(base64)));
  EXPECT_FALSE(parse_pin(base64));
  EXPECT_FALSE(parse_pin(""));
}

TEST(ParsePin, RefusesAnotherLength) {
  EXPECT_FALSE(parse_pin(kGoodPin.substr(0, kGoodPin.size() - 1)));   // one character short
  EXPECT_FALSE(parse_pin(std::string(kGoodPin) + "="));               // one too many
  EXPECT_FALSE(parse_pin("sha256/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="));
}

TEST(ParsePin, RefusesAPinWithoutItsPaddingCharacter) {
  EXPECT_FALSE(parse_pin(with_char(kGoodPin, kGoodPin.size() - 1, 'A')));
  // Two '=' would be the padding of 31 bytes, not of a SHA-256.
  EXPECT_FALSE(parse_pin(with_char(kGoodPin, kGoodPin.size() - 2, '=')));
}

TEST(ParsePin, RefusesCharactersOutsideBase64) {
  EXPECT_FALSE(parse_pin(with_char(kGoodPin, 10, '*')));
  EXPECT_FALSE(parse_pin(with_char(kGoodPin, 10, ' ')));
  EXPECT_FALSE(parse_pin(with_char(kGoodPin, 10, '-')));  // base64url, not base64
}

TEST(ParsePin, RefusesANonCanonicalLastCharacter) {
  const std::string other_spelling = with_char(kGoodPin, kGoodPin.size() - 2, 'V');
  EXPECT_FALSE(parse_pin(other_spelling));
  EXPECT_TRUE(parse_pin(with_char(kGoodPin, kGoodPin.size() - 2, 'U')));  // the control
}

TEST(PinOf, EqualsThePinOfTheOpensslCommandLine) {
  const Certificates& certs = certificates();
  EXPECT_EQ(library_pin(certs.server.cert_file), certs.server.pin);
  EXPECT_EQ(library_pin(certs.other.cert_file), certs.other.pin);
  EXPECT_NE(certs.server.pin, certs.other.pin);
  EXPECT_TRUE(parse_pin(certs.server.pin).has_value()) << certs.server.pin;
}

// ---- authenticating a real server ----

class ClientTrust : public ::testing::Test {
 protected:
  // Options that authenticate the server only by what the test sets.
  Options untrusting_options() const {
    Options options = test_options(server_.port());
    options.pins.clear();
    return options;
  }

  // The connection the server saw has ended; then what it received.
  std::string received_by_server() const {
    EXPECT_TRUE(server_.wait_until(
        [](const std::vector<Connection>& c) { return c.size() == 1 && c[0].ended; }, 3s));
    return server_.inspect([](const std::vector<Connection>& c) {
      return c.empty() ? std::string("<no connection>") : c[0].received;
    });
  }

  void expect_refused(const Options& options, ErrorCode code) {
    auto client = make_client(options);
    ASSERT_TRUE(client);
    const auto error = client->connect();
    ASSERT_TRUE(error.has_value());
    EXPECT_EQ(name(error->code), name(code)) << error->message;
    EXPECT_TRUE(error->fatal);
    EXPECT_FALSE(client->online());
    // Not a byte of IOT/1.1 goes to a server that is not trusted.
    EXPECT_EQ(received_by_server(), "");
    // And the client stays stopped.
    const Event later = client->poll(10ms);
    ASSERT_TRUE(later.error.has_value());
    EXPECT_EQ(later.error->code, code);
    EXPECT_EQ(server_.connection_count(), 1u);
  }

  void expect_connects(const Options& options) {
    auto client = make_client(options);
    ASSERT_TRUE(client);
    const auto error = client->connect();
    EXPECT_FALSE(error.has_value()) << name(error->code) << ": " << error->message;
    EXPECT_TRUE(client->online());
    EXPECT_TRUE(server_.wait_until(
        [](const std::vector<Connection>& c) { return c.size() == 1 && !c[0].frames.empty(); },
        3s));
  }

  FakeServer server_{certificates().server};
};

TEST_F(ClientTrust, APinOfTheServerConnects) {
  Options options = untrusting_options();
  options.pins = {certificates().other.pin, certificates().server.pin};  // any one may match
  expect_connects(options);
}

TEST_F(ClientTrust, AWrongPinIsPinMismatch) {
  Options options = untrusting_options();
  options.pins = {certificates().other.pin};
  expect_refused(options, ErrorCode::pin_mismatch);
}

TEST_F(ClientTrust, CertFileOfTheServerConnects) {
  Options options = untrusting_options();
  options.cert_file = certificates().server.cert_file;
  expect_connects(options);
}

TEST_F(ClientTrust, CertFileOfAnotherCertificateIsPinMismatchAndNoFrameIsSent) {
  Options options = untrusting_options();
  options.cert_file = certificates().other.cert_file;
  expect_refused(options, ErrorCode::pin_mismatch);
  // The TLS handshake itself went through: the refusal is the client's own check.
  EXPECT_TRUE(server_.inspect([](const std::vector<Connection>& c) { return c[0].handshake_done; }));
}

TEST_F(ClientTrust, CaFileOfASelfSignedServerConnectsByIpAddress) {
  Options options = untrusting_options();
  options.ca_file = certificates().server.cert_file;
  options.host = "127.0.0.1";
  expect_connects(options);
}

TEST_F(ClientTrust, CaFileConnectsWithTheDnsNameOfTheCertificate) {
  Options options = untrusting_options();
  options.ca_file = certificates().server.cert_file;
  options.server_name = "localhost";
  expect_connects(options);
}

TEST_F(ClientTrust, CaFileOfAnotherCertificateIsCertificateRejected) {
  Options options = untrusting_options();
  options.ca_file = certificates().other.cert_file;
  expect_refused(options, ErrorCode::certificate_rejected);
}

TEST_F(ClientTrust, CaFileWithAServerNameTheCertificateLacksIsCertificateRejected) {
  Options options = untrusting_options();
  options.ca_file = certificates().server.cert_file;
  options.server_name = "other.example";
  expect_refused(options, ErrorCode::certificate_rejected);
}

TEST_F(ClientTrust, InsecureConnectsAndWarnsOnConnect) {
  Options options = untrusting_options();
  options.insecure = true;
  std::vector<std::string> warnings;
  options.log = [&warnings](LogLevel level, std::string_view line) {
    if (level >= LogLevel::warning) warnings.emplace_back(line);
  };
  expect_connects(options);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("insecure"), std::string::npos) << warnings[0];
}

TEST_F(ClientTrust, ServerPinIsThePinOfTheServerCertificateOnceConnected) {
  auto client = make_client(test_options(server_.port()));
  ASSERT_TRUE(client);
  EXPECT_EQ(client->server_pin(), "");
  ASSERT_FALSE(client->connect().has_value());
  EXPECT_EQ(client->server_pin(), certificates().server.pin);
  EXPECT_EQ(client->server_pin(), library_pin(certificates().server.cert_file));
}

}  // namespace
}  // namespace iotsocket::client::test
