#include "worker/back_pressure.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>

namespace iotsocket::worker {
namespace {

constexpr auto kReportEvery = std::chrono::minutes(1);
constexpr auto kQuietToEnd = std::chrono::seconds(1);

double seconds(std::chrono::steady_clock::duration d) noexcept {
  return std::chrono::duration<double>(d).count();
}

}  // namespace

void BackPressure::update(SteadyTime now, std::size_t paused, const Inbound& sink) noexcept {
  shm::WorkerCounters::set(counters_.paused, paused);
  if (paused > 0) {
    if (!on_) start(now, sink);
    last_paused_ = now;
    most_paused_ = std::max(most_paused_, paused);
  }
  if (!on_) return;
  count_time(last_paused_);
  if (paused == 0 && now - last_paused_ >= kQuietToEnd) {
    end();
  } else if (now >= next_report_) {
    next_report_ = now + kReportEvery;
    spdlog::warn("inbound back-pressure still on after {:.0f} s: {}; {} connections not read now",
                 seconds(now - since_), sink.why_full(), paused);
  }
}

void BackPressure::start(SteadyTime now, const Inbound& sink) noexcept {
  on_ = true;
  since_ = counted_until_ = now;
  next_report_ = now + kReportEvery;
  most_paused_ = 0;
  spdlog::warn("inbound back-pressure on: {}; this worker stops reading devices until there "
               "is room (their frames wait in the sockets, none is lost)",
               sink.why_full());
}

void BackPressure::end() noexcept {
  on_ = false;
  spdlog::warn("inbound back-pressure off after {:.1f} s: up to {} connections waited; reading "
               "again",
               seconds(last_paused_ - since_), most_paused_);
}

void BackPressure::count_time(SteadyTime until) noexcept {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(until - counted_until_);
  if (ms.count() <= 0) return;
  shm::WorkerCounters::add(counters_.backpressure_ms, static_cast<std::uint64_t>(ms.count()));
  counted_until_ += ms;
}

}  // namespace iotsocket::worker
