#include "master/push_intake.hpp"

#include <sys/epoll.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "common/log_text.hpp"

namespace iotsocket::master {

PushIntake::PushIntake(std::unique_ptr<PushSource> source, int epoll, std::uint64_t tag,
                       PushDelivery& delivery, const WorkerPool& pool)
    : source_(std::move(source)), epoll_(epoll), tag_(tag), delivery_(delivery), pool_(pool) {
  epoll_event ev{};
  ev.data.u64 = tag_;
  ::epoll_ctl(epoll_, EPOLL_CTL_ADD, source_->fd(), &ev);
  set_reading(true);
}

void PushIntake::on_readable() {
  const bool ok = source_->read_available(
      kReadBudget,
      [this](protocol::Record record) { delivery_.route(record.device, std::move(record.payload)); },
      [this](std::string_view reason, std::string_view line) { log_bad_record(reason, line); });
  if (!ok) spdlog::error("reading {} failed: {}", source_->name(), std::strerror(errno));
  if (pool_.waiting_bytes() > kMaxWaitingBytes) set_reading(false);
}

void PushIntake::resume_when_drained() {
  if (!reading_ && pool_.waiting_bytes() <= kMaxWaitingBytes / 2) set_reading(true);
}

void PushIntake::log_held_back(LimitedWarnings::Clock::time_point now) { bad_records_.log_summary(now); }

void PushIntake::log_held_back_before_exit(LimitedWarnings::Clock::time_point now) {
  bad_records_.log_final_summary(now);
}

// The reason is one of protocol/errors.hpp's fixed names; the line is the backend's bytes.
void PushIntake::log_bad_record(std::string_view reason, std::string_view line) {
  bad_records_.warn(LimitedWarnings::Clock::now(), reason, "bad push record skipped: reason={} line='{}'",
                    reason, printable(line, kBadRecordExcerpt));
}

void PushIntake::set_reading(bool on) {
  if (reading_ == on || !source_) return;
  epoll_event ev{};
  ev.events = on ? std::uint32_t{EPOLLIN} : 0u;
  ev.data.u64 = tag_;
  if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, source_->fd(), &ev) == 0) reading_ = on;
}

}  // namespace iotsocket::master
