// The metrics endpoint's pure parts: the families and their text (checked line by line against
// the exposition format's rules) and the request classification of its little HTTP.
#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "master/metrics_http.hpp"
#include "master/metrics_families.hpp"

namespace iotsocket::master::metrics {
namespace {

// name{labels} -> value, and the TYPE of every family, read back from the text.
struct Parsed {
  std::map<std::string, std::string> samples;
  std::map<std::string, std::string> types;
};

Parsed parse(const std::string& text) {
  Parsed p;
  const std::regex help(R"(^# HELP (iotsocket_[a-z_]+) \S.*$)");
  const std::regex type(R"(^# TYPE (iotsocket_[a-z_]+) (counter|gauge)$)");
  const std::regex sample(R"(^(iotsocket_[a-z_]+(\{[a-z_]+="[^"\\\n]*"\})?) (-?[0-9]+)$)");
  std::istringstream lines(text);
  std::string line;
  std::string family;
  std::smatch m;
  while (std::getline(lines, line)) {
    if (std::regex_match(line, m, help)) {
      family = m[1];
    } else if (std::regex_match(line, m, type)) {
      EXPECT_EQ(m[1], family) << "TYPE without its HELP: " << line;
      EXPECT_FALSE(p.types.contains(m[1])) << "family given twice: " << line;
      p.types[m[1]] = m[2];
    } else if (std::regex_match(line, m, sample)) {
      const std::string name = m[1];
      EXPECT_TRUE(name.starts_with(family)) << "sample outside its family: " << line;
      EXPECT_FALSE(p.samples.contains(name)) << "sample given twice: " << line;
      p.samples[name] = m[3];
    } else {
      ADD_FAILURE() << "not exposition format: '" << line << "'";
    }
  }
  return p;
}

Snapshot example() {
  Snapshot s;
  s.workers.handshaking = 1;
  s.workers.awaiting_login = 2;
  s.workers.live = 3;
  s.workers.logins = 40;
  s.workers.frames_in = 500;
  s.workers.frames_out = 6;
  s.workers.bytes_in = 70000;
  s.workers.bytes_out = 800;
  s.workers.spool_bytes = 9;
  s.workers.closes[shm::close_reason_index("wrong_key")] = 11;
  s.workers.closes[shm::close_reason_index("tls_failed")] = 12;
  s.workers.closes[shm::close_reason_index("handshake_timeout")] = 13;
  s.workers.closes[shm::close_reason_index("idle_timeout")] = 14;
  s.master.pushes_routed = 15;
  s.master.pushes_queued = 16;
  s.master.pushes_expired = 17;
  s.master.refused_per_ip = 18;
  s.master.worker_restarts = 19;
  s.master.certificate_not_after = 1'900'000'000;
  return s;
}

TEST(MetricsText, EveryLineIsExpositionFormatAndCountersEndInTotal) {
  const Parsed p = parse(Families().render(example()));
  ASSERT_GE(p.types.size(), 20u);
  for (const auto& [name, type] : p.types) {
    EXPECT_EQ(name.ends_with("_total"), type == "counter") << name << " " << type;
  }
}

TEST(MetricsText, CarriesTheSnapshotsValues) {
  const Parsed p = parse(Families().render(example()));
  const std::map<std::string, std::string> expected = {
      {"iotsocket_connections{state=\"handshake\"}", "1"},
      {"iotsocket_connections{state=\"awaiting_login\"}", "2"},
      {"iotsocket_connections{state=\"live\"}", "3"},
      {"iotsocket_logins_total", "40"},
      {"iotsocket_frames_in_total", "500"},
      {"iotsocket_frames_out_total", "6"},
      {"iotsocket_bytes_in_total", "70000"},
      {"iotsocket_bytes_out_total", "800"},
      {"iotsocket_spool_bytes", "9"},
      {"iotsocket_rejections_total{reason=\"wrong_key\"}", "11"},
      {"iotsocket_rejections_total{reason=\"time_skew\"}", "0"},
      {"iotsocket_closes_total{reason=\"tls_failed\"}", "12"},
      {"iotsocket_closes_total{reason=\"idle_timeout\"}", "14"},
      {"iotsocket_tls_handshake_failures_total", "25"},
      {"iotsocket_pushes_routed_total", "15"},
      {"iotsocket_pushes_queued_total", "16"},
      {"iotsocket_pushes_expired_total", "17"},
      {"iotsocket_accept_refusals_total{cap=\"per_ip\"}", "18"},
      {"iotsocket_accept_refusals_total{cap=\"max_connections\"}", "0"},
      {"iotsocket_worker_restarts_total", "19"},
      {"iotsocket_certificate_expiry_timestamp_seconds", "1900000000"},
  };
  for (const auto& [name, value] : expected) {
    ASSERT_TRUE(p.samples.contains(name)) << name;
    EXPECT_EQ(p.samples.at(name), value) << name;
  }
}

