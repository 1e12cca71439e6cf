// Connections that end: refused logins with backoff, an unreachable server, a server that
// closes or resets a working connection, renewal before the maximum age, keepalives.
// Timing assertions are lower bounds (this machine is shared and noisy), but for one that
// tells a wait of a few hundred milliseconds from one of seconds.
#include <signal.h>

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/client/fake_server.hpp"

namespace iotsocket::client::test {
namespace {

using namespace std::chrono_literals;

// ---- refused logins ----

TEST(ClientReconnect, RefusedLoginsBackOffAndTheLastAllowedIsFatal) {
  FakeServer server(certificates().server);
  server.refuse_logins(true);
  Options options = test_options(server.port());
  options.login_grace = 1s;  // the server refuses in far less: no refusal is missed
  options.max_auth_failures = 3;
  options.backoff_initial = 100ms;
  options.backoff_max = 1s;
  auto client = make_client(options);
  ASSERT_TRUE(client);
  ASSERT_FALSE(client->send("reading-to-deliver"));

  Events events;
  drive_until(*client, events, [] { return false; }, 8s);  // ends at the fatal error
  ASSERT_EQ(events.errors.size(), 3u) << events.describe();
  for (const Error& error : events.errors) EXPECT_EQ(error.code, ErrorCode::auth_refused);
  EXPECT_FALSE(events.errors[0].fatal);
  EXPECT_FALSE(events.errors[1].fatal);
  EXPECT_TRUE(events.errors[2].fatal);

  const auto connections = server.inspect([](const std::vector<Connection>& c) { return c; });
  ASSERT_EQ(connections.size(), 3u);
  // Equal jitter: the first wait is at least step(0)/2 = 50 ms, the second step(1)/2 = 100 ms.
  EXPECT_GE(connections[1].accepted_at - connections[0].accepted_at, 50ms);
  EXPECT_GE(connections[2].accepted_at - connections[1].accepted_at, 100ms);
  // Each login carried the reading, and a refused login did not deliver it.
  for (const Connection& connection : connections) {
    ASSERT_EQ(connection.frames.size(), 1u);
    EXPECT_EQ(connection.frames[0].body, "reading-to-deliver");
  }
  EXPECT_EQ(client->queued(), 1u);
  EXPECT_EQ(client->stats().connects, 0u);
  EXPECT_EQ(client->stats().failed_attempts, 3u);
}

TEST(ClientReconnect, AfterARefusedLoginTheReadingIsStillQueuedAndGoesOutLater) {
  FakeServer server(certificates().server);
  server.refuse_logins(true);
  Options options = test_options(server.port());
  options.login_grace = 1s;
  auto client = make_client(options);
  ASSERT_TRUE(client);
  ASSERT_FALSE(client->send("reading-to-deliver"));
  Events events;
  ASSERT_TRUE(drive_until(*client, events,
                          [&] { return events.count(ErrorCode::auth_refused) > 0; }, 3s))
      << events.describe();
  EXPECT_EQ(client->queued(), 1u);
  server.refuse_logins(false);
  EXPECT_TRUE(drive_until(*client, events, [&] { return client->online(); }, 3s))
      << events.describe();
  EXPECT_EQ(client->queued(), 0u);
  const auto last = server.inspect([](const std::vector<Connection>& c) { return c.back(); });
  EXPECT_EQ(bodies(last), std::vector<std::string>{"reading-to-deliver"});
}

// After a refused login the info log says what to check, in order; the clock comes first
// when the server's last push showed it off by half the tolerance or more.
std::vector<std::string> checklists_in(const std::vector<std::string>& lines) {
  std::vector<std::string> found;
  for (const std::string& line : lines) {
    if (line.find("check, in this order") != std::string::npos) found.push_back(line);
  }
  return found;
}

TEST(ClientReconnect, ARefusedLoginBeforeAnyPushSaysHowToCompareTheClocks) {
  FakeServer server(certificates().server);
  server.refuse_logins(true);
  Options options = test_options(server.port());
  std::vector<std::string> info;
  options.log = [&](LogLevel level, std::string_view line) {
    if (level == LogLevel::info) info.emplace_back(line);
  };
  auto client = make_client(options);
  ASSERT_TRUE(client);
  Events events;
  ASSERT_TRUE(drive_until(*client, events, [&] { return events.count(ErrorCode::auth_refused) > 0; }, 3s))
      << events.describe();
  const auto checklists = checklists_in(info);
  ASSERT_EQ(checklists.size(), 1u) << ::testing::PrintToString(info);
  EXPECT_NE(checklists[0].find("1) this clock: no push from the server came yet"), std::string::npos)
      << checklists[0];
  EXPECT_NE(checklists[0].find("iotsocketctl devices show 1234567890"), std::string::npos) << checklists[0];
}

TEST(ClientReconnect, ARefusedLoginAfterASkewedPushPutsThisClockFirst) {
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  std::vector<std::string> info;
  options.log = [&](LogLevel level, std::string_view line) {
    if (level == LogLevel::info) info.emplace_back(line);
  };
  // The server's clock runs 5 s ahead: its push is dropped, and tells the client so.
  server.write_after_login(push_frame(1234567890, now_time() + 5s, "from-a-clock-ahead"));
  auto client = make_client(options);
  ASSERT_TRUE(client);
  Events events;
  ASSERT_TRUE(drive_until(*client, events, [&] { return events.count(ErrorCode::clock_skew) > 0; }, 3s))
      << events.describe();
  EXPECT_TRUE(checklists_in(info).empty());
  server.refuse_logins(true);
  server.close_current();
  ASSERT_TRUE(drive_until(*client, events, [&] { return events.count(ErrorCode::auth_refused) > 0; }, 5s))
      << events.describe();
  const auto checklists = checklists_in(info);
  ASSERT_FALSE(checklists.empty()) << ::testing::PrintToString(info);
  EXPECT_NE(checklists[0].find("1) this clock FIRST: at its last push the server's clock was"), std::string::npos)
      << checklists[0];
  EXPECT_NE(checklists[0].find("s ahead of this one"), std::string::npos) << checklists[0];
}

// ---- no server ----

TEST(ClientReconnect, NoServerIsServerGoneUntilMaxAttempts) {
  Options options = test_options(free_port());
  options.max_attempts = 2;
  auto client = make_client(options);
  ASSERT_TRUE(client);
  Events events;
  drive_until(*client, events, [] { return false; }, 5s);
  ASSERT_EQ(events.errors.size(), 2u) << events.describe();
  EXPECT_EQ(events.errors[0].code, ErrorCode::server_gone);
  EXPECT_FALSE(events.errors[0].fatal);
  EXPECT_EQ(events.errors[1].code, ErrorCode::server_gone);
  EXPECT_TRUE(events.errors[1].fatal);
  EXPECT_EQ(client->stats().failed_attempts, 2u);
}

TEST(ClientReconnect, NoServerWithoutReconnectIsFatalAtOnce) {
  Options options = test_options(free_port());
  options.reconnect = false;
  auto client = make_client(options);
  ASSERT_TRUE(client);
  const Event event = client->poll(1s);
  ASSERT_TRUE(event.error.has_value());
  EXPECT_EQ(event.error->code, ErrorCode::server_gone);
  EXPECT_TRUE(event.error->fatal);
}

TEST(ClientReconnect, NoServerIsRetriedWithoutEndWhenMaxAttemptsIsZero) {
  Options options = test_options(free_port());
  options.max_attempts = 0;
  options.backoff_initial = 10ms;
  options.backoff_max = 20ms;
  auto client = make_client(options);
  ASSERT_TRUE(client);
  Events events;
  drive_until(*client, events, [&] { return events.errors.size() >= 5; }, 3s);
  EXPECT_GE(events.errors.size(), 5u);
  EXPECT_FALSE(events.fatal()) << events.describe();
}

// ---- a working connection that ends ----

TEST(ClientReconnect, FramesSentWhileDisconnectedGoOutInOrderAfterTheNextLogin) {
  FakeServer server(certificates().server);
  auto client = connected_client(test_options(server.port()));
  ASSERT_TRUE(client);
  server.close_current();
  Events events;
  ASSERT_TRUE(drive_until(*client, events,
                          [&] { return events.count(ErrorCode::server_gone) > 0; }, 3s))
      << events.describe();
  EXPECT_FALSE(events.fatal());
  EXPECT_FALSE(client->online());
  EXPECT_EQ(client->fd(), -1);

  const std::vector<std::string> readings = {"offline-1", "offline-2", "offline-3", "offline-4"};
  for (const std::string& reading : readings) ASSERT_FALSE(client->send(reading));
  EXPECT_EQ(client->queued(), readings.size());
  EXPECT_TRUE(drive_until(*client, events, [&] {
    return server.inspect([&](const std::vector<Connection>& c) {
      return c.size() >= 2 && c[1].frames.size() >= readings.size();
    });
  }, 3s)) << events.describe();
  const Connection second = server.inspect([](const std::vector<Connection>& c) { return c[1]; });
  EXPECT_EQ(bodies(second), readings);  // the first of them is the login
  EXPECT_EQ(client->stats().connects, 2u);
  EXPECT_EQ(client->queued(), 0u);
}

// TIMEs rise across connections, not only within one: with a clock that stands still,
// every frame still gets a TIME above the one before (one tick, 0.1 ms, higher).
TEST(ClientReconnect, TimesKeepRisingAcrossReconnectsEvenWithAFrozenClock) {
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  const auto frozen = std::chrono::system_clock::now();
  options.clock = [frozen] { return frozen; };
  auto client = connected_client(options);
  ASSERT_TRUE(client);
  for (const char* reading : {"first-1", "first-2", "first-3"}) ASSERT_FALSE(client->send(reading));
  Events events;
  auto frames_on = [&](std::size_t connection, std::size_t count) {
    return server.inspect([=](const std::vector<Connection>& c) {
      return c.size() > connection && c[connection].frames.size() >= count;
    });
  };
  ASSERT_TRUE(drive_until(*client, events, [&] { return frames_on(0, 4); }, 3s));
  server.close_current();
  ASSERT_TRUE(drive_until(*client, events,
                          [&] { return events.count(ErrorCode::server_gone) > 0; }, 3s));
  for (const char* reading : {"second-1", "second-2", "second-3"}) {
    ASSERT_FALSE(client->send(reading));
  }
  ASSERT_TRUE(drive_until(*client, events, [&] { return frames_on(1, 3); }, 3s))
      << events.describe();

  const auto all = server.inspect([](const std::vector<Connection>& c) { return c; });
  std::vector<protocol::Time> times;
  for (const Connection& connection : all) {
    for (const ReceivedFrame& frame : connection.frames) times.push_back(frame.time);
  }
  ASSERT_EQ(times.size(), 7u);  // a keepalive login, three readings; three readings
  EXPECT_EQ(times[0], protocol::to_time(frozen));
  for (std::size_t i = 1; i < times.size(); ++i) {
    EXPECT_EQ(times[i] - times[i - 1], protocol::Tick{1}) << "frame " << i;
  }
}

TEST(ClientReconnect, ALostConnectionWithoutReconnectIsFatal) {
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  options.reconnect = false;
  auto client = connected_client(options);
  ASSERT_TRUE(client);
  server.close_current();
  Events events;
  drive_until(*client, events, [] { return false; }, 3s);
  ASSERT_EQ(events.errors.size(), 1u) << events.describe();
  EXPECT_EQ(events.errors[0].code, ErrorCode::server_gone);
  EXPECT_TRUE(events.errors[0].fatal);
  EXPECT_EQ(server.connection_count(), 1u);
}

// SIGPIPE keeps its default disposition in this process: were the client to let one
// through, the test binary would die here.
TEST(ClientReconnect, AResetDuringLargeWritesIsServerGoneAndNoSigpipe) {
  struct sigaction before {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &before), 0);
  ASSERT_EQ(before.sa_handler, SIG_DFL);

  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  options.max_rate = 0;  // write as fast as TLS takes it
  auto client = connected_client(options);
  ASSERT_TRUE(client);
  server.reset_after(1 << 20);
  // The queue is kept full: each connection takes 1 MiB and what the two socket buffers
  // hold besides (loopback's can grow to tens of MiB), and a client with nothing left to
  // write sees no reset. A fixed 15 MB ran dry after three resets on some runs.
  const std::string payload(30'000, 'p');
  std::size_t sent = 0;
  auto keep_queue_full = [&] {
    while (client->queued() < 200) {
      if (client->send(payload + std::to_string(sent++))) return false;
    }
    return true;
  };
  // Each reset catches the client at another point of its writes: several of them.
  Events events;
  EXPECT_TRUE(drive_until(*client, events, [&] {
    return !keep_queue_full() || events.count(ErrorCode::server_gone) >= 5;
  }, 20s)) << events.describe();
  EXPECT_EQ(events.count(ErrorCode::server_gone), 5u) << events.describe();
  EXPECT_FALSE(events.fatal());
  EXPECT_GE(server.connection_count(), 5u);

  // The client left the signal state as it found it.
  struct sigaction after {};
  ASSERT_EQ(::sigaction(SIGPIPE, nullptr, &after), 0);
  EXPECT_EQ(after.sa_handler, SIG_DFL);
  sigset_t blocked;
  ::pthread_sigmask(SIG_BLOCK, nullptr, &blocked);
  EXPECT_EQ(sigismember(&blocked, SIGPIPE), 0);
  sigset_t pending;
  ::sigpending(&pending);
  EXPECT_EQ(sigismember(&pending, SIGPIPE), 0);
}

// The pacer may hold the login of a new connection back for a moment (max_rate 2: one
// frame per 500 ms). Once that moment passes the login must go out, also inside a single
// long poll(), not when that poll() times out: until the login the server sees a silent
// connection, and the frames behind it wait too.
TEST(ClientReconnect, ALoginHeldBackByThePacerGoesOutWhenThePacerAllowsIt) {
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  options.max_rate = 2;
  auto client = connected_client(options);  // the first login: the pacer's next slot is 500 ms on
  ASSERT_TRUE(client);
  server.close_current();
  Events events;
  ASSERT_TRUE(drive_until(*client, events,
                          [&] { return events.count(ErrorCode::server_gone) > 0; }, 3s))
      << events.describe();
  // Reconnects after 25 to 50 ms of backoff, well inside the 500 ms.
  const Event event = client->poll(3s);
  EXPECT_FALSE(event.error.has_value()) << event.error->message;
  auto second_login = [&] {
    return server.inspect(
        [](const std::vector<Connection>& c) { return c.size() >= 2 && !c[1].frames.empty(); });
  };
  ASSERT_TRUE(drive_until(*client, events, second_login, 3s)) << events.describe();
  const Connection second = server.inspect([](const std::vector<Connection>& c) { return c[1]; });
  EXPECT_LT(second.frames[0].received_at - second.accepted_at, 1500ms)
      << "the login waited until poll(3s) timed out";
}

// ---- renewal and keepalive ----

TEST(ClientReconnect, TheConnectionIsRenewedBeforeItsMaximumAgeAndNoFrameIsLost) {
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  options.max_connection_age = 1s;
  auto client = connected_client(options);
  ASSERT_TRUE(client);
  ASSERT_FALSE(client->send("before-renewal"));
  Events events;
  EXPECT_TRUE(drive_until(*client, events, [&] { return client->stats().connects >= 2; }, 3s))
      << events.describe();
  ASSERT_GE(server.connection_count(), 2u);
  // Renewed in the last tenth of the age, not before.
  const auto accepted = server.inspect([](const std::vector<Connection>& c) {
    return c[1].accepted_at - c[0].accepted_at;
  });
  EXPECT_GE(accepted, 850ms);
  ASSERT_FALSE(client->send("after-renewal"));
  auto all_bodies = [&] {
    return server.inspect([](const std::vector<Connection>& c) {
      std::vector<std::string> out;
      for (const Connection& connection : c) {
        for (const std::string& body : bodies(connection)) out.push_back(body);
      }
      return out;
    });
  };
  auto contains = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  EXPECT_TRUE(drive_until(*client, events, [&] { return contains(all_bodies(), "after-renewal"); },
                          3s));
  EXPECT_TRUE(contains(all_bodies(), "before-renewal"));
  EXPECT_TRUE(events.errors.empty()) << events.describe();  // a renewal is not an error
  const Connection first = server.inspect([](const std::vector<Connection>& c) { return c[0]; });
  EXPECT_TRUE(first.ended);
  EXPECT_EQ(first.framing_error, "");
}

TEST(ClientReconnect, AnIdleConnectionCarriesKeepalives) {
  FakeServer server(certificates().server);
  Options options = test_options(server.port());
  options.keepalive = 300ms;
  options.keepalive_payload = "still-here";
  auto client = connected_client(options);
  ASSERT_TRUE(client);
  auto keepalives = [&] {
    return server.inspect([](const std::vector<Connection>& c) {
      std::vector<ReceivedFrame> found;
      if (c.empty()) return found;
      for (std::size_t i = 1; i < c[0].frames.size(); ++i) {  // after the login
        if (c[0].frames[i].body == "still-here") found.push_back(c[0].frames[i]);
      }
      return found;
    });
  };
  Events events;
  EXPECT_TRUE(drive_until(*client, events, [&] { return keepalives().size() >= 2; }, 2s))
      << events.describe();
  const auto found = keepalives();
  ASSERT_GE(found.size(), 2u);
  // Not more often than asked: TIMEs at least the keepalive apart (minus clock slack).
  EXPECT_GE(found[1].time - found[0].time, 250ms);
  EXPECT_EQ(server.connection_count(), 1u);
}

}  // namespace
}  // namespace iotsocket::client::test
