// The little HTTP/1.x the metrics endpoint speaks, as pure functions: what a request's
// head asks for, and the bytes of a response. One request per connection; the response
// always says `Connection: close`.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace iotsocket::master::metrics {

// A request head bigger than this is refused (400) without reading more.
inline constexpr std::size_t kMaxRequestHead = 8192;

enum class Request {
  incomplete,  // no blank line yet: read on
  metrics,     // GET /metrics (a query string is ignored)
  not_found,   // GET of another path
  bad_method,  // not GET
  bad_request, // no "METHOD TARGET HTTP/1.x" line, or a head past kMaxRequestHead
};

// Looks at what arrived so far.
Request classify(std::string_view received);

// "HTTP/1.1 <status> <reason>", Content-Type, Content-Length, Connection: close, the body.
std::string response(Request request, std::string_view metrics_body);

}  // namespace iotsocket::master::metrics
