// The worker's parts, each alone (worker/README.md): the connection table's slots, tags and
// generations; the order of deadlines; the push writer's framing, write-queue bound and
// hand-backs; the batching of settle reports; the login's duplicate policy against a real
// device table and a real SQLite registry. Sockets are real socketpairs; the master is the
// other end of a real channel.
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "common/channel.hpp"
#include "common/event_sink.hpp"
#include "common/registry.hpp"
#include "protocol/decoder.hpp"
#include "shm/device_table.hpp"
#include "worker/arrival_clock.hpp"
#include "worker/back_pressure.hpp"
#include "worker/connection_table.hpp"
#include "worker/deadlines.hpp"
#include "worker/login.hpp"
#include "worker/master_link.hpp"
#include "worker/push_writer.hpp"
#include "worker/settle_reports.hpp"

namespace iotsocket::worker::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using protocol::DeviceId;

constexpr DeviceId kDevice{1234567890};
constexpr const char* kKey = "1432qrzd23";

std::unique_ptr<Connection> connection(Fd socket = Fd{}) {
  return std::make_unique<Connection>(std::move(socket), PeerAddress{}, protocol::SessionLimits{});
}

struct SocketPair {
  Fd ours, device;
  SocketPair() {
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) throw std::runtime_error("socketpair");
    ours = Fd(fds[0]);
    device = Fd(fds[1]);
  }
};

// A login frame of kDevice at `time`.
protocol::FrameView frame_at(protocol::Time time, std::string_view key = kKey) {
  return protocol::FrameView{.device = kDevice, .time = time, .key = key, .body = "temp=1"};
}

// --- ConnectionTable ---

TEST(ConnectionTable, ReusedSlotsGetNewGenerationsAndOldTagsFindNothing) {
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  ConnectionTable table(epoll.get());
  Connection& a = table.add(connection());
  Connection& b = table.add(connection());
  EXPECT_EQ(a.slot, 0U);
  EXPECT_EQ(b.slot, 1U);
  EXPECT_NE(a.generation, b.generation);
  EXPECT_EQ(table.size(), 2U);
  const std::uint64_t tag_a = ConnectionTable::tag_of(a);
  EXPECT_EQ(table.find(tag_a), &a);

  table.remove(a);
  EXPECT_EQ(table.find(tag_a), nullptr);
  Connection& c = table.add(connection());
  EXPECT_EQ(c.slot, 0U);  // the freed slot again...
  EXPECT_NE(c.generation, 0U);
  EXPECT_EQ(table.find(tag_a), nullptr);  // ...under a tag the old one's events do not match
  EXPECT_EQ(table.find(ConnectionTable::tag_of(c)), &c);
  EXPECT_EQ(table.find(ConnectionTable::tag(ConnectionTable::kChannelSlot, 0)), nullptr);
  EXPECT_EQ(table.find(ConnectionTable::tag(7, c.generation)), nullptr);  // never used
  EXPECT_EQ(table.tags().size(), 2U);
}

TEST(ConnectionTable, GenerationsFitTheHolderWordAndSkipZero) {
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  ConnectionTable table(epoll.get());
  std::uint32_t last = 0;
  for (int i = 0; i < 1000; ++i) {
    Connection& c = table.add(connection());
    EXPECT_NE(c.generation, 0U);
    EXPECT_EQ(c.generation & ~ConnectionTable::kGenerationMask, 0U);
    EXPECT_NE(c.generation, last);
    last = c.generation;
    table.remove(c);
  }
}

