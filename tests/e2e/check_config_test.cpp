// `iotsocketd --check-config` (like `nginx -t`): exit 0 with "configuration OK", or 1 with
// every problem named; the certificate and key are loaded and matched, and what would
// surprise an operator later (expiry within 30 days, a world-readable key) is a warning.
#include <sys/stat.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

class CheckConfigTest : public ::testing::Test {
 protected:
  RunResult check() const {
    return run_command({binary("iotsocketd"), "--check-config", "--config", server_.config_path()});
  }
  // A new self-signed pair valid for `days`, written over the server's cert.pem/key.pem
  // (or to other names).
  void make_pair(int days, const std::string& cert = "cert.pem", const std::string& key = "key.pem") {
    make_certificate(server_.dir() + "/" + cert, server_.dir() + "/" + key, days);
  }
  void append_config(const std::string& text) const {
    std::ofstream(server_.config_path(), std::ios::app) << text;
  }

  TestServer server_;  // not started: only its directory, config and certificate
};

TEST_F(CheckConfigTest, AGoodConfigIsOkWithoutWarnings) {
  make_pair(365);
  RunResult r = check();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "configuration OK\n");
  EXPECT_EQ(r.err.find("warn"), std::string::npos) << r.err;
}

TEST_F(CheckConfigTest, ACertificateExpiringWithin30DaysIsAWarning) {
  make_pair(10);
  RunResult r = check();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "configuration OK\n");
  EXPECT_NE(r.err.find("cert.pem expires in 10 days (within 30 days)"), std::string::npos) << r.err;
}

TEST_F(CheckConfigTest, AWorldReadableKeyIsAWarning) {
  make_pair(365);
  ::chmod((server_.dir() + "/key.pem").c_str(), 0644);
  RunResult r = check();
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("key.pem is readable by every user (mode 0644)"), std::string::npos) << r.err;
}

TEST_F(CheckConfigTest, AKeyThatDoesNotMatchTheCertificateFails) {
  make_pair(365);
  make_pair(365, "other-cert.pem", "key.pem");  // a new key.pem; cert.pem keeps the old key's
  RunResult r = check();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out.find("configuration OK"), std::string::npos);
  EXPECT_NE(r.err.find("private key " + server_.dir() + "/key.pem does not match certificate " +
                       server_.dir() + "/cert.pem"),
            std::string::npos)
      << r.err;
}

TEST_F(CheckConfigTest, AMissingOrBrokenCertificateFailsNamingTheFile) {
  std::ofstream(server_.dir() + "/cert.pem") << "-----BEGIN CERTIFICATE-----\nnot base64\n";
  RunResult broken = check();
  EXPECT_EQ(broken.exit_code, 1);
  EXPECT_NE(broken.err.find("cannot load certificate " + server_.dir() + "/cert.pem"), std::string::npos)
      << broken.err;
  std::filesystem::remove(server_.dir() + "/cert.pem");
  RunResult missing = check();
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("cannot load certificate " + server_.dir() + "/cert.pem"), std::string::npos)
      << missing.err;
}

TEST_F(CheckConfigTest, ATypoIsNamedWithFileLineAndColumn) {
  append_config("timeouts_idle: 90s\n");
  RunResult r = check();
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find(server_.config_path() + ":"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("timeouts_idle"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace iotsocket::e2e
