#include "common/tls.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sys/stat.h>

namespace iotsocket {
namespace {

// https://wiki.mozilla.org/Security/Server_Side_TLS, "Intermediate compatibility" (v5.7):
// TLS 1.2 suites below; TLS 1.3 keeps OpenSSL's default suites, which are the same list.
constexpr const char* kIntermediateCiphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";
constexpr const char* kGroups = "X25519:prime256v1:secp384r1";

// OpenSSL reads a directory as a file without PEM data, and "cannot load" (or, for the key,
// our guess of an encrypted key) would send the operator looking for the wrong mistake.
std::optional<std::string> directory_given(const std::string& path, const std::string& what) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  return what + " " + path + " is a directory; expected a PEM file";
}

Unexpected<std::string> failure(const std::string& what) {
  std::string reason = drain_tls_errors();
  return Unexpected{what + (reason.empty() ? "" : ": " + reason)};
}

}  // namespace

std::string drain_tls_errors() {
  std::string out;
  while (unsigned long code = ERR_get_error()) {
    char text[256];
    ERR_error_string_n(code, text, sizeof text);
    if (!out.empty()) out += "; ";
    out += text;
  }
  return out;
}

Expected<SslCtx, std::string> make_server_context(const std::string& cert_file,
                                                  const std::string& key_file) {
  ERR_clear_error();
  SslCtx ctx(SSL_CTX_new(TLS_server_method()));
  if (!ctx) return failure("SSL_CTX_new failed");
  SSL_CTX_set_min_proto_version(ctx.get(), TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(ctx.get(), TLS1_3_VERSION);
  if (SSL_CTX_set_cipher_list(ctx.get(), kIntermediateCiphers) != 1) {
    return failure("cannot set the TLS 1.2 cipher list");
  }
  if (SSL_CTX_set1_groups_list(ctx.get(), kGroups) != 1) return failure("cannot set groups");
  SSL_CTX_set_dh_auto(ctx.get(), 1);
  // Intermediate profile: the client's preference order; no renegotiation (a CPU sink).
  SSL_CTX_set_options(ctx.get(), SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
  // Devices that lose power or drop the link send no close_notify; that is a close, not an
  // attack (the IOT/1.1 delimiter already tells whole frames from cut ones).
  SSL_CTX_set_options(ctx.get(), SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Idle devices are the common case: give the 2 x 16 KiB read/write buffers back while a
  // connection has nothing buffered.
  SSL_CTX_set_mode(ctx.get(), SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  // Resumption by ticket only: a server-side cache would grow with the fleet.
  SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
  for (const auto& [path, what] : {std::pair{&cert_file, "certificate"}, std::pair{&key_file, "private key"}}) {
    if (auto wrong = directory_given(*path, what)) return Unexpected{std::move(*wrong)};
  }
  if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert_file.c_str()) != 1) {
    return failure("cannot load certificate " + cert_file);
  }
  // Read the key first and match it ourselves: SSL_CTX_use_PrivateKey_file() reports a
  // key of another certificate as "cannot load" ("key values mismatch").
  std::unique_ptr<FILE, int (*)(FILE*)> key_in(std::fopen(key_file.c_str(), "r"), &std::fclose);
  if (!key_in) {
    return Unexpected{"cannot load private key " + key_file + ": " + std::strerror(errno)};
  }
  // No passphrase callback prompting on a terminal (it would stall a reload): an
  // encrypted key is refused.
  auto no_passphrase = [](char*, int, int, void*) { return 0; };
  std::unique_ptr<EVP_PKEY, void (*)(EVP_PKEY*)> key(
      PEM_read_PrivateKey(key_in.get(), nullptr, no_passphrase, nullptr), &EVP_PKEY_free);
  if (!key) return failure("cannot load private key " + key_file + " (an encrypted key is not supported)");
  if (X509_check_private_key(SSL_CTX_get0_certificate(ctx.get()), key.get()) != 1) {
    drain_tls_errors();
    return Unexpected{"private key " + key_file + " does not match certificate " + cert_file};
  }
  if (SSL_CTX_use_PrivateKey(ctx.get(), key.get()) != 1) {
    return failure("cannot use private key " + key_file);
  }
  return ctx;
}

std::vector<std::string> certificate_warnings(SSL_CTX* ctx, const std::string& cert_file,
                                              const std::string& key_file, int warn_days) {
  std::vector<std::string> warnings;
  if (X509* cert = SSL_CTX_get0_certificate(ctx)) {
    int days = 0;
    int seconds = 0;
    // From now (nullptr) to the end of validity; negative when it has passed.
    if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notAfter(cert)) == 1) {
      const int rounded = days + (seconds >= 12 * 3600 ? 1 : 0);  // to the nearest day
      if (days < 0 || (days == 0 && seconds < 0)) {
        warnings.push_back("certificate " + cert_file + " has EXPIRED (" +
                           (days == 0 ? std::string("less than a day") : std::to_string(-days) + " days") +
                           " ago): devices that check it (a CA or its dates) refuse the server");
      } else if (rounded < warn_days) {
        warnings.push_back("certificate " + cert_file + " expires in " + std::to_string(rounded) +
                           (rounded == 1 ? " day" : " days") + " (within " +
                           std::to_string(warn_days) + " days): renew it");
      }
    }
    if (ASN1_TIME_diff(&days, &seconds, nullptr, X509_get0_notBefore(cert)) == 1 &&
        (days > 0 || seconds > 0)) {
      warnings.push_back("certificate " + cert_file + " is not valid yet (its notBefore is " +
                         std::to_string(days) + " days ahead): is this clock right?");
    }
  }
  ERR_clear_error();
  struct stat st {};
  if (::stat(key_file.c_str(), &st) == 0 && (st.st_mode & S_IROTH) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    warnings.push_back("key " + key_file + " is readable by every user (mode " + mode +
                       "): chmod 600 it (or 640 with the server's group)");
  }
  return warnings;
}

bool copy_ticket_keys(SSL_CTX* from, SSL_CTX* to) {
  // SSL_CTX_get/set_tlsext_ticket_keys(), without the macros' C casts: 80 bytes of
  // name, HMAC and AES keys.
  unsigned char keys[80];
  return SSL_CTX_ctrl(from, SSL_CTRL_GET_TLSEXT_TICKET_KEYS, sizeof keys, keys) == 1 &&
         SSL_CTX_ctrl(to, SSL_CTRL_SET_TLSEXT_TICKET_KEYS, sizeof keys, keys) == 1;
}

}  // namespace iotsocket
