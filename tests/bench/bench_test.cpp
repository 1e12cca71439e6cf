// The bench's pure parts: option rules, loopback and source-address parsing,
// percentiles, payloads, push records and receipts, and report arithmetic.
#include <arpa/inet.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "bench/address.hpp"
#include "bench/options.hpp"
#include "bench/payload.hpp"
#include "bench/push_ledger.hpp"
#include "bench/push_plan.hpp"
#include "bench/report.hpp"
#include "bench/stats.hpp"
#include "protocol/encoder.hpp"
#include "protocol/record.hpp"

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
    {"push FIFO without pushes", [](Options& o) { o.push_fifo = "push.fifo"; }, "needs --pushes"},
    {"pushes without push FIFO", [](Options& o) { o.pushes = 10; }, "--pushes needs --push-fifo"},
    {"push rate without push FIFO", [](Options& o) { o.push_rate = 0; }, "--push-rate needs --push-fifo"},
    {"zero pushes", [](Options& o) { o.push_fifo = "p"; o.pushes = 0; }, "--pushes must be"},
    {"too many pushes", [](Options& o) { o.push_fifo = "p"; o.pushes = kMaxPushes + 1; }, "--pushes must be"},
    {"negative push rate",
     [](Options& o) { o.push_fifo = "p"; o.pushes = 5; o.push_rate = -1; }, "--push-rate must be"},
    {"push rate not a number",
     [](Options& o) { o.push_fifo = "p"; o.pushes = 5; o.push_rate = std::nan(""); }, "--push-rate must be"},
    {"infinite push rate",
     [](Options& o) {
       o.push_fifo = "p";
       o.pushes = 5;
       o.push_rate = std::numeric_limits<double>::infinity();
     },
     "--push-rate must be"},
    {"pushes while holding",
     [](Options& o) { o.push_fifo = "p"; o.pushes = 5; o.hold = 10; }, "--hold"},
    {"one FIFO for both ways",
     [](Options& o) { o.push_fifo = "f"; o.pushes = 5; o.count_inbound = "f"; }, "different FIFOs"},
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

TEST(BenchOptions, AcceptsPushRuns) {
  Options o = valid();
  o.devices = 10000;
  o.push_fifo = "/tmp/push.fifo";
  o.pushes = 100000;
  EXPECT_EQ(check_options(o), std::nullopt);  // no --push-rate: unpaced
  EXPECT_TRUE(push_mode(o));
  o.push_rate = 0;
  EXPECT_EQ(check_options(o), std::nullopt);
  o.push_rate = 10000;
  o.count_inbound = "/tmp/inbound.fifo";
  EXPECT_EQ(check_options(o), std::nullopt);
  o.pushes = kMaxPushes;
  EXPECT_EQ(check_options(o), std::nullopt);
  EXPECT_FALSE(push_mode(valid()));
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

TEST(BenchPushPayload, CarriesSequenceAndTimeAtTheRequestedSize) {
  const PushStamp stamp{42, 1'234'567'890'123};
  EXPECT_EQ(make_push_payload(stamp, 5), "p=42;t=1234567890123;");  // never shorter than the stamp
  EXPECT_EQ(make_push_payload(stamp, 26), "p=42;t=1234567890123;abcde");
  for (std::size_t bytes : {5u, 32u, 64u, 1000u, 62534u}) {
    const std::string p = make_push_payload(stamp, bytes);
    EXPECT_EQ(p.size(), std::max<std::size_t>(bytes, 21)) << bytes;
    EXPECT_EQ(parse_push_payload(p), stamp) << bytes;
  }
  // The longest stamp fits every --payload-bytes the bench takes.
  const PushStamp widest{kMaxPushes, std::numeric_limits<std::uint64_t>::max()};
  EXPECT_LE(make_push_payload(widest, 5).size(), 46u);
  EXPECT_EQ(parse_push_payload(make_push_payload(widest, 5)), widest);
}

TEST(BenchPushPayload, NeedsNoEscapingAndIsAValidBody) {
  const std::string p = make_push_payload(PushStamp{7, 99}, 200);
  for (const char c : p) {
    EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '=' || c == ';') << p;
  }
  EXPECT_EQ(protocol::payload_error(p), std::nullopt);
  std::string line;
  append_push_line(line, protocol::DeviceId{1000000}, p);
  EXPECT_EQ(line, "1000000 " + p + "\n");
  line.pop_back();  // the reader takes the '\n' off
  const auto record = protocol::parse_record(line);
  ASSERT_TRUE(record);
  EXPECT_EQ(record->device, protocol::DeviceId{1000000});
  EXPECT_EQ(record->payload, p);  // unescaping changes nothing
}

TEST(BenchPushPayload, RefusesWhatIsNotAStamp) {
  for (const char* bad : {"", "p=", "p=1", "p=1;", "p=1;t=", "p=1;t=2", "p=;t=2;", "p=1;t=;",
                          "x=1;t=2;", "p=1;x=2;", "p=-1;t=2;", "p=1;t=+2;", "p= 1;t=2;",
                          "p=18446744073709551616;t=2;", "n=1;abcdefgh", "hello-device"}) {
    EXPECT_EQ(parse_push_payload(bad), std::nullopt) << bad;
  }
  EXPECT_EQ(parse_push_payload("p=0;t=0;"), (PushStamp{0, 0}));
  EXPECT_EQ(parse_push_payload("p=3;t=4;anything after"), (PushStamp{3, 4}));
}

