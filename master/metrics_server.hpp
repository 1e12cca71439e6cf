// The Prometheus endpoint (metrics.listen): a tiny non-blocking HTTP/1.x responder that
// lives in the master's loop. GET /metrics answers the text its `Render` gives
// (metrics::Families::render); any other path 404. It can never stall the master: every socket is non-blocking, a scrape is closed
// after kScrapeTimeout or once its head passes kMaxRequestHead, and at most
// kMaxScrapes are served at once (more are closed at accept).
//
// It has an epoll set of its own (its listener and its scrapes); the master watches that
// one descriptor and calls on_ready() when it is readable. Move-only owner of the listener,
// the epoll set and the scrape sockets.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.hpp"
#include "config/config.hpp"
#include "common/expected.hpp"

namespace iotsocket::master {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;
  using Clock = std::chrono::steady_clock;

  static constexpr std::size_t kMaxScrapes = 16;
  static constexpr auto kScrapeTimeout = std::chrono::seconds(5);

  // Binds and listens. Errors name the address and the syscall.
  static Expected<MetricsServer, std::string> open(const config::ListenAddress& at, Render render);

  int fd() const noexcept { return epoll_.get(); }
  const std::string& name() const noexcept { return name_; }  // "127.0.0.1:9100", real port

  // Accepts, reads and writes whatever is ready; never waits.
  void on_ready(Clock::time_point now) noexcept;
  // Closes the scrapes that took longer than kScrapeTimeout; accepts again after a pause
  // for want of descriptors. The master calls it at least once a second.
  void expire(Clock::time_point now) noexcept;

 private:
  struct Scrape {
    Fd fd;
    std::string in;
    std::string out;
    std::size_t written = 0;
    Clock::time_point deadline;
  };

  MetricsServer(Fd listener, Fd epoll, std::string name, Render render);
  void accept_all(Clock::time_point now) noexcept;
  // False when the scrape is finished (answered or broken) and can be closed.
  bool read_request(Scrape& s) noexcept;
  bool write_response(Scrape& s) noexcept;
  void drop(std::size_t index) noexcept;
  Scrape* find(int fd) noexcept;

  Fd listener_;
  Fd epoll_;
  std::string name_;
  Render render_;
  std::vector<Scrape> scrapes_;
  std::optional<Clock::time_point> paused_until_;  // accepting paused (EMFILE) until then
};

}  // namespace iotsocket::master
