// OpenSSL owners and the server's TLS settings.
//
// SslCtx owns an SSL_CTX (one per loaded certificate; workers inherit the master's across
// fork(), so session tickets made by one worker are accepted by another). Ssl owns one
// connection's SSL. Both are move-only and free their object when destroyed.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace iotsocket {

struct SslCtxFree {
  void operator()(SSL_CTX* ctx) const noexcept { SSL_CTX_free(ctx); }
};
struct SslFree {
  void operator()(SSL* ssl) const noexcept { SSL_free(ssl); }
};
using SslCtx = std::unique_ptr<SSL_CTX, SslCtxFree>;
using Ssl = std::unique_ptr<SSL, SslFree>;

// TLS 1.2 and 1.3 only, Mozilla's "intermediate" cipher list, the certificate chain and
// key from PEM files (ECDSA or RSA). Errors name the file and OpenSSL's reason.
Expected<SslCtx, std::string> make_server_context(const std::string& cert_file,
                                                  const std::string& key_file);

// What an operator should hear about a loaded certificate and key before devices do:
// the certificate has expired, is not valid yet, or expires within `warn_days`; the key
// file is readable by every user. One line each, naming the file; empty when all is well.
std::vector<std::string> certificate_warnings(SSL_CTX* ctx, const std::string& cert_file,
                                              const std::string& key_file, int warn_days = 30);

// Gives `to` the session-ticket keys of `from`, so that a ticket issued under one context
// (one worker, or before a reload) resumes under the other. False if OpenSSL refused.
bool copy_ticket_keys(SSL_CTX* from, SSL_CTX* to);

// The OpenSSL error queue as one line ("reason; reason"), emptied. "" when it is empty.
std::string drain_tls_errors();

}  // namespace iotsocket