TEST(MetricsText, EveryReasonCodeIsARejectionOrACloseOnce) {
  const Parsed p = parse(Families().render(Snapshot{}));
  std::set<std::string> seen;
  for (const auto& reason : shm::kCloseReasons) {
    const std::string label = "{reason=\"" + std::string(reason.name) + "\"}";
    const bool rejection = p.samples.contains("iotsocket_rejections_total" + label);
    const bool close = p.samples.contains("iotsocket_closes_total" + label);
    EXPECT_NE(rejection, close) << reason.name;
    EXPECT_EQ(rejection, reason.rejection) << reason.name;
    EXPECT_TRUE(seen.insert(std::string(reason.name)).second) << reason.name << " listed twice";
  }
}

TEST(MetricsText, NoCertificateNoExpiryFamily) {
  const std::string text = Families().render(Snapshot{});
  EXPECT_EQ(text.find("certificate_expiry"), std::string::npos);
}

TEST(MetricsText, ReasonIndexFallsBackToOther) {
  EXPECT_EQ(shm::kCloseReasons[shm::close_reason_index("no_such_reason")].name, "other");
  EXPECT_EQ(shm::kCloseReasons[shm::close_reason_index("flood")].name, "flood");
}

// The families outlive a scrape: each render sets them from its snapshot.
TEST(MetricsText, EachRenderShowsItsSnapshotAndCountersNeverGoBack) {
  Families families;
  Snapshot s = example();
  families.render(s);
  s.workers.frames_in = 501;
  s.workers.live = 0;
  s.master.certificate_not_after = 1'900'086'400;
  Parsed p = parse(families.render(s));
  EXPECT_EQ(p.samples.at("iotsocket_frames_in_total"), "501");
  EXPECT_EQ(p.samples.at("iotsocket_connections{state=\"live\"}"), "0");
  EXPECT_EQ(p.samples.at("iotsocket_certificate_expiry_timestamp_seconds"), "1900086400");
  // Totals below what a counter showed leave it (a counter is never reset while the
  // master runs); the certificate's gauge goes with the certificate.
  s.workers.frames_in = 7;
  s.master.certificate_not_after.reset();
  p = parse(families.render(s));
  EXPECT_EQ(p.samples.at("iotsocket_frames_in_total"), "501");
  EXPECT_FALSE(p.types.contains("iotsocket_certificate_expiry_timestamp_seconds"));
  EXPECT_FALSE(p.samples.contains("iotsocket_certificate_expiry_timestamp_seconds"));
}

TEST(MetricsHttp, ClassifiesRequests) {
  struct Case {
    const char* received;
    Request expected;
  };
  const Case cases[] = {
      {"", Request::incomplete},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\n", Request::incomplete},
      {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", Request::metrics},
      {"GET /metrics?name[]=x HTTP/1.0\r\n\r\n", Request::metrics},
      {"GET /metrics HTTP/1.1\n\n", Request::metrics},
      {"GET / HTTP/1.1\r\n\r\n", Request::not_found},
      {"GET /metricsx HTTP/1.1\r\n\r\n", Request::not_found},
      {"POST /metrics HTTP/1.1\r\n\r\n", Request::bad_method},
      {"GET /metrics\r\n\r\n", Request::bad_request},
      {"GET /metrics SPDY/3\r\n\r\n", Request::bad_request},
      {"\r\n\r\n", Request::bad_request},
  };
  for (const Case& c : cases) EXPECT_EQ(classify(c.received), c.expected) << c.received;
}

TEST(MetricsHttp, AHeadPastTheLimitIsRefusedWithoutItsEnd) {
  const std::string big = "GET /metrics HTTP/1.1\r\nX: " + std::string(kMaxRequestHead, 'a');
  EXPECT_EQ(classify(big), Request::bad_request);
  EXPECT_EQ(classify(big.substr(0, kMaxRequestHead - 1)), Request::incomplete);
}

TEST(MetricsHttp, ResponsesSayLengthTypeAndClose) {
  const std::string ok = response(Request::metrics, "a 1\n");
  EXPECT_EQ(ok,
            "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            "Content-Length: 4\r\nConnection: close\r\n\r\na 1\n");
  EXPECT_TRUE(response(Request::not_found, "ignored").starts_with("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_EQ(response(Request::not_found, "ignored").find("ignored"), std::string::npos);
  EXPECT_NE(response(Request::bad_method, "").find("\r\nAllow: GET\r\n"), std::string::npos);
  EXPECT_TRUE(response(Request::bad_request, "").starts_with("HTTP/1.1 400 Bad Request\r\n"));
}

}  // namespace
}  // namespace iotsocket::master::metrics
