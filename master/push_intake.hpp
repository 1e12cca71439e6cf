// Reading the push source into PushDelivery, with back-pressure: while more than
// kMaxWaitingBytes wait in the workers' channels (devices that read slowly, a worker that
// is busy), the source is not read, so that the backend's writes block instead of anything
// being dropped; reading resumes when they are down to half. Bad records are logged
// escaped and rate-limited: whoever can write the FIFO can neither forge log lines nor
// flood the log.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "common/log_limiter.hpp"

#include "master/push_delivery.hpp"
#include "master/push_source.hpp"
#include "master/worker_pool.hpp"

namespace iotsocket::master {

class PushIntake {
 public:
  // Bytes read per loop pass: the loop stays fair to accept and the workers.
  static constexpr std::size_t kReadBudget = 1 << 20;
  static constexpr std::size_t kMaxWaitingBytes = 32 << 20;
  // Bad records logged in full per interval; the rest are counted in one summary line.
  static constexpr std::size_t kBadRecordsLogged = 10;
  static constexpr std::chrono::seconds kBadRecordsInterval{60};
  // Bytes of a bad record shown in its log line.
  static constexpr std::size_t kBadRecordExcerpt = 60;

  // Registers the source with `epoll` under `tag` and starts reading.
  PushIntake(std::unique_ptr<PushSource> source, int epoll, std::uint64_t tag,
             PushDelivery& delivery, const WorkerPool& pool);

  // The source is readable.
  void on_readable();
  // Each loop pass: reads again once the channels have room.
  void resume_when_drained();
  // Every second: the count of the bad records held back in an interval that is over.
  void log_held_back(LimitedWarnings::Clock::time_point now);
  // At exit: the count of those held back in the running interval.
  void log_held_back_before_exit(LimitedWarnings::Clock::time_point now);

 private:
  void set_reading(bool on);
  void log_bad_record(std::string_view reason, std::string_view line);

  std::unique_ptr<PushSource> source_;
  int epoll_;
  std::uint64_t tag_;
  PushDelivery& delivery_;
  const WorkerPool& pool_;
  bool reading_ = false;
  LimitedWarnings bad_records_{"bad push records skipped", kBadRecordsLogged, kBadRecordsInterval};
};

}  // namespace iotsocket::master
