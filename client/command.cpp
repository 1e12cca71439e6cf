#include "client/command.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <string_view>
#include <utility>

#include "client/link.hpp"
#include "client/trust.hpp"
#include "protocol/line_reader.hpp"
#include "protocol/record.hpp"

namespace iotsocket::client {
namespace {

using Clock = std::chrono::steady_clock;

volatile sig_atomic_t g_stop = 0;
extern "C" void on_stop_signal(int) { g_stop = 1; }

// SIGINT/SIGTERM end the command cleanly (queue written, close_notify sent). They stay
// blocked except inside the loop's ppoll(), so one that arrives between the check of
// g_stop and the wait still ends the wait at once. Returns the mask for ppoll().
sigset_t install_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a closed stdout is an error from write(), not a death
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigset_t unblocked;
  ::sigprocmask(SIG_BLOCK, &stop_signals, &unblocked);
  return unblocked;
}

std::function<void(LogLevel, std::string_view)> stderr_log(int verbosity) {
  const LogLevel least = verbosity < 0   ? LogLevel::error
                         : verbosity == 0 ? LogLevel::warning
                         : verbosity == 1 ? LogLevel::info
                                          : LogLevel::debug;
  return [least](LogLevel level, std::string_view message) {
    if (level < least) return;
    static constexpr const char* kNames[] = {"debug", "info", "warning", "error"};
    std::fprintf(stderr, "iotsocket-client: %s: %.*s\n", kNames[static_cast<int>(level)],
                 static_cast<int>(message.size()), message.data());
  };
}

// The library starts an option's error with the name of its Options field ("ca_file: cannot
// open ..."); the command's user knows the flag instead. main.cpp has already refused the
// combinations (no trust at all, --insecure with a pin), so only such a prefix is left.
std::string in_flag_words(const Error& error) {
  static constexpr std::pair<std::string_view, std::string_view> kFlags[] = {
      {"ca_file", "--ca"},
      {"cert_file", "--cert"},
      {"pins", "--pin"},
      {"device_id", "--id"},
      {"key", "--key"},
      {"host", "--host"},
      {"port", "--port"},
      {"connect_timeout", "--connect-timeout"},
      {"login_grace", "--login-grace"},
      {"time_tolerance", "--time-tolerance"},
      {"keepalive", "--keepalive"},
      {"keepalive_payload", "--keepalive-payload"},
      {"max_connection_age", "--max-age"},
      {"backoff_initial", "--backoff"},
      {"backoff_max", "--backoff-max"},
      {"queue_limit", "--queue"},
  };
  const std::string_view message = error.message;
  const std::size_t colon = message.find(": ");
  if (error.code != ErrorCode::bad_options || colon == std::string_view::npos) return error.message;
  for (const auto& [field, flag] : kFlags) {
    if (message.substr(0, colon) == field) return std::string(flag) + std::string(message.substr(colon));
  }
  return error.message;
}

// --print-pin: the TLS handshake alone (no login), then the server's pin on stdout.
int print_pin(const Options& options) {
  auto trust = Trust::load(options);
  if (!trust) {
    std::fprintf(stderr, "iotsocket-client: %s\n", in_flag_words(trust.error()).c_str());
    return exit_code_for(trust.error());
  }
  auto ctx = trust->make_context();
  if (!ctx) {
    std::fprintf(stderr, "iotsocket-client: %s\n", in_flag_words(ctx.error()).c_str());
    return exit_code_for(ctx.error());
  }
  auto link = Link::open(options, *trust, ctx->get());
  if (!link) {
    std::fprintf(stderr, "iotsocket-client: %s: %s\n", std::string(name(link.error().code)).c_str(),
                 link.error().message.c_str());
    return exit_code_for(link.error());
  }
  std::printf("%s\n", link->server_pin().c_str());
  link->goodbye();
  return kExitOk;
}

// stdin → frames, with --interval pacing and the client's queue as backpressure.
class LineSource {
 public:
  // stdin is read non-blocking; its flags are shared with whoever else holds the pipe or
  // terminal (the shell), so they are restored on the way out.
  explicit LineSource(Duration interval)
      : interval_(interval), stdin_flags_(::fcntl(STDIN_FILENO, F_GETFL)) {
    open_ = stdin_flags_ != -1;
    if (open_) ::fcntl(STDIN_FILENO, F_SETFL, stdin_flags_ | O_NONBLOCK);
  }
  ~LineSource() {
    if (stdin_flags_ != -1) ::fcntl(STDIN_FILENO, F_SETFL, stdin_flags_);
  }
  LineSource(const LineSource&) = delete;
  LineSource& operator=(const LineSource&) = delete;

  // stdin is worth watching: open, and room for more lines.
  bool wants_input(const Client& client, std::size_t queue_limit) const {
    return open_ && lines_.empty() && client.queued() < queue_limit;
  }
  bool exhausted() const { return !open_ && lines_.empty(); }
  std::size_t refused() const { return refused_; }

  void read_available() {
    char buffer[16 * 1024];
    for (;;) {
      const ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
      if (n > 0) {
        reader_.feed(std::string_view(buffer, static_cast<std::size_t>(n)));
        take_lines();
        if (!lines_.empty()) return;  // enough for now: the rest waits in the pipe
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EAGAIN) return;
      if (reader_.pending() > 0) {  // a last line without '\n'
        reader_.feed("\n");
        take_lines();
      }
      open_ = false;
      return;
    }
  }

