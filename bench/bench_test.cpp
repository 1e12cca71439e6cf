// The bench's pure parts: option rules, loopback and source-address parsing,
// percentiles, payloads and report arithmetic.
#include <arpa/inet.h>

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "bench/address.hpp"
#include "bench/options.hpp"
#include "bench/payload.hpp"
#include "bench/report.hpp"
#include "bench/stats.hpp"

namespace iotsocket::bench {
namespace {

Options valid() {
  Options o;
  o.port = 9000;
  o.devices = 1000;
  o.first_id = 1;
  o.key = "k3y";
  return o;
}

// Each row changes one thing in a valid set and names a word the error must contain.
struct BadOptions {
  const char* what;
  void (*change)(Options&);
  const char* says;
};

const BadOptions kBad[] = {
    {"no port", [](Options& o) { o.port = 0; }, "--port"},
    {"no devices", [](Options& o) { o.devices = 0; }, "--devices"},
    {"IDs past 10 digits", [](Options& o) { o.first_id = 9'999'999'500; }, "9999999999"},
    {"empty key", [](Options& o) { o.key = ""; }, "--key"},
    {"key with colon", [](Options& o) { o.key = "a:b"; }, "--key"},
    {"negative rate", [](Options& o) { o.rate = -1; }, "--rate"},
    {"rate too high", [](Options& o) { o.rate = 5000; }, "--rate"},
    {"zero frames", [](Options& o) { o.frames = 0; }, "--frames"},
    {"frames without rate", [](Options& o) { o.frames = 10; }, "needs --rate"},
    {"payload of 4", [](Options& o) { o.payload_bytes = 4; }, "--payload-bytes"},
    {"payload too large", [](Options& o) { o.payload_bytes = 62535; }, "--payload-bytes"},
    {"zero duration", [](Options& o) { o.duration = 0; }, "--duration"},
    {"negative connect rate", [](Options& o) { o.connect_rate = -5; }, "--connect-rate"},
    {"zero threads", [](Options& o) { o.threads = 0; }, "--threads"},
    {"threads above devices", [](Options& o) { o.devices = 2; o.threads = 3; }, "--threads"},
    {"keepalive alone", [](Options& o) { o.keepalive = 30; }, "needs --hold"},
    {"hold with rate", [](Options& o) { o.hold = 10; o.rate = 1; }, "--keepalive"},
    {"hold past duration", [](Options& o) { o.hold = 60; }, "--duration"},
    {"hold past idle timeout",
     [](Options& o) { o.hold = 100; o.duration = 200; }, "idle"},
    {"keepalive past idle timeout",
     [](Options& o) { o.hold = 100; o.duration = 200; o.keepalive = 90; }, "idle timeout"},
};

TEST(BenchOptions, AcceptsTheExamples) {
  Options o = valid();
  o.rate = 2;
  o.frames = 10;
  EXPECT_EQ(check_options(o), std::nullopt);
  Options h = valid();
  h.devices = 10000;
  h.hold = 60;
  h.duration = 80;
  EXPECT_EQ(check_options(h), std::nullopt);
  h.hold = 300;
  h.duration = 400;
  h.keepalive = 60;
  EXPECT_EQ(check_options(h), std::nullopt);
  Options edge = valid();
  edge.first_id = 9'999'999'000;
  edge.devices = 1000;  // up to exactly 9999999999
  EXPECT_EQ(check_options(edge), std::nullopt);
}

TEST(BenchOptions, RefusesEachBadOption) {
  for (const auto& row : kBad) {
    Options o = valid();
    row.change(o);
    const auto e = check_options(o);
    ASSERT_TRUE(e.has_value()) << row.what;
    EXPECT_NE(e->find(row.says), std::string::npos) << row.what << ": " << *e;
  }
}

TEST(BenchOptions, FramesPerDevice) {
  Options o = valid();
  EXPECT_EQ(frames_per_device(o), 1u);  // the login frame only
  o.rate = 5;
  EXPECT_EQ(frames_per_device(o), std::nullopt);  // until --duration
  o.frames = 7;
  EXPECT_EQ(frames_per_device(o), 7u);
}

TEST(BenchAddress, AcceptsLoopbackOnly) {
  EXPECT_TRUE(loopback_target("127.0.0.1", 9000));
  EXPECT_TRUE(loopback_target("127.1.2.3", 9000));
  EXPECT_TRUE(loopback_target("::1", 9000));
  for (const char* bad : {"10.0.0.1", "0.0.0.0", "8.8.8.8", "localhost", "::", "::ffff:127.0.0.1",
                          "128.0.0.1", "127.0.0.0", ""}) {
    const auto t = loopback_target(bad, 9000);
    ASSERT_FALSE(t) << bad;
    EXPECT_NE(t.error().find("loopback only"), std::string::npos) << t.error();
  }
}

TEST(BenchAddress, TargetCarriesPortAndAddress) {
  const auto t = loopback_target("127.0.0.9", 4433);
  ASSERT_TRUE(t);
  sockaddr_in sin{};
  std::memcpy(&sin, &t->addr, sizeof sin);
  EXPECT_EQ(t->len, sizeof(sockaddr_in));
  EXPECT_EQ(ntohs(sin.sin_port), 4433);
  EXPECT_EQ(ntohl(sin.sin_addr.s_addr), 0x7F000009u);
}

// Each row: the option's text, the number of addresses, and addresses at some indexes
// (an index past the count wraps around: devices take the addresses round robin).
struct Expansion {
  const char* text;
  std::uint32_t count;
  std::vector<std::pair<std::uint64_t, const char*>> at;
};

const Expansion kExpansions[] = {
    {"127.0.0.2-127.0.1.1", 256,
     {{0, "127.0.0.2"}, {253, "127.0.0.255"}, {254, "127.0.1.0"}, {255, "127.0.1.1"}, {256, "127.0.0.2"}}},
    {"127.0.0.2-127.255.255.254", 0x7FFFFFFEu - 0x7F000002u + 1,
     {{0, "127.0.0.2"}, {0x7FFFFFFEu - 0x7F000002u, "127.255.255.254"}}},
    {"4", 4, {{0, "127.0.0.2"}, {3, "127.0.0.5"}, {4, "127.0.0.2"}}},  // a count starts at .2
    {"127.0.0.7", 1, {{0, "127.0.0.7"}, {5, "127.0.0.7"}}},
};

TEST(BenchSourceIps, ExpandsRangesAndCounts) {
  for (const auto& row : kExpansions) {
    const auto r = parse_source_ips(row.text);
    ASSERT_TRUE(r) << row.text;
    EXPECT_EQ(r->count, row.count) << row.text;
    for (const auto& [index, address] : row.at) {
      EXPECT_EQ(format_ipv4(r->at(index)), address) << row.text << " at " << index;
    }
  }
}

TEST(BenchSourceIps, NoneMeansTheKernelPicks) {
  const auto none = parse_source_ips("");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(BenchSourceIps, RefusesWhatIsNotLoopback) {
  for (const char* bad : {"0", "16777214", "10.0.0.1-10.0.0.9", "127.0.0.9-127.0.0.2",
                          "127.0.0.0-127.0.0.5", "127.0.0.2-127.255.255.255", "127.0.0.2-",
                          "abc", "127.0.0.2-128.0.0.1", "-5"}) {
    EXPECT_FALSE(parse_source_ips(bad)) << bad;
  }
  EXPECT_TRUE(parse_source_ips("16777213"));  // every address in 127.0.0.2..127.255.255.254
}

TEST(BenchPercentile, NearestRank) {
  std::vector<std::uint64_t> ten;
  for (std::uint64_t i = 1; i <= 10; ++i) ten.push_back(i * 10);
  EXPECT_EQ(percentile(ten, 50), 50u);
  EXPECT_EQ(percentile(ten, 90), 90u);
  EXPECT_EQ(percentile(ten, 99), 100u);
  EXPECT_EQ(percentile(ten, 100), 100u);
  EXPECT_EQ(percentile(ten, 1), 10u);
  EXPECT_EQ(percentile({}, 50), 0u);
  EXPECT_EQ(percentile({7}, 99), 7u);
}

TEST(BenchPercentile, SummarySortsFirst) {
  std::vector<std::uint64_t> samples;
  for (std::uint64_t i = 1000; i >= 1; --i) samples.push_back(i);  // descending
  const LatencySummary s = summarize(samples);
  EXPECT_EQ(s.count, 1000u);
  EXPECT_EQ(s.p50, 500u);
  EXPECT_EQ(s.p90, 900u);
  EXPECT_EQ(s.p99, 990u);
  EXPECT_EQ(s.max, 1000u);
}

TEST(BenchPayload, ExactSizeDeterministicAndSendable) {
  for (std::size_t bytes : {5u, 6u, 32u, 1000u}) {
    const std::string p = make_payload(123456, bytes);
    EXPECT_EQ(p.size(), bytes);
    EXPECT_EQ(p, make_payload(123456, bytes));
    EXPECT_EQ(p.find_first_of(" \t\r\n|"), std::string::npos) << p;
  }
  EXPECT_EQ(make_payload(7, 12), "n=7;abcdefgh");
  EXPECT_NE(make_payload(1, 32), make_payload(2, 32));
}

TEST(BenchReport, MergesAndCountsServerCloses) {
  FleetStats a;
  a.attempted = 3;
  a.up = 2;
  a[Failure::tls_failed] = 1;
  a[Failure::closed_after_login] = 1;
  a.handshake_us = {5, 6};
  a.frames_sent = 10;
  a.first_send_s = 1.0;
  a.last_send_s = 3.0;
  FleetStats b;
  b.attempted = 2;
  b[Failure::closed_before_login] = 2;
  b.handshake_us = {7};
  b.frames_sent = 5;
  b.first_send_s = 0.5;
  b.last_send_s = 2.0;
  a.merge(std::move(b));
  EXPECT_EQ(a.attempted, 5u);
  EXPECT_EQ(a.server_closes(), 3u);
  EXPECT_EQ(a.failed_total(), 4u);
  EXPECT_EQ(a.handshake_us.size(), 3u);
  EXPECT_DOUBLE_EQ(*a.first_send_s, 0.5);
  EXPECT_DOUBLE_EQ(*a.last_send_s, 3.0);
  EXPECT_DOUBLE_EQ(rate(a.frames_sent, a.first_send_s, a.last_send_s), 6.0);
  EXPECT_DOUBLE_EQ(rate(5, 1.0, 1.0), 0.0);
  EXPECT_DOUBLE_EQ(rate(5, std::nullopt, 1.0), 0.0);
}

}  // namespace
}  // namespace iotsocket::bench
