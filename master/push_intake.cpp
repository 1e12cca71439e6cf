#include "master/push_intake.hpp"

#include <sys/epoll.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

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
      [](std::string_view reason, std::string_view line) {
        spdlog::warn("bad push record skipped: reason={} line='{}'", reason, line);
      });
  if (!ok) spdlog::error("reading {} failed: {}", source_->name(), std::strerror(errno));
  if (pool_.waiting_bytes() > kMaxWaitingBytes) set_reading(false);
}

void PushIntake::resume_when_drained() {
  if (!reading_ && pool_.waiting_bytes() <= kMaxWaitingBytes / 2) set_reading(true);
}

void PushIntake::set_reading(bool on) {
  if (reading_ == on || !source_) return;
  epoll_event ev{};
  ev.events = on ? std::uint32_t{EPOLLIN} : 0u;
  ev.data.u64 = tag_;
  if (::epoll_ctl(epoll_, EPOLL_CTL_MOD, source_->fd(), &ev) == 0) reading_ = on;
}

}  // namespace iotsocket::master
