#include "common/log_limiter.hpp"

#include <algorithm>
#include <utility>

namespace iotsocket {

bool LogLimiter::admit(Clock::time_point now, std::string_view reason) {
  roll(now);
  if (!started_) started_ = now;
  if (logged_ < burst_) {
    ++logged_;
    return true;
  }
  ++held_back_;
  last_.assign(reason);
  return false;
}

std::optional<LogLimiter::Summary> LogLimiter::take_summary(Clock::time_point now) {
  roll(now);
  return std::exchange(pending_, std::nullopt);
}

std::optional<LogLimiter::Summary> LogLimiter::take_final_summary(Clock::time_point now) {
  roll(now);
  if (started_) close_interval(std::min(now - *started_, interval_));
  return std::exchange(pending_, std::nullopt);
}

void LogLimiter::roll(Clock::time_point now) {
  if (started_ && now - *started_ >= interval_) close_interval(interval_);
}

void LogLimiter::close_interval(Clock::duration span) {
  if (held_back_ > 0) {
    // A summary not taken yet (nobody asked in between) absorbs this one.
    Summary& s = pending_ ? *pending_ : pending_.emplace();
    s.held_back += held_back_;
    s.last = std::move(last_);
    s.span += span;
  }
  started_.reset();
  logged_ = 0;
  held_back_ = 0;
  last_.clear();
}

std::string summary_line(const LogLimiter::Summary& summary, std::string_view what) {
  const auto seconds = std::max<std::int64_t>(
      1, std::chrono::ceil<std::chrono::seconds>(summary.span).count());
  return "... and " + std::to_string(summary.held_back) + " more " + std::string(what) +
         " in the last " + std::to_string(seconds) + " s (last: " + summary.last + ")";
}

void LimitedWarnings::log_summary(Clock::time_point now) {
  if (auto summary = limiter_.take_summary(now)) spdlog::warn("{}", summary_line(*summary, what_));
}

void LimitedWarnings::log_final_summary(Clock::time_point now) {
  if (auto summary = limiter_.take_final_summary(now)) spdlog::warn("{}", summary_line(*summary, what_));
}

}  // namespace iotsocket
