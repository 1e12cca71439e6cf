// How the client decides that it talks to its server: a CA bundle (chain and name
// verified by OpenSSL), a pinned certificate file (the legacy client's cert_path: the
// server's certificate must be exactly one in the file), SHA-256 SPKI pins (OkHttp/HPKP's
// "sha256/BASE64"), or nothing at all (insecure, said loudly).
#pragma once

#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "common/tls.hpp"
#include "iotsocket/client.hpp"
#include "common/expected.hpp"

namespace iotsocket::client {

using Sha256 = std::array<unsigned char, 32>;

// "sha256/" + base64 of 32 bytes (44 characters with one '='); nullopt otherwise.
std::optional<Sha256> parse_pin(std::string_view text);
// The pin of a certificate's SubjectPublicKeyInfo, in the same form.
std::string pin_of(X509* cert);

// What the options say to trust, loaded once (files read at create()).
class Trust {
 public:
  // Reads ca_file / cert_file and parses the pins; the error names the option and file.
  static Expected<Trust, Error> load(const Options& options);

  // A client context: TLS 1.2+, and peer verification when a CA bundle is given.
  Expected<SslCtx, Error> make_context() const;

  // Sets SNI and, with a CA bundle, the name or IP address the certificate must carry.
  // False when OpenSSL refused one of them: the name check would otherwise fail open.
  bool prepare(SSL* ssl, const std::string& server_name) const;

  // After the handshake: nullopt when the server is the one we trust.
  std::optional<Error> check(SSL* ssl) const;

  // Handshake failed: was it the CA verification? Then the error that says why.
  std::optional<Error> verification_error(SSL* ssl) const;

  bool insecure() const noexcept { return insecure_; }

 private:
  struct X509Free {
    void operator()(X509* x) const noexcept { X509_free(x); }
  };
  using X509Ptr = std::unique_ptr<X509, X509Free>;

  std::string ca_file_;
  std::vector<X509Ptr> pinned_certs_;   // from cert_file
  std::string cert_file_;
  std::vector<Sha256> pins_;
  bool insecure_ = false;
};

}  // namespace iotsocket::client
