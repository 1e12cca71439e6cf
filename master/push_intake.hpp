// Reading the push source into PushDelivery, with back-pressure: while more than
// kMaxWaitingBytes wait in the workers' channels (devices that read slowly, a worker that
// is busy), the source is not read, so that the backend's writes block instead of anything
// being dropped; reading resumes when they are down to half.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "master/push_delivery.hpp"
#include "master/push_source.hpp"
#include "master/worker_pool.hpp"

namespace iotsocket::master {

class PushIntake {
 public:
  // Bytes read per loop pass: the loop stays fair to accept and the workers.
  static constexpr std::size_t kReadBudget = 1 << 20;
  static constexpr std::size_t kMaxWaitingBytes = 32 << 20;

  // Registers the source with `epoll` under `tag` and starts reading.
  PushIntake(std::unique_ptr<PushSource> source, int epoll, std::uint64_t tag,
             PushDelivery& delivery, const WorkerPool& pool);

  // The source is readable.
  void on_readable();
  // Each loop pass: reads again once the channels have room.
  void resume_when_drained();

 private:
  void set_reading(bool on);

  std::unique_ptr<PushSource> source_;
  int epoll_;
  std::uint64_t tag_;
  PushDelivery& delivery_;
  const WorkerPool& pool_;
  bool reading_ = false;
};

}  // namespace iotsocket::master