  // Sends the lines that are due; returns how long until the next one is.
  Duration send_due(Client& client) {
    const auto now = Clock::now();
    while (!lines_.empty()) {
      if (now < next_send_at_) return std::chrono::duration_cast<Duration>(next_send_at_ - now);
      if (auto error = client.send(lines_.front())) {
        if (error->code == ErrorCode::queue_full) return Duration(100);  // retry later
        if (error->fatal) return Duration::zero();
        ++refused_;
        std::fprintf(stderr, "iotsocket-client: error: stdin line %llu refused: %s\n",
                     static_cast<unsigned long long>(line_number_ + 1), error->message.c_str());
      }
      ++line_number_;
      lines_.pop_front();
      next_send_at_ = now + interval_;
    }
    return Duration::max();
  }

 private:
  void take_lines() {
    for (auto next = reader_.next(); next.status != protocol::LineStatus::need_more;
         next = reader_.next()) {
      if (next.status == protocol::LineStatus::too_long) {
        ++refused_;
        std::fprintf(stderr, "iotsocket-client: error: a stdin line longer than any payload was skipped\n");
        continue;
      }
      lines_.emplace_back(next.text);
    }
  }

  Duration interval_;
  protocol::LineReader reader_;
  std::deque<std::string> lines_;
  Clock::time_point next_send_at_{};
  std::uint64_t line_number_ = 0;
  std::size_t refused_ = 0;
  int stdin_flags_;
  bool open_ = true;
};

bool print_push(const Push& push) {
  std::string line;
  protocol::append_escaped(line, push.payload);
  line.push_back('\n');
  if (std::fwrite(line.data(), 1, line.size(), stdout) != line.size() || std::fflush(stdout) != 0) {
    std::fprintf(stderr, "iotsocket-client: error: cannot write to stdout\n");
    return false;
  }
  return true;
}

}  // namespace

int exit_code_for(const Error& error) noexcept {
  switch (error.code) {
    case ErrorCode::bad_options:
    case ErrorCode::bad_payload:
      return kExitUsage;
    case ErrorCode::auth_refused:
      return kExitAuthRefused;
    case ErrorCode::pin_mismatch:
    case ErrorCode::certificate_rejected:
      return kExitUntrusted;
    case ErrorCode::closed:
      return kExitOk;
    default:
      return kExitServerGone;
  }
}

int run(CommandOptions options) {
  const sigset_t wait_mask = install_signal_handlers();
  options.client.log = stderr_log(options.verbosity);
  if (options.print_pin) return print_pin(options.client);
  if (options.once) options.client.reconnect = false;

  Error error;
  std::unique_ptr<Client> client = Client::create(options.client, &error);
  if (!client) {
    std::fprintf(stderr, "iotsocket-client: %s\n", in_flag_words(error).c_str());
    return exit_code_for(error);
  }
  LineSource stdin_lines(options.interval);
  // Lines already piped in go first, so that the first of them is the login frame rather
  // than a keepalive (a moment's wait; a device with nothing to say logs in after it).
  pollfd first{STDIN_FILENO, POLLIN, 0};
  if (::poll(&first, 1, 100) > 0) stdin_lines.read_available();
  std::uint64_t received = 0;
  // Done: --count pushes arrived (if asked), and with --once, stdin has ended and every
  // line was written after an accepted login (a refused one puts its frame back).
  auto done = [&] {
    const bool count_reached = !options.count || received >= *options.count;
    const bool stdin_sent = stdin_lines.exhausted() && client->queued() == 0 && client->online();
    if (options.once) return count_reached && stdin_sent;
    return options.count.has_value() && count_reached;
  };
  while (g_stop == 0) {
    const Duration until_line = stdin_lines.send_due(*client);
    // Drain what the client has for us, doing its due work on the way.
    for (;;) {
      Event event = client->poll(Duration::zero());
      if (event.push) {
        if (!print_push(*event.push)) return kExitServerGone;
        ++received;
        continue;
      }
      if (event.error && event.error->fatal) return exit_code_for(*event.error);
      if (!event.error) break;  // non-fatal errors are in the log already
    }
    if (done()) {
      client->close();
      return options.once && stdin_lines.refused() > 0 ? kExitLinesRefused : kExitOk;
    }
    // Sleep until stdin, the server, a timer or a signal has something.
    pollfd fds[2];
    nfds_t n = 0;
    const bool watch_stdin = stdin_lines.wants_input(*client, options.client.queue_limit);
    if (watch_stdin) fds[n++] = {STDIN_FILENO, POLLIN, 0};
    if (client->fd() >= 0) fds[n++] = {client->fd(), POLLIN, 0};
    const Duration wait = std::min({client->wait_hint(), until_line, Duration(60'000)});
    const timespec timeout{static_cast<time_t>(wait.count() / 1000),
                           static_cast<long>(wait.count() % 1000) * 1'000'000};
    if (::ppoll(fds, n, &timeout, &wait_mask) > 0 && watch_stdin && fds[0].revents != 0) {
      stdin_lines.read_available();
    }
  }
  client->close();
  return kExitOk;
}

}  // namespace iotsocket::client
