// A worker process: receives accepted sockets from the master, runs TLS and IOT/1.1 on them
// in one epoll loop, and writes every accepted frame to the inbound sink.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>

#include "common/fd.hpp"
#include "config/config.hpp"
#include "protocol/time.hpp"
#include "shm/device_table.hpp"

namespace iotsocket::worker {

struct WorkerSetup {
  const config::Config* config = nullptr;
  SSL_CTX* tls = nullptr;  // inherited from the master; null when tls.enabled is false
  shm::DeviceTable* table = nullptr;  // the master's mapping, inherited across fork()
  Fd channel;              // this worker's end of its channel to the master
  unsigned index = 0;      // 0 .. workers-1, for logs
  // Logins refuse TIMEs at or below this: after a run that did not stop cleanly, frames it
  // accepted may not have reached the registry's replay marks.
  protocol::Time replay_floor{};
  std::uint32_t generation = 0;
};

// Runs until the master says shutdown or goes away; returns the process exit code.
int run(WorkerSetup setup) noexcept;

}  // namespace iotsocket::worker
