#include "master/metrics_server.hpp"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "master/listeners.hpp"
#include "master/metrics_http.hpp"

namespace iotsocket::master {
namespace {

constexpr int kMaxEvents = 32;
constexpr std::size_t kReadChunk = 4096;
// Out of descriptors, the listener stays readable: it is left alone this long instead of
// turning the master's loop into a spin.
constexpr auto kPauseOnFdShortage = std::chrono::seconds(1);

bool watch(int epoll, int fd, std::uint32_t events, int op) noexcept {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  return ::epoll_ctl(epoll, op, fd, &ev) == 0;
}

}  // namespace

Expected<MetricsServer, std::string> MetricsServer::open(const config::ListenAddress& at,
                                                         Render render) {
  if (at.address == "0.0.0.0" || at.address == "::") {
    spdlog::warn("metrics.listen {} takes every address, and the endpoint has no "
                 "authentication: a loopback or private address is safer", at.address);
  }
  auto bound = bind_listeners({at});
  if (!bound) return Unexpected{bound.error()};
  Listener& listener = bound->front();
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll || !watch(epoll.get(), listener.fd.get(), EPOLLIN, EPOLL_CTL_ADD)) {
    return Unexpected{std::string("epoll for the metrics endpoint failed: ") + std::strerror(errno)};
  }
  return MetricsServer(std::move(listener.fd), std::move(epoll), listener.name, std::move(render));
}

MetricsServer::MetricsServer(Fd listener, Fd epoll, std::string name, Render render)
    : listener_(std::move(listener)), epoll_(std::move(epoll)), name_(std::move(name)),
      render_(std::move(render)) {}

void MetricsServer::on_ready(Clock::time_point now) noexcept {
  epoll_event events[kMaxEvents];
  const int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, 0);
  for (int i = 0; i < n; ++i) {
    const int fd = events[i].data.fd;
    if (fd == listener_.get()) {
      accept_all(now);
      continue;
    }
    Scrape* s = find(fd);
    if (s == nullptr) continue;
    const bool going = s->out.empty() ? read_request(*s) : write_response(*s);
    if (!going) drop(static_cast<std::size_t>(s - scrapes_.data()));
  }
}

void MetricsServer::expire(Clock::time_point now) noexcept {
  if (paused_until_ && now >= *paused_until_ &&
      watch(epoll_.get(), listener_.get(), EPOLLIN, EPOLL_CTL_ADD)) {
    paused_until_.reset();
  }
  for (std::size_t i = scrapes_.size(); i-- > 0;) {
    if (now >= scrapes_[i].deadline) drop(i);
  }
}

void MetricsServer::accept_all(Clock::time_point now) noexcept {
  for (;;) {
    Fd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd) {
      if (errno == EMFILE || errno == ENFILE) {
        spdlog::warn("metrics: accept4() on {} failed: {}; scrapes wait 1 s", name_,
                     std::strerror(errno));
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listener_.get(), nullptr);
        paused_until_ = now + kPauseOnFdShortage;
      } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
        spdlog::warn("metrics: accept4() on {} failed: {}", name_, std::strerror(errno));
      }
      return;
    }
    // Over the cap the connection is closed at once: a scraper retries, the master stays small.
    if (scrapes_.size() >= kMaxScrapes) continue;
    if (!watch(epoll_.get(), fd.get(), EPOLLIN, EPOLL_CTL_ADD)) continue;
    scrapes_.push_back(Scrape{.fd = std::move(fd), .deadline = now + kScrapeTimeout});
  }
}

bool MetricsServer::read_request(Scrape& s) noexcept {
  char buf[kReadChunk];
  for (;;) {
    const ssize_t got = ::recv(s.fd.get(), buf, sizeof buf, 0);
    if (got == 0) return false;  // the scraper left before asking
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      return false;
    }
    s.in.append(buf, static_cast<std::size_t>(got));
    const metrics::Request request = metrics::classify(s.in);
    if (request == metrics::Request::incomplete) continue;
    s.out = metrics::response(request, request == metrics::Request::metrics ? render_() : "");
    s.in.clear();
    if (!watch(epoll_.get(), s.fd.get(), EPOLLOUT, EPOLL_CTL_MOD)) return false;
    return write_response(s);
  }
}

bool MetricsServer::write_response(Scrape& s) noexcept {
  while (s.written < s.out.size()) {
    const ssize_t sent =
        ::send(s.fd.get(), s.out.data() + s.written, s.out.size() - s.written, MSG_NOSIGNAL);
    if (sent < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK;
    }
    s.written += static_cast<std::size_t>(sent);
  }
  ::shutdown(s.fd.get(), SHUT_WR);
  return false;
}

void MetricsServer::drop(std::size_t index) noexcept {
  // close() takes the socket out of the epoll set.
  scrapes_.erase(scrapes_.begin() + static_cast<std::ptrdiff_t>(index));
}

MetricsServer::Scrape* MetricsServer::find(int fd) noexcept {
  for (auto& s : scrapes_) {
    if (s.fd.get() == fd) return &s;
  }
  return nullptr;
}

}  // namespace iotsocket::master