TEST(ConnectionTable, PausedConnectionsComeBackOnceInOrderAndAClosedOneLeavesTheList) {
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  ConnectionTable table(epoll.get());
  SocketPair p1, p2;
  Connection& a = table.add(connection(std::move(p1.ours)));
  Connection& b = table.add(connection(std::move(p2.ours)));
  ASSERT_TRUE(table.watch(a));
  ASSERT_TRUE(table.watch(b));
  table.pause(b);
  table.pause(a);
  table.pause(b);  // once
  EXPECT_TRUE(a.paused);
  EXPECT_EQ(a.epoll_events, 0U);
  EXPECT_TRUE(table.any_paused());
  EXPECT_EQ(table.take_paused(), (std::vector{ConnectionTable::tag_of(b), ConnectionTable::tag_of(a)}));
  EXPECT_FALSE(table.any_paused());
  // A paused one that closes (a hang-up, its age) leaves the list.
  a.paused = b.paused = false;  // resumed, as the worker does with what take_paused() gave
  table.pause(a);
  table.pause(b);
  const std::uint64_t b_tag = ConnectionTable::tag_of(b);
  table.remove(a);
  EXPECT_EQ(table.paused_count(), 1U);
  EXPECT_EQ(table.take_paused(), (std::vector{b_tag}));
}

// --- ArrivalClock ---

const protocol::Time kT0 = protocol::to_time(std::chrono::system_clock::now());

protocol::Time at_ms(int ms) { return kT0 + protocol::Tick{std::chrono::milliseconds(ms)}; }

// A connection read in one pass and not reported by the next complete wait had nothing
// unread when that wait returned: what is read later came after it.
TEST(ArrivalClock, AConnectionNotReportedByACompleteWaitWasEmptyThen) {
  ArrivalClock clock;
  ArrivalMark mark;
  mark.start(at_ms(0));
  clock.pass_began(true, at_ms(10));
  EXPECT_EQ(clock.reading(mark, at_ms(11)).earliest, at_ms(0));  // since it was adopted
  clock.pass_began(true, at_ms(200));  // not reported here
  clock.pass_began(true, at_ms(400));
  const protocol::Arrival a = clock.reading(mark, at_ms(401));
  EXPECT_EQ(a.earliest, at_ms(200));
  EXPECT_EQ(a.latest, at_ms(401));
}

// Reported pass after pass, a backlog is read a record at a time: its bound stays where the
// streak began, however long the streak.
TEST(ArrivalClock, AStreakOfReadsKeepsTheBoundOfItsStart) {
  ArrivalClock clock;
  ArrivalMark mark;
  mark.start(at_ms(0));
  clock.pass_began(true, at_ms(100));
  clock.reading(mark, at_ms(100));
  clock.pass_began(true, at_ms(200));
  clock.pass_began(true, at_ms(300));
  EXPECT_EQ(clock.reading(mark, at_ms(300)).earliest, at_ms(200));
  for (int pass = 4; pass < 100; ++pass) {
    clock.pass_began(true, at_ms(pass * 100));
    EXPECT_EQ(clock.reading(mark, at_ms(pass * 100)).earliest, at_ms(200)) << pass;
  }
}

// A wait that returned maxevents may have left ready connections unreported: it proves
// nothing, and the bound stays at the last wait that saw every ready one.
TEST(ArrivalClock, AFullWaitProvesNothing) {
  ArrivalClock clock;
  ArrivalMark mark;
  mark.start(at_ms(0));
  clock.pass_began(true, at_ms(100));
  clock.reading(mark, at_ms(100));
  clock.pass_began(false, at_ms(200));  // full: c may have been ready and not reported
  clock.pass_began(false, at_ms(300));
  EXPECT_EQ(clock.reading(mark, at_ms(300)).earliest, at_ms(0));
}

