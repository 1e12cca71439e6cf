// PushWriter: pushes from the master into a connection's write queue as IOT/1.1 frames,
// and from the queue onto the wire. A push leaves a worker one of three ways: written
// whole (then SettleReports reports its number), dropped as unframeable (reported too), or
// handed back to the master when its connection closes first (push_returned, in order, one
// batch). A device that does not read is closed once its unsent bytes pass
// push.write_queue.
//
// It never closes a connection itself: each call returns "" when the connection goes on,
// else the reason it must close, and the worker closes it (and calls hand_back()).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/channel.hpp"
#include "common/event_sink.hpp"
#include "config/config.hpp"
#include "protocol/session.hpp"
#include "shm/worker_counters.hpp"
#include "worker/connection.hpp"

namespace iotsocket::worker {

class ConnectionTable;
class MasterLink;
class SettleReports;

class PushWriter {
 public:
  static constexpr std::size_t kWriteChunk = 16 * 1024;  // one TLS record

  // References into the worker, which outlives this (the config and limits change in
  // place on a reload).
  PushWriter(ConnectionTable& connections, SettleReports& settled, MasterLink& master,
             EventSink& events, shm::WorkerCounters& counters, const config::Push& config,
             const protocol::SessionLimits& limits) noexcept
      : connections_(connections), settled_(settled), master_(master), events_(events),
        counters_(counters), config_(config), limits_(limits) {}

  // Frames the push behind what the connection has not written yet and writes what it can.
  std::string_view queue(Connection& c, std::string payload, const channel::Message& m) noexcept;
  // Writes what waits (on EPOLLOUT, or before reading).
  std::string_view write(Connection& c) noexcept;
  // A closing connection's pushes not written whole go back to the master, in order, as
  // one batch. A push cut in the middle is sent again: at least once, not lost.
  void hand_back(Connection& c) noexcept;
  // A push whose connection closed while it was on its way: straight back.
  void bounce(const channel::Message& m, std::string payload) noexcept;

 private:
  void settle_written(Connection& c, WriteQueue& q) noexcept;

  ConnectionTable& connections_;
  SettleReports& settled_;
  MasterLink& master_;
  EventSink& events_;
  shm::WorkerCounters& counters_;
  const config::Push& config_;
  const protocol::SessionLimits& limits_;
};

}  // namespace iotsocket::worker