TEST(BenchPushPacing, PushKIsDueAtKOverRate) {
  struct Row {
    double elapsed, rate;
    std::uint64_t total, due;
  };
  const Row rows[] = {
      {0.0, 10, 100, 1},      {0.0999, 10, 100, 1}, {0.1, 10, 100, 2},
      {0.95, 10, 100, 10},    {9.9, 10, 100, 100},  {1000, 10, 100, 100},
      {0.5, 10000, 100000, 5001}, {-1, 10, 100, 1}, {5, 0, 100, 100},  // 0: unpaced
      {0, 0, 7, 7},
  };
  for (const auto& r : rows) {
    EXPECT_EQ(pushes_due(r.elapsed, r.rate, r.total), r.due) << r.elapsed << " s at " << r.rate;
  }
}

TEST(BenchPushLedger, BooksFreshDuplicateOutOfOrderAndUnknown) {
  PushLedger ledger(200);
  std::optional<std::uint64_t> a, b;
  EXPECT_EQ(ledger.take(0, a), Receipt::fresh);
  EXPECT_EQ(ledger.take(100, a), Receipt::fresh);
  EXPECT_EQ(ledger.take(64, a), Receipt::out_of_order);  // below 100, first time
  EXPECT_EQ(a, 100u);                                     // the highest stays
  EXPECT_EQ(ledger.take(100, a), Receipt::duplicate);
  EXPECT_EQ(ledger.take(64, b), Receipt::duplicate);      // seen, whichever device
  EXPECT_EQ(ledger.take(63, b), Receipt::fresh);          // the neighbouring bit is its own
  EXPECT_EQ(ledger.take(199, b), Receipt::fresh);
  EXPECT_EQ(ledger.take(200, b), Receipt::unknown);
  EXPECT_EQ(b, 199u);
}

TEST(BenchPushLedger, EachSequenceNumberIsFreshOnceAcrossThreads) {
  constexpr std::uint64_t kTotal = 100000;
  PushLedger ledger(kTotal);
  std::atomic<std::uint64_t> fresh{0}, duplicates{0};
  const auto take_all = [&] {
    std::optional<std::uint64_t> high;
    for (std::uint64_t seq = 0; seq < kTotal; ++seq) {
      const Receipt r = ledger.take(seq, high);
      if (r == Receipt::duplicate) ++duplicates;
      if (r == Receipt::fresh) ++fresh;
    }
  };
  std::thread t1(take_all), t2(take_all);
  t1.join();
  t2.join();
  EXPECT_EQ(fresh.load(), kTotal);
  EXPECT_EQ(duplicates.load(), kTotal);
}

std::string printed(void (*print)(std::FILE*, const Report&), const Report& r) {
  char* text = nullptr;
  std::size_t size = 0;
  std::FILE* f = ::open_memstream(&text, &size);
  print(f, r);
  std::fclose(f);
  std::string s(text, size);
  std::free(text);
  return s;
}

Report push_report() {
  Report r;
  r.target = "127.0.0.1:9000";
  r.devices = 2;
  r.push = PushWriteStats{.enabled = true, .requested = 10, .rate = 5, .devices = 2, .written = 10,
                          .first_write_s = 1.0, .last_write_s = 2.8, .stopped = "done"};
  r.fleet.push_fresh = 7;
  r.fleet.push_out_of_order = 1;
  r.fleet.push_duplicates = 2;
  r.fleet.push_latency_us = {1000, 3000, 2000, 500, 250, 4000, 1500, 800};
  r.fleet.last_push_s = 3.0;
  r.ended = "deadline";
  return r;
}

TEST(BenchReport, PushCountsRatesAndLatency) {
  const Report r = push_report();
  EXPECT_EQ(r.fleet.push_arrivals(), 8u);
  EXPECT_EQ(pushes_missing(r), 2u);
  EXPECT_DOUBLE_EQ(push_receive_rate(r), 4.0);  // 8 over 1.0 .. 3.0 s
  const std::string json = printed(print_json, r);
  EXPECT_NE(json.find("\"push_fifo\":{\"requested\":10,\"rate\":5,\"devices\":2,\"written\":10,"
                      "\"write_per_second\":5.6,\"write_seconds\":1.800,\"stopped\":\"done\","
                      "\"received\":8,\"missing\":2,\"duplicates\":2,\"out_of_order\":1,\"foreign\":0,"
                      "\"receive_per_second\":4.0,"
                      "\"latency_ms\":{\"count\":8,\"p50\":1.000,\"p90\":4.000,\"p99\":4.000,\"max\":4.000}},"),
            std::string::npos)
      << json;
  const std::string text = printed(print_text, r);
  EXPECT_NE(text.find("push receipt  received 8  missing 2  duplicates 2  out of order 1"), std::string::npos) << text;
  EXPECT_NE(text.find("push latency  p50 1.000 ms"), std::string::npos) << text;
  Report plain;
  EXPECT_EQ(printed(print_json, plain).find("push_fifo"), std::string::npos);
  EXPECT_EQ(printed(print_text, plain).find("push writes"), std::string::npos);
}

TEST(BenchReport, MergesPushReceipts) {
  FleetStats a;
  a.push_fresh = 3;
  a.push_latency_us = {1, 2};
  a.last_push_s = 4.0;
  FleetStats b;
  b.push_fresh = 2;
  b.push_out_of_order = 1;
  b.push_duplicates = 5;
  b.push_foreign = 6;
  b.push_latency_us = {3};
  b.last_push_s = 5.0;
  a.merge(std::move(b));
  EXPECT_EQ(a.push_arrivals(), 6u);
  EXPECT_EQ(a.push_duplicates, 5u);
  EXPECT_EQ(a.push_foreign, 6u);
  EXPECT_EQ(a.push_latency_us.size(), 3u);
  EXPECT_DOUBLE_EQ(*a.last_push_s, 5.0);
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
