#include "master/metrics_http.hpp"

#include <fmt/format.h>

namespace iotsocket::master::metrics {
namespace {

constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

// The end of the head: a blank line, CRLF or bare LF (clients like curl send CRLF; a
// hand-typed request with netcat may not).
std::size_t head_end(std::string_view received) {
  const std::size_t crlf = received.find("\r\n\r\n");
  const std::size_t lf = received.find("\n\n");
  return std::min(crlf, lf);
}

}  // namespace

Request classify(std::string_view received) {
  const std::size_t end = head_end(received);
  if (end == std::string_view::npos) {
    return received.size() >= kMaxRequestHead ? Request::bad_request : Request::incomplete;
  }
  if (end >= kMaxRequestHead) return Request::bad_request;
  std::string_view line = received.substr(0, received.find('\n'));
  if (line.ends_with('\r')) line.remove_suffix(1);
  const std::size_t first = line.find(' ');
  const std::size_t second = line.find(' ', first == std::string_view::npos ? first : first + 1);
  if (first == std::string_view::npos || second == std::string_view::npos ||
      !line.substr(second + 1).starts_with("HTTP/1.")) {
    return Request::bad_request;
  }
  if (line.substr(0, first) != "GET") return Request::bad_method;
  std::string_view target = line.substr(first + 1, second - first - 1);
  target = target.substr(0, target.find('?'));
  return target == "/metrics" ? Request::metrics : Request::not_found;
}

std::string response(Request request, std::string_view metrics_body) {
  struct Reply {
    std::string_view status;
    std::string_view type;
    std::string_view body;
  };
  const Reply reply = [&]() -> Reply {
    switch (request) {
      case Request::metrics:
        return {"200 OK", kMetricsType, metrics_body};
      case Request::not_found:
        return {"404 Not Found", "text/plain", "not found; the metrics are at /metrics\n"};
      case Request::bad_method:
        return {"405 Method Not Allowed", "text/plain", "only GET\n"};
      case Request::bad_request:
      case Request::incomplete:
        break;
    }
    return {"400 Bad Request", "text/plain", "bad request\n"};
  }();
  std::string out = fmt::format(
      "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
      reply.status, reply.type, reply.body.size(),
      request == Request::bad_method ? "Allow: GET\r\n" : "");
  out += reply.body;
  return out;
}

}  // namespace iotsocket::master::metrics
