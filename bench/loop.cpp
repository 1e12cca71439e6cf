#include "bench/loop.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace iotsocket::bench {

std::atomic<bool> g_stop{false};

namespace {

constexpr std::uint64_t kCounterTag = ~std::uint64_t{0};
// The longest sleep: how soon a loop sees g_stop and the other loops' progress.
constexpr auto kMaxSleep = std::chrono::milliseconds(100);

int timeout_ms(Clock::time_point now, std::optional<Clock::time_point> wake,
               Clock::time_point deadline) {
  Clock::time_point until = std::min(deadline, now + kMaxSleep);
  if (wake) until = std::min(until, *wake);
  if (until <= now) return 0;
  // Round up: waking a little late beats spinning on a zero timeout.
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(until - now).count());
}

// Tells the other loops (and the user) once each milestone is reached.
class Milestones {
 public:
  explicit Milestones(Progress& p) : progress_(p) {}

  void update(Fleet& fleet, Clock::time_point now, std::uint64_t frames_sent) {
    progress_.frames_sent.fetch_add(frames_sent - reported_frames_, std::memory_order_relaxed);
    reported_frames_ = frames_sent;
    if (progress_.push.enabled) update_push(fleet);
    if (!settled_ && fleet.settled()) {
      settled_ = true;
      const std::uint64_t up = progress_.up.fetch_add(fleet.up_now()) + fleet.up_now();
      if (progress_.settled.fetch_add(1) + 1 == progress_.loops) {
        // The moment to measure the server's memory in hold mode.
        spdlog::info("ramp done: {} of {} connections up{}", up, progress_.devices,
                     progress_.hold_s > 0 ? fmt::format("; holding them for {} s", progress_.hold_s) : "");
      }
    }
    if (!sending_done_ && fleet.sending_done(now)) {
      sending_done_ = true;
      progress_.sending_done.fetch_add(1);
    }
  }

 private:
  // Publishes the logged-in devices once (the writer's targets), reports the arrivals, and
  // ends the push phase when every push written has arrived.
  void update_push(Fleet& fleet) {
    PushProgress& p = progress_.push;
    if (!published_ && fleet.logins_done()) {
      published_ = true;
      const auto ids = fleet.logged_in_ids();
      std::lock_guard lock(p.mutex);
      p.targets.insert(p.targets.end(), ids.begin(), ids.end());
      ++p.published;
    }
    const std::uint64_t arrivals = fleet.push_arrivals();
    p.arrivals.fetch_add(arrivals - reported_arrivals_, std::memory_order_relaxed);
    reported_arrivals_ = arrivals;
    // written is read after writer_done: it is final then.
    if (!push_over_ && p.writer_done.load() && p.arrivals.load() >= p.written.load()) {
      push_over_ = true;
      fleet.end_push_phase();
    }
  }

  Progress& progress_;
  std::uint64_t reported_frames_ = 0;
  std::uint64_t reported_arrivals_ = 0;
  bool published_ = false;
  bool push_over_ = false;
  bool settled_ = false;
  bool sending_done_ = false;
};

bool counter_done(const InboundCounter* counter, const Progress& progress) {
  if (counter == nullptr) return true;
  return progress.sending_done.load() == progress.loops &&
         counter->stats().records >= progress.frames_sent.load();
}

}  // namespace

LoopResult run_loop(const FleetSetup& setup, InboundCounter* counter, Progress& progress,
                    Clock::time_point deadline) {
  Epoll epoll;
  LoopResult result;
  if (!epoll.valid()) {
    spdlog::error("epoll_create1() failed: {}", std::strerror(errno));
    result.ended = "error";
    return result;
  }
  if (counter != nullptr && epoll.add(counter->fd(), EPOLLIN, kCounterTag) != 0) {
    spdlog::error("epoll_ctl() on the inbound FIFO failed: {}", std::strerror(errno));
  }
  Fleet fleet(setup, epoll);
  Milestones milestones(progress);
  std::array<epoll_event, 1024> events;
  for (;;) {
    auto now = Clock::now();
    fleet.tick(now);
    milestones.update(fleet, now, fleet.frames_sent());
    if (counter != nullptr) progress.push.inbound_records.store(counter->stats().records);
    if (g_stop.load()) {
      result.ended = "signal";
      break;
    }
    if (now >= deadline) {
      result.ended = "deadline";
      break;
    }
    if (fleet.finished(now) && counter_done(counter, progress)) {
      result.ended = "done";
      break;
    }
    const int n = epoll.wait(events.data(), static_cast<int>(events.size()),
                             timeout_ms(now, fleet.next_wakeup(now), deadline));
    if (n < 0) {
      spdlog::error("epoll_wait() failed: {}", std::strerror(errno));
      result.ended = "error";
      break;
    }
    now = Clock::now();
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = events[static_cast<std::size_t>(i)];
      if (ev.data.u64 == kCounterTag) {
        counter->on_readable(now);
      } else {
        fleet.on_event(ev.data.u64, ev.events, now);
      }
    }
  }
  progress.ended.fetch_add(1);
  result.fleet = fleet.close_all();
  if (counter != nullptr) result.inbound = counter->stats();
  return result;
}

}  // namespace iotsocket::bench
