// Warnings that outsiders can cause again and again (a backend writing garbage into the
// push FIFO): the first `burst` of an interval are logged in full, the rest are only
// counted, and the count comes out as one summary line once the interval is over. A flood
// costs a few lines a minute, and nothing goes unsaid. One limiter per kind of warning;
// the clock is passed in, so that tests need no sleep.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <spdlog/spdlog.h>

namespace iotsocket {

class LogLimiter {
 public:
  using Clock = std::chrono::steady_clock;

  // What was held back in one interval.
  struct Summary {
    std::uint64_t held_back = 0;  // events counted but not logged in full
    std::string last;             // the reason of the last of them
    Clock::duration span{};       // the interval, or less when it was cut short (at exit)
  };

  LogLimiter(std::size_t burst, Clock::duration interval) : burst_(burst), interval_(interval) {}

  // One event at `now`: true when it may be logged in full, false when it is only counted.
  // `reason` is kept for the summary as given: a fixed name, or text made printable.
  bool admit(Clock::time_point now, std::string_view reason);

  // The summary of an interval that is over, once; nullopt when nothing was held back.
  std::optional<Summary> take_summary(Clock::time_point now);
  // The same for the interval still running (at exit: the count is not lost).
  std::optional<Summary> take_final_summary(Clock::time_point now);

 private:
  // Ends the interval if it is over; what it held back waits in pending_.
  void roll(Clock::time_point now);
  void close_interval(Clock::duration span);

  std::size_t burst_;
  Clock::duration interval_;
  std::optional<Clock::time_point> started_;  // the running interval; none before an event
  std::size_t logged_ = 0;
  std::uint64_t held_back_ = 0;
  std::string last_;
  std::optional<Summary> pending_;
};

// "... and 19990 more bad push records skipped in the last 60 s (last: bad_device_id)"
std::string summary_line(const LogLimiter::Summary& summary, std::string_view what);

// One kind of warning through a LogLimiter, to the log: warn() logs what the limiter
// admits, after the summary of an interval that is over. An interval can end with no event
// after it, so the owner calls log_summary() every second or so, and log_final_summary()
// at exit.
class LimitedWarnings {
 public:
  using Clock = LogLimiter::Clock;

  // `what` names the held-back events in the summary ("bad push records skipped").
  LimitedWarnings(std::string what, std::size_t burst, Clock::duration interval)
      : what_(std::move(what)), limiter_(burst, interval) {}

  template <class... Args>
  void warn(Clock::time_point now, std::string_view reason, spdlog::format_string_t<Args...> format,
            Args&&... args) {
    log_summary(now);
    if (limiter_.admit(now, reason)) spdlog::warn(format, std::forward<Args>(args)...);
  }
  void log_summary(Clock::time_point now);
  void log_final_summary(Clock::time_point now);

 private:
  std::string what_;
  LogLimiter limiter_;
};

}  // namespace iotsocket
