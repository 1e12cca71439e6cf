// The public face of the client: option checks, then everything goes to Client::Impl.
#include "iotsocket/client.hpp"

#include "client/client_impl.hpp"
#include "protocol/encoder.hpp"

namespace iotsocket::client {
namespace {

std::optional<Error> bad_option(std::string message) {
  return Error{ErrorCode::bad_options, std::move(message), true};
}

std::optional<Error> option_error(const Options& o) {
  if (o.host.empty()) return bad_option("host: empty (give a name or an address)");
  if (o.port == 0) return bad_option("port: 0 is not a port");
  if (!protocol::parse_device_id(o.device_id)) {
    return bad_option("device_id: '" + o.device_id + "' is not a device ID (1 to 10 digits)");
  }
  if (!protocol::is_sendable_key(o.key)) {
    return bad_option("key: expected 1 to 512 printable ASCII characters without ':' or spaces");
  }
  if (o.connect_timeout <= Duration::zero()) return bad_option("connect_timeout: must be positive");
  if (o.login_grace < Duration::zero()) return bad_option("login_grace: must not be negative");
  if (o.time_tolerance <= Duration::zero()) return bad_option("time_tolerance: must be positive");
  if (o.keepalive < Duration::zero()) return bad_option("keepalive: must not be negative (0: off)");
  if (protocol::payload_error(o.keepalive_payload)) {
    return bad_option("keepalive_payload: must be a valid payload (5 to 62534 bytes)");
  }
  if (o.max_connection_age < Duration::zero()) {
    return bad_option("max_connection_age: must not be negative (0: never renew)");
  }
  if (o.backoff_initial <= Duration::zero()) return bad_option("backoff_initial: must be positive");
  if (o.backoff_max < o.backoff_initial) {
    return bad_option("backoff_max: must be at least backoff_initial");
  }
  if (o.queue_limit == 0) return bad_option("queue_limit: must be at least 1");
  return std::nullopt;
}

}  // namespace

std::string_view name(ErrorCode code) noexcept {
  switch (code) {
    case ErrorCode::bad_options: return "bad_options";
    case ErrorCode::bad_payload: return "bad_payload";
    case ErrorCode::queue_full: return "queue_full";
    case ErrorCode::server_gone: return "server_gone";
    case ErrorCode::tls_failed: return "tls_failed";
    case ErrorCode::certificate_rejected: return "certificate_rejected";
    case ErrorCode::pin_mismatch: return "pin_mismatch";
    case ErrorCode::auth_refused: return "auth_refused";
    case ErrorCode::clock_skew: return "clock_skew";
    case ErrorCode::replayed_push: return "replayed_push";
    case ErrorCode::bad_server_frame: return "bad_server_frame";
    case ErrorCode::closed: return "closed";
  }
  return "unknown";
}

std::unique_ptr<Client> Client::create(Options options, Error* error) {
  auto fail = [error](Error e) -> std::unique_ptr<Client> {
    if (error != nullptr) *error = std::move(e);
    return nullptr;
  };
  if (auto problem = option_error(options)) return fail(std::move(*problem));
  auto trust = Trust::load(options);
  if (!trust) return fail(trust.error());
  auto ctx = trust->make_context();
  if (!ctx) return fail(ctx.error());
  const protocol::DeviceId device = *protocol::parse_device_id(options.device_id);
  return std::unique_ptr<Client>(new Client(
      std::make_unique<Impl>(std::move(options), std::move(*trust), std::move(*ctx), device)));
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

std::optional<Error> Client::connect() { return impl_->connect(); }
std::optional<Error> Client::send(std::string_view payload) { return impl_->send(payload); }
Event Client::poll(Duration timeout) { return impl_->poll(timeout); }
void Client::close(Duration timeout) { impl_->close(timeout); }
int Client::fd() const noexcept { return impl_->fd(); }
Duration Client::wait_hint() const noexcept { return impl_->wait_hint(); }
bool Client::online() const noexcept { return impl_->online(); }
std::size_t Client::queued() const noexcept { return impl_->queued(); }
Stats Client::stats() const noexcept { return impl_->stats(); }
std::string Client::server_pin() const { return impl_->server_pin(); }

std::optional<Error> Client::run_for(Duration duration) {
  const auto deadline = std::chrono::steady_clock::now() + duration;
  for (;;) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return std::nullopt;
    Event event = impl_->poll(std::chrono::duration_cast<Duration>(deadline - now));
    if (event.push) {
      if (on_push) on_push(*event.push);
    } else if (event.error) {
      if (event.error->fatal) return event.error;
      if (on_error) on_error(*event.error);  // else: already in the log
    }
  }
}

}  // namespace iotsocket::client
