#include "client/trust.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdio>
#include <memory>

namespace iotsocket::client {
namespace {

constexpr std::string_view kPinPrefix = "sha256/";
constexpr std::size_t kPinBase64Chars = 44;  // 32 bytes -> 43 characters and one '='

Unexpected<Error> fatal(ErrorCode code, std::string message) {
  return Unexpected{Error{code, std::move(message), true}};
}

std::optional<Sha256> spki_sha256(X509* cert) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(X509_get0_pubkey(cert), &der);
  if (length <= 0) return std::nullopt;
  Sha256 digest{};
  unsigned int size = 0;
  const bool ok = EVP_Digest(der, static_cast<std::size_t>(length), digest.data(), &size,
                             EVP_sha256(), nullptr) == 1;
  OPENSSL_free(der);
  if (!ok) return std::nullopt;
  return digest;
}

std::string base64(const Sha256& digest) {
  std::string text(kPinBase64Chars + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(text.data()), digest.data(),
                                static_cast<int>(digest.size()));
  text.resize(static_cast<std::size_t>(n));
  return text;
}

bool is_ip_address(const std::string& host) {
  ASN1_OCTET_STRING* ip = a2i_IPADDRESS(host.c_str());
  const bool is_ip = ip != nullptr;
  ASN1_OCTET_STRING_free(ip);
  ERR_clear_error();
  return is_ip;
}

// Every certificate in a PEM file; an error names the file.
Expected<std::vector<std::unique_ptr<X509, void (*)(X509*)>>, std::string> read_certificates(
    const std::string& file) {
  std::vector<std::unique_ptr<X509, void (*)(X509*)>> certs;
  std::unique_ptr<FILE, int (*)(FILE*)> in(std::fopen(file.c_str(), "r"), &std::fclose);
  if (!in) return Unexpected{"cannot open " + file};
  while (X509* cert = PEM_read_X509(in.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert, &X509_free);
  }
  ERR_clear_error();  // the read that ends the loop leaves "no start line"
  if (certs.empty()) return Unexpected{file + " holds no PEM certificate"};
  return certs;
}

}  // namespace

std::optional<Sha256> parse_pin(std::string_view text) {
  if (!text.starts_with(kPinPrefix)) return std::nullopt;
  text.remove_prefix(kPinPrefix.size());
  if (text.size() != kPinBase64Chars || !text.ends_with('=') || text[42] == '=') {
    return std::nullopt;
  }
  unsigned char raw[33];
  const int n = EVP_DecodeBlock(raw, reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n != 33) return std::nullopt;  // EVP_DecodeBlock counts the padding as a zero byte
  Sha256 digest{};
  std::copy_n(raw, digest.size(), digest.begin());
  // Refuse spellings that decode to the same bytes (non-zero bits in the last character).
  if (base64(digest) != text) return std::nullopt;
  return digest;
}

std::string pin_of(X509* cert) {
  const auto digest = spki_sha256(cert);
  if (!digest) return {};
  return std::string(kPinPrefix) + base64(*digest);
}

Expected<Trust, Error> Trust::load(const Options& options) {
  Trust trust;
  trust.insecure_ = options.insecure;
  if (!options.ca_file.empty()) {
    auto certs = read_certificates(options.ca_file);
    if (!certs) return fatal(ErrorCode::bad_options, "ca_file: " + certs.error());
    trust.ca_file_ = options.ca_file;
  }
  if (!options.cert_file.empty()) {
    auto certs = read_certificates(options.cert_file);
    if (!certs) return fatal(ErrorCode::bad_options, "cert_file: " + certs.error());
    for (auto& cert : *certs) trust.pinned_certs_.emplace_back(cert.release());
    trust.cert_file_ = options.cert_file;
  }
  for (const std::string& text : options.pins) {
    const auto pin = parse_pin(text);
    if (!pin) {
      return fatal(ErrorCode::bad_options,
                   "pins: '" + text + "' is not a pin (expected sha256/ and 44 characters of base64)");
    }
    trust.pins_.push_back(*pin);
  }
  const bool authenticates =
      !trust.ca_file_.empty() || !trust.pinned_certs_.empty() || !trust.pins_.empty();
  if (!authenticates && !trust.insecure_) {
    return fatal(ErrorCode::bad_options,
                 "no way to authenticate the server: give ca_file, cert_file or pins "
                 "(or insecure, to accept any server)");
  }
  if (authenticates && trust.insecure_) {
    return fatal(ErrorCode::bad_options,
                 "insecure contradicts ca_file, cert_file and pins: give one or the other");
  }
  return trust;
}