// Paused (no EPOLLIN), a connection is never reported: the waits of the pause say nothing
// about it, and what it sent during the pause is judged from before the pause.
TEST(ArrivalClock, APausedConnectionKeepsTheBoundFromBeforeThePause) {
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  ConnectionTable table(epoll.get());
  SocketPair p;
  Connection& c = table.add(connection(std::move(p.ours)));
  ASSERT_TRUE(table.watch(c));
  ArrivalClock clock;
  c.arrival.start(at_ms(0));
  clock.pass_began(true, at_ms(100));
  clock.reading(c.arrival, at_ms(100));
  clock.pass_began(true, at_ms(200));
  ASSERT_EQ(clock.reading(c.arrival, at_ms(200)).earliest, at_ms(0));
  table.pause(c);
  for (int pass = 3; pass <= 300; ++pass) clock.pass_began(true, at_ms(pass * 100));  // 30 s
  const protocol::Arrival resumed = clock.reading(c.arrival, at_ms(30'001));
  EXPECT_EQ(resumed.earliest, at_ms(0));
  EXPECT_TRUE(protocol::within_tolerance(at_ms(1'000), resumed, std::chrono::seconds(3)));
  // Read again and then quiet for a complete wait: the bound moves up to that wait.
  clock.pass_began(true, at_ms(30'100));
  clock.pass_began(true, at_ms(30'200));
  EXPECT_EQ(clock.reading(c.arrival, at_ms(30'200)).earliest, at_ms(30'100));
}

// Seen empty (FIONREAD 0, nothing buffered), a connection's bound moves up to that moment:
// a long streak or an old pause no longer widens the interval.
TEST(ArrivalClock, CaughtUpEndsAStreak) {
  ArrivalClock clock;
  ArrivalMark mark;
  mark.start(at_ms(0));
  for (int pass = 1; pass <= 50; ++pass) {
    clock.pass_began(true, at_ms(pass * 100));
    ASSERT_EQ(clock.reading(mark, at_ms(pass * 100)).earliest, at_ms(0)) << pass;
  }
  mark.caught_up(at_ms(5'000));
  clock.pass_began(true, at_ms(5'100));
  EXPECT_EQ(clock.reading(mark, at_ms(5'100)).earliest, at_ms(5'000));
}

// --- BackPressure ---

class FullSink final : public Inbound {
 public:
  bool append(protocol::DeviceId, std::string_view) noexcept override { return false; }
  bool has_room(std::size_t) const noexcept override { return false; }
  void flush() noexcept override {}
  int writable_fd() const noexcept override { return -1; }
  std::optional<std::chrono::milliseconds> retry_in() const noexcept override { return std::nullopt; }
  std::size_t pending_bytes() const noexcept override { return 0; }
  std::uint64_t spooled_bytes() const noexcept override { return 0; }
  std::string why_full() const override { return "the spool is at spool.max_size"; }
};

// One episode from the first pause until a second with nothing paused; its time counted up
// to the last pause, its connections shown while they wait.
TEST(BackPressure, AnEpisodeLastsUntilASecondWithNothingPausedAndIsCounted) {
  shm::WorkerCounters counters;
  FullSink sink;
  BackPressure pressure(counters);
  const SteadyTime t0 = std::chrono::steady_clock::now();
  pressure.update(t0, 0, sink);
  EXPECT_FALSE(pressure.on());
  pressure.update(t0 + 10ms, 3, sink);
  EXPECT_TRUE(pressure.on());
  EXPECT_EQ(shm::WorkerCounters::get(counters.paused), 3U);
  pressure.update(t0 + 30s, 2, sink);  // a pass that resumed and paused again: the same episode
  pressure.update(t0 + 30s + 20ms, 0, sink);
  EXPECT_TRUE(pressure.on());  // not yet a quiet second
  EXPECT_EQ(shm::WorkerCounters::get(counters.paused), 0U);
  pressure.update(t0 + 31s + 20ms, 0, sink);
  EXPECT_FALSE(pressure.on());
  EXPECT_EQ(shm::WorkerCounters::get(counters.backpressure_ms), 29'990U);  // 10 ms .. 30 s
}

// --- Deadlines ---

class DeadlinesTest : public ::testing::Test {
 protected:
  // A connection accepted at t0, in `state` since t0.
  Connection& at_t0(ConnState state) {
    Connection& c = table_.add(connection());
    c.accepted_at = c.phase_started_at = c.last_frame_at = t0_;
    c.state = state;
    return c;
  }

  const config::Timeouts timeouts_{.idle = 3s, .handshake = 1s, .first_frame = 2s, .max_connection_age = 10s};
  Fd epoll_{::epoll_create1(EPOLL_CLOEXEC)};
  ConnectionTable table_{epoll_.get()};
  Deadlines deadlines_{timeouts_};
  const SteadyTime t0_ = std::chrono::steady_clock::now();
};

TEST_F(DeadlinesTest, EachStateClosesAtItsOwnDeadlineInOrder) {
  Connection& shaking = at_t0(ConnState::handshake);
  Connection& silent = at_t0(ConnState::awaiting_login);
  Connection& live = at_t0(ConnState::live);
  for (Connection* c : {&live, &silent, &shaking}) deadlines_.schedule(*c);

  EXPECT_EQ(deadlines_.next_due(t0_ + 900ms, table_).connection, nullptr);
  auto due = deadlines_.next_due(t0_ + 1500ms, table_);
  ASSERT_EQ(due.connection, &shaking);
  EXPECT_EQ(due.reason, "handshake_timeout");
  table_.remove(shaking);
  EXPECT_EQ(deadlines_.next_due(t0_ + 1500ms, table_).connection, nullptr);

  live.last_frame_at = t0_ + 2s;  // a frame came: its idle deadline moves on
  due = deadlines_.next_due(t0_ + 3500ms, table_);
  ASSERT_EQ(due.connection, &silent);
  EXPECT_EQ(due.reason, "first_frame_timeout");
  table_.remove(silent);
  EXPECT_EQ(deadlines_.next_due(t0_ + 3500ms, table_).connection, nullptr);  // rescheduled, not due
  EXPECT_GT(deadlines_.timeout_ms(t0_ + 3500ms), 0);

  due = deadlines_.next_due(t0_ + 5500ms, table_);
  ASSERT_EQ(due.connection, &live);
  EXPECT_EQ(due.reason, "idle_timeout");
}

TEST_F(DeadlinesTest, APausedConnectionOnlyAgesAndTheAgeWins) {
  Connection& c = at_t0(ConnState::live);
  c.paused = true;  // silent because of us
  deadlines_.schedule(c);
  EXPECT_EQ(deadlines_.deadline_of(c), t0_ + 10s);
  EXPECT_EQ(deadlines_.next_due(t0_ + 5s, table_).connection, nullptr);
  const auto due = deadlines_.next_due(t0_ + 10s, table_);
  ASSERT_EQ(due.connection, &c);
  EXPECT_EQ(due.reason, "max_age");
}

// --- the master's end, for the parts that talk to it ---

struct Master {
  Fd end;
  Fd worker_end;
  EventSink events;  // off
  std::unique_ptr<MasterLink> link;
  Master() {
    if (!channel::make_pair(end, worker_end)) throw std::runtime_error("channel");
    link = std::make_unique<MasterLink>(std::move(worker_end), 7, events);
  }
  std::vector<channel::Received> receive_all() {
    std::vector<channel::Received> out;
    for (channel::Received r = channel::receive(end.get()); r.io == Io::ok; r = channel::receive(end.get())) {
      out.push_back(std::move(r));
    }
    return out;
  }
};

// --- MasterLink ---

TEST(MasterLinkTest, AMessageThatCannotGoIsDroppedAloneAndTheOnesBehindItStillGo) {
  Master master;
  const std::string payload(30'000, 'p');
  std::uint64_t pushes = 0;
  while (master.link->waiting() == 0 && pushes < 10'000) {
    master.link->send(channel::Message{.cmd = channel::Cmd::push, .seq = ++pushes}, payload);
  }
  ASSERT_GT(master.link->waiting(), 0U);
  // A payload on a command that carries none: sendmsg is never tried, the send is an error.
  master.link->send(channel::Message{.cmd = channel::Cmd::ready}, "no payload here");
  master.link->say(channel::Cmd::connection_closed);
  master.link->say(channel::Cmd::drained);

  std::vector<channel::Cmd> got;
  for (int rounds = 0; rounds < 1000 && (master.link->waiting() > 0 || got.size() < pushes + 2); ++rounds) {
    for (auto& r : master.receive_all()) got.push_back(r.message.cmd);
    master.link->flush();
  }
  for (auto& r : master.receive_all()) got.push_back(r.message.cmd);
  ASSERT_EQ(got.size(), pushes + 2);
  EXPECT_EQ(std::count(got.begin(), got.end(), channel::Cmd::push), static_cast<std::ptrdiff_t>(pushes));
  EXPECT_EQ(got[got.size() - 2], channel::Cmd::connection_closed);
  EXPECT_EQ(got.back(), channel::Cmd::drained);
  EXPECT_EQ(master.link->waiting(), 0U);
}

// --- SettleReports ---

TEST(SettleReports, WaitsForTheIntervalThenSendsMessageSizedBatches) {
  Master master;
  SettleReports settled;
  const SteadyTime t0 = std::chrono::steady_clock::now();
  EXPECT_FALSE(settled.due());
  settled.report(t0, *master.link, true);  // nothing waits: nothing sent
  EXPECT_TRUE(master.receive_all().empty());

  settled.add(1);
  settled.report(t0, *master.link);  // the first report goes at once (none before)
  auto got = master.receive_all();
  ASSERT_EQ(got.size(), 1U);
  EXPECT_EQ(got[0].message.cmd, channel::Cmd::pushes_settled);
  EXPECT_EQ(got[0].message.generation, 7U);

  settled.add(2);
  settled.add(3);
  EXPECT_EQ(settled.due(), t0 + SettleReports::kInterval);
  settled.report(t0 + 5ms, *master.link);  // within the interval: waits
  EXPECT_TRUE(master.receive_all().empty());
  EXPECT_EQ(settled.waiting(), 2U);

  const std::size_t many = channel::kSeqsPerMessage + 5;
  for (std::size_t i = 0; i < many - 2; ++i) settled.add(100 + i);
  settled.report(t0 + 6ms, *master.link);  // a message's worth waits: at once
  got = master.receive_all();
  ASSERT_EQ(got.size(), 2U);
  const auto first = channel::decode_settled(got[0].payload);
  const auto second = channel::decode_settled(got[1].payload);
  ASSERT_TRUE(first && second);
  EXPECT_EQ(first->size(), channel::kSeqsPerMessage);
  EXPECT_EQ(second->size(), 5U);
  EXPECT_EQ(first->front(), 2U);
  EXPECT_EQ(second->back(), 100 + many - 3);
  EXPECT_EQ(settled.waiting(), 0U);
  EXPECT_FALSE(settled.due());
}

// --- PushWriter ---

class PushWriterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    table_ = std::make_unique<ConnectionTable>(epoll_.get());
    writer_ = std::make_unique<PushWriter>(*table_, settled_, *master_.link, master_.events, counters_,
                                           push_, limits_);
    SocketPair pair;
    device_ = std::move(pair.device);
    Connection& c = table_->add(connection(std::move(pair.ours)));
    ASSERT_TRUE(table_->watch(c));
    protocol::ReplayWindow replay;
    ASSERT_FALSE(c.session.admit(frame_at(wall_now()), wall_now(), replay));  // live as kDevice
    c.state = ConnState::live;
    c_ = &c;
  }
  channel::Message push(std::uint64_t seq) {
    return channel::Message{.cmd = channel::Cmd::push, .device = kDevice.value, .slot = c_->slot,
                            .conn_generation = c_->generation, .queued_at_ns = static_cast<std::int64_t>(seq),
                            .seq = seq};
  }
  std::string read_device() {
    std::string out;
    char buf[65536];
    for (ssize_t n; (n = ::read(device_.get(), buf, sizeof buf)) > 0;) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }

  Master master_;
  Fd epoll_;
  std::unique_ptr<ConnectionTable> table_;
  SettleReports settled_;
  shm::WorkerCounters counters_{};
  config::Push push_{};
  protocol::SessionLimits limits_{};
  std::unique_ptr<PushWriter> writer_;
  Fd device_;
  Connection* c_ = nullptr;
};

TEST_F(PushWriterTest, PushesAreFramedForTheDeviceInOrderAndSettled) {
  EXPECT_EQ(writer_->queue(*c_, "first", push(1)), "");
  EXPECT_EQ(writer_->queue(*c_, "second push", push(2)), "");
  EXPECT_FALSE(c_->out);  // all written: the queue's memory is given back

  protocol::Decoder decoder(protocol::Direction::from_server);
  decoder.feed(read_device());
  std::vector<std::string> payloads;
  for (auto d = decoder.next(); d.status == protocol::DecodeStatus::frame; d = decoder.next()) {
    EXPECT_EQ(d.frame.device, kDevice);
    payloads.emplace_back(d.frame.body);
  }
  EXPECT_EQ(payloads, (std::vector<std::string>{"first", "second push"}));
  EXPECT_EQ(counters_.pushes_out.load(), 2U);
  EXPECT_EQ(settled_.waiting(), 2U);
}

TEST_F(PushWriterTest, ADeviceThatDoesNotReadIsClosedPastTheQueueLimitAndItsPushesGoBack) {
  push_.write_queue = 64 * 1024;
  const std::string payload(4000, 'p');
  std::string_view why;
  std::uint64_t seq = 0;
  while (why.empty() && seq < 10'000) why = writer_->queue(*c_, payload, push(++seq));
  EXPECT_EQ(why, "write_queue_full");
  ASSERT_TRUE(c_->out);
  EXPECT_GT(c_->out->unsent(), push_.write_queue);
  EXPECT_NE(c_->epoll_events & EPOLLOUT, 0U);  // waits to write
  const std::size_t unsent = c_->out->entries.size();
  const std::size_t settled = settled_.waiting();
  EXPECT_EQ(settled + unsent, seq);  // every push either written whole or waiting

  writer_->hand_back(*c_);
  EXPECT_FALSE(c_->out);
  const auto back = master_.receive_all();
  ASSERT_EQ(back.size(), unsent);
  for (std::size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].message.cmd, channel::Cmd::push_returned);
    EXPECT_EQ(back[i].message.seq, settled + 1 + i);  // in order, after the last written
    EXPECT_EQ(back[i].message.more, i + 1 < back.size());
    EXPECT_EQ(back[i].payload, payload);
  }
}

TEST_F(PushWriterTest, APushForAConnectionThatIsGoneBouncesToTheMaster) {
  writer_->bounce(push(42), "late");
  const auto back = master_.receive_all();
  ASSERT_EQ(back.size(), 1U);
  EXPECT_EQ(back[0].message.cmd, channel::Cmd::push_returned);
  EXPECT_EQ(back[0].message.seq, 42U);
  EXPECT_EQ(back[0].message.device, kDevice.value);
  EXPECT_EQ(back[0].payload, "late");
}

// --- Login: a real device table, a real SQLite registry ---

class LoginTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "login_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    auto registry = DeviceRegistry::open((dir_ / "devices.db").string(), DeviceRegistry::Mode::read_write);
    ASSERT_TRUE(registry) << registry.error();
    registry_.emplace(std::move(*registry));
    ASSERT_TRUE(registry_->add(kDevice, std::string(kKey)));
    shm_name_ = "iotsocket-login-test-" + std::to_string(::getpid());
    auto table = shm::DeviceTable::create(shm_name_, 16, 2);
    ASSERT_TRUE(table) << table.error();
    table_.emplace(std::move(*table));
    epoll_ = Fd(::epoll_create1(EPOLL_CLOEXEC));
    connections_ = std::make_unique<ConnectionTable>(epoll_.get());
  }
  void TearDown() override {
    if (table_) table_->unlink();
    fs::remove_all(dir_);
  }
  Login login(std::uint32_t worker) {
    return Login(*registry_, *table_, devices_, limits_, worker, protocol::Time{});
  }
  Connection& fresh() {
    Connection& c = connections_->add(connection());
    c.state = ConnState::awaiting_login;
    return c;
  }
  // The device logged in on worker 0 with a frame of `now`, under `policy`.
  Connection& first_login(config::DuplicatePolicy policy, protocol::Time now) {
    devices_.duplicate = policy;
    Connection& c = fresh();
    EXPECT_EQ(login(0).log_in(c, frame_at(now), protocol::Arrival::at(now)), "");
    return c;
  }

  fs::path dir_;
  std::string shm_name_;
  std::optional<DeviceRegistry> registry_;
  std::optional<shm::DeviceTable> table_;
  config::Devices devices_{};
  protocol::SessionLimits limits_{};
  Fd epoll_;
  std::unique_ptr<ConnectionTable> connections_;
};

TEST_F(LoginTest, ARegisteredDeviceLogsInAndHoldsItsLease) {
  Login worker0 = login(0);
  Connection& c = fresh();
  const protocol::Time now = wall_now();
  EXPECT_EQ(worker0.log_in(c, frame_at(now), protocol::Arrival::at(now)), "");
  EXPECT_EQ(c.state, ConnState::live);
  EXPECT_TRUE(c.lease.holds());
  EXPECT_EQ(table_->holder(kDevice), worker0.holder_of(c));
  EXPECT_EQ(c.session.device(), kDevice);
}

TEST_F(LoginTest, TheRegistrysVerdictRefusesWithoutAClaim) {
  Login worker0 = login(0);
  const protocol::Time now = wall_now();
  Connection& wrong = fresh();
  EXPECT_EQ(worker0.log_in(wrong, frame_at(now, "not-the-key"), protocol::Arrival::at(now)), "wrong_key");
  EXPECT_FALSE(wrong.lease);
  Connection& unknown = fresh();
  auto frame = frame_at(now);
  frame.device = DeviceId{42};
  EXPECT_EQ(worker0.log_in(unknown, frame, protocol::Arrival::at(now)), "unknown_device");
  EXPECT_FALSE(table_->holder(kDevice));
  EXPECT_FALSE(table_->holder(DeviceId{42}));
}

TEST_F(LoginTest, DuplicateRejectKeepsTheFirstConnection) {
  const protocol::Time now = wall_now();
  Connection& first = first_login(config::DuplicatePolicy::reject, now);
  Connection& second = fresh();
  EXPECT_EQ(login(1).log_in(second, frame_at(now + protocol::Tick{10}), protocol::Arrival::at(now)), "duplicate_login");
  EXPECT_FALSE(second.lease);
  EXPECT_TRUE(first.lease.holds());
  EXPECT_EQ(table_->holder(kDevice), login(0).holder_of(first));
}

TEST_F(LoginTest, DuplicateReplaceMovesTheDeviceButNotForAStaleFrame) {
  const protocol::Time now = wall_now();
  Connection& first = first_login(config::DuplicatePolicy::replace, now);
  Login worker1 = login(1);

  // A replayed TIME must not displace the live connection.
  Connection& replayed = fresh();
  EXPECT_EQ(worker1.log_in(replayed, frame_at(now), protocol::Arrival::at(now)), "replayed_time");
  EXPECT_TRUE(first.lease.holds());

  Connection& second = fresh();
  ASSERT_EQ(worker1.log_in(second, frame_at(now + protocol::Tick{10}), protocol::Arrival::at(now)), "");
  EXPECT_TRUE(second.lease.holds());
  EXPECT_FALSE(first.lease.holds());  // the old connection learns it at its next frame
  EXPECT_EQ(table_->holder(kDevice), worker1.holder_of(second));
  EXPECT_GE(second.replay.floor, now);  // the window starts above what the first accepted
}

}  // namespace
}  // namespace iotsocket::worker::test
