// `iotsocketd --check-config` (like `nginx -t`): exit 0 with "configuration OK", or 1 with
// every problem named; the certificate and key are loaded and matched, and what would
// surprise an operator later (expiry within 30 days, a world-readable key) is a warning.
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
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
  std::string config_text() const {
    std::ifstream in(server_.config_path());
    return {std::istreambuf_iterator<char>(in), {}};
  }
  // "FILE:LINE:" of the config line that starts with `start` ("spool:").
  std::string place_of(const std::string& start) const {
    const std::string text = config_text();
    const std::size_t at = text.find("\n" + start);
    const auto line = std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at + 1), '\n') + 1;
    return server_.config_path() + ":" + std::to_string(line) + ":";
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
  EXPECT_NE(missing.err.find(place_of("tls:")), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("tls.cert: " + server_.dir() + "/cert.pem: No such file or directory; "
                             "expected a PEM certificate chain file"),
            std::string::npos)
      << missing.err;
}

// Issue 16, item 7b. Both the check and the start name the key, the config file's line,
// the path and what is wrong (a directory as the key once read as "an encrypted key").
TEST_F(CheckConfigTest, AMissingCertificateOrADirectoryAsCertOrKeyIsNamedWithItsKeyAndLine) {
  make_pair(365);
  const std::string dir = server_.dir();
  struct Case {
    std::string key;
    std::string file;
    bool directory;
    std::string message;
  };
  const Case cases[] = {
      {"tls.cert", "cert.pem", false,
       dir + "/cert.pem: No such file or directory; expected a PEM certificate chain file"},
      {"tls.cert", "cert.pem", true, dir + "/cert.pem is a directory; expected a PEM certificate chain file"},
      {"tls.key", "key.pem", false,
       dir + "/key.pem: No such file or directory; expected a PEM private key file"},
      {"tls.key", "key.pem", true, dir + "/key.pem is a directory; expected a PEM private key file"},
  };
  for (const Case& c : cases) {
    make_pair(365);
    std::filesystem::remove(dir + "/" + c.file);
    if (c.directory) std::filesystem::create_directory(dir + "/" + c.file);
    const RunResult checked = check();
    const RunResult started = run_command({binary("iotsocketd"), "--config", server_.config_path()});
    for (const RunResult* r : {&checked, &started}) {
      EXPECT_EQ(r->exit_code, 1) << c.message;
      EXPECT_NE(r->err.find(place_of("tls:")), std::string::npos) << r->err;
      EXPECT_NE(r->err.find(c.key + ": " + c.message), std::string::npos) << r->err;
      EXPECT_EQ(r->err.find("encrypted"), std::string::npos) << r->err;
    }
    std::filesystem::remove(dir + "/" + c.file);
  }
}

// Issue 16, item 7c: what would fail at start fails the check, with its key and line.
TEST_F(CheckConfigTest, ASpoolDirThatIsAFileOrUnderOneIsRefusedByTheCheck) {
  make_pair(365);
  const std::string spool = server_.dir() + "/spool";
  std::ofstream(spool) << "not a directory\n";
  RunResult file = check();
  EXPECT_EQ(file.exit_code, 1);
  EXPECT_EQ(file.out.find("configuration OK"), std::string::npos);
  EXPECT_NE(file.err.find(place_of("spool:")), std::string::npos) << file.err;
  EXPECT_NE(file.err.find("spool.dir: " + spool + " is not a directory; expected a directory the server "
                          "can write in"),
            std::string::npos)
      << file.err;
  std::string text = config_text();
  const std::string line = "spool: {dir: spool}";
  text.replace(text.find(line), line.size(), "spool: {dir: spool/inner}");
  std::ofstream(server_.config_path()) << text;
  RunResult under = check();
  EXPECT_EQ(under.exit_code, 1);
  EXPECT_NE(under.err.find("spool.dir: " + spool + "/inner cannot be made: " + spool + " is not a directory"),
            std::string::npos)
      << under.err;
}

// Not writable: for a user, a directory without write permission; for root (which writes
// in any directory, and CI runs as root), the directory bind-mounted read-only in a mount
// namespace of the check's own.
TEST_F(CheckConfigTest, ASpoolDirTheServerCannotWriteInIsRefusedByTheCheck) {
  make_pair(365);
  const std::string spool = server_.dir() + "/spool";
  std::filesystem::create_directory(spool);
  RunResult r;
  if (::geteuid() == 0) {
    // A container without CAP_SYS_ADMIN cannot make one: then no unwritable directory can be
    // made for root here at all.
    if (run_command({"/usr/bin/unshare", "--mount", "/bin/true"}).exit_code != 0) {
      GTEST_SKIP() << "root, and no mount namespace can be made (no CAP_SYS_ADMIN)";
    }
    r = run_command({"/usr/bin/unshare", "--mount", "/bin/sh", "-c",
                     "mount --bind -o ro \"$1\" \"$1\" && exec \"$2\" --check-config --config \"$3\"",
                     "sh", spool, binary("iotsocketd"), server_.config_path()});
  } else {
    ::chmod(spool.c_str(), 0500);
    r = check();
    ::chmod(spool.c_str(), 0700);
  }
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("spool.dir: cannot write in " + spool + ": "), std::string::npos) << r.err;
  EXPECT_TRUE(r.err.find("Permission denied") != std::string::npos ||
              r.err.find("Read-only file system") != std::string::npos)
      << r.err;
}

// A config named by a relative path, with a relative spool.dir not made yet (the server makes
// it): accepted, as it was before the check of spool.dir.
TEST_F(CheckConfigTest, ARelativeSpoolDirNotYetMadeIsAccepted) {
  make_pair(365);
  std::filesystem::remove_all(server_.dir() + "/spool");
  const RunResult r = run_command({"/bin/sh", "-c", "cd \"$1\" && exec \"$2\" --check-config --config iotsocket.yaml",
                                   "sh", server_.dir(), binary("iotsocketd")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
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