Expected<SslCtx, Error> Trust::make_context() const {
  ERR_clear_error();
  SslCtx ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) return fatal(ErrorCode::tls_failed, "SSL_CTX_new: " + drain_tls_errors());
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // A server that restarts or drops a device sends no close_notify; the frames are whole
  // or not by their delimiter, so a bare EOF is an ordinary close.
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  if (!ca_file_.empty()) {
    if (SSL_CTX_load_verify_locations(ctx.get(), ca_file_.c_str(), nullptr) != 1) {
      return fatal(ErrorCode::bad_options,
                   "ca_file: cannot load " + ca_file_ + ": " + drain_tls_errors());
    }
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  } else {
    // Pins and pinned certificates are checked after the handshake (check()), before a
    // byte of IOT/1.1 is written; a self-signed server certificate is their usual case.
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, nullptr);
  }
  return ctx;
}

bool Trust::prepare(SSL* ssl, const std::string& server_name) const {
  const bool ip = is_ip_address(server_name);
  // SSL_set_tlsext_host_name(), without the macro's C cast. No SNI for an address (RFC 6066).
  if (!ip && SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                      const_cast<char*>(server_name.c_str())) != 1) {
    return false;
  }
  if (ca_file_.empty()) return true;
  X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
  if (ip) return X509_VERIFY_PARAM_set1_ip_asc(param, server_name.c_str()) == 1;
  X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
  return X509_VERIFY_PARAM_set1_host(param, server_name.c_str(), 0) == 1;
}

std::optional<Error> Trust::verification_error(SSL* ssl) const {
  if (ca_file_.empty()) return std::nullopt;
  const long result = SSL_get_verify_result(ssl);
  if (result == X509_V_OK) return std::nullopt;
  return Error{ErrorCode::certificate_rejected,
               std::string("the server's certificate does not verify against ") + ca_file_ +
                   ": " + X509_verify_cert_error_string(result),
               true};
}

std::optional<Error> Trust::check(SSL* ssl) const {
  if (pinned_certs_.empty() && pins_.empty()) return std::nullopt;  // CA (done) or insecure
  X509* leaf = SSL_get0_peer_certificate(ssl);
  if (leaf == nullptr) {
    return Error{ErrorCode::pin_mismatch, "the server presented no certificate", true};
  }
  for (const X509Ptr& pinned : pinned_certs_) {
    if (X509_cmp(leaf, pinned.get()) == 0) return std::nullopt;
  }
  // Without a verified chain only the leaf is proven (its key signed the handshake); with
  // one, a pin may name any certificate of it, as HPKP allows (a CA's key, say).
  std::vector<X509*> candidates{leaf};
  if (!ca_file_.empty()) {
    if (STACK_OF(X509)* chain = SSL_get0_verified_chain(ssl)) {
      for (int i = 0; i < sk_X509_num(chain); ++i) candidates.push_back(sk_X509_value(chain, i));
    }
  }
  for (X509* cert : candidates) {
    const auto digest = spki_sha256(cert);
    if (digest && std::find(pins_.begin(), pins_.end(), *digest) != pins_.end()) {
      return std::nullopt;
    }
  }
  std::string expected;
  if (!cert_file_.empty()) expected = "the certificate in " + cert_file_;
  if (!pins_.empty()) {
    if (!expected.empty()) expected += " or ";
    expected += std::to_string(pins_.size()) + (pins_.size() == 1 ? " pin" : " pins");
  }
  return Error{ErrorCode::pin_mismatch,
               "the server's certificate (" + pin_of(leaf) + ") does not match " + expected, true};
}

}  // namespace iotsocket::client
