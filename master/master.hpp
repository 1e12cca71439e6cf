// The master process: accepts connections and hands each to the least-loaded worker,
// supervises the workers (respawns the dead ones), and acts on signals. It never reads a
// byte from a device (no TLS, no IOT/1.1), so a flood of bad input cannot reach it.
#pragma once

#include <openssl/ssl.h>

#include <vector>

#include "config/config.hpp"
#include "master/listeners.hpp"

namespace iotsocket::master {

struct MasterSetup {
  const config::Config* config = nullptr;
  SSL_CTX* tls = nullptr;  // null when tls.enabled is false
  std::vector<Listener> listeners;
};

// Forks the workers and runs the accept/supervision loop until SIGTERM or SIGINT.
// Returns the process exit code.
int run(MasterSetup setup);

}  // namespace iotsocket::master
