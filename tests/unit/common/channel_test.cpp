// The master <-> worker channel over a real socketpair: records arrive whole and in order,
// a payload travels only with the commands that carry one, a passed socket arrives open,
// and a full channel is a value (want_write), not an error.
#include "common/channel.hpp"
#include "common/channel_end.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

namespace iotsocket::channel {
namespace {

struct Pair {
  Fd master;
  Fd worker;
};

Pair make() {
  Pair p;
  EXPECT_TRUE(make_pair(p.master, p.worker)) << std::strerror(errno);
  return p;
}

TEST(Channel, APushAndItsPayloadArriveWholeAndInOrder) {
  Pair p = make();
  const Message push{.cmd = Cmd::push, .generation = 7, .device = 1234567890, .slot = 3,
                     .conn_generation = 9, .queued_at_ns = 42, .seq = 11};
  ASSERT_EQ(send(p.master.get(), push, std::string(kMaxPayload, 'x')), Io::ok);
  ASSERT_EQ(send(p.master.get(), Message{.cmd = Cmd::fence, .device = 5}), Io::ok);

  Received first = receive(p.worker.get());
  ASSERT_EQ(first.io, Io::ok);
  EXPECT_EQ(first.message.cmd, Cmd::push);
  EXPECT_EQ(first.message.generation, 7u);
  EXPECT_EQ(first.message.device, 1234567890u);
  EXPECT_EQ(first.message.slot, 3u);
  EXPECT_EQ(first.message.conn_generation, 9u);
  EXPECT_EQ(first.message.queued_at_ns, 42);
  EXPECT_EQ(first.message.seq, 11u);
  EXPECT_EQ(first.payload, std::string(kMaxPayload, 'x'));
  Received second = receive(p.worker.get());
  ASSERT_EQ(second.io, Io::ok);
  EXPECT_EQ(second.message.cmd, Cmd::fence);
  EXPECT_TRUE(second.payload.empty());
  EXPECT_EQ(receive(p.worker.get()).io, Io::want_read);
}

TEST(Channel, AFullMessageOfSettledSeqsArrivesWhole) {
  Pair p = make();
  std::vector<std::uint64_t> seqs(kSeqsPerMessage);
  for (std::size_t i = 0; i < seqs.size(); ++i) seqs[i] = 1'000'000'000'000 + i;
  const std::string payload = encode_settled(seqs);
  ASSERT_EQ(payload.size(), kMaxPayload);
  ASSERT_EQ(send(p.worker.get(), Message{.cmd = Cmd::pushes_settled}, payload), Io::ok);
  Received r = receive(p.master.get());
  ASSERT_EQ(r.io, Io::ok);
  EXPECT_EQ(r.message.cmd, Cmd::pushes_settled);
  EXPECT_EQ(decode_settled(r.payload), seqs);
}

TEST(ChannelPayloads, SettledSeqsOfAPartialSizeAreRefused) {
  const std::uint64_t seqs[] = {1, 2};
  const std::string payload = encode_settled(seqs);
  EXPECT_EQ(decode_settled(payload), (std::vector<std::uint64_t>{1, 2}));
  EXPECT_EQ(decode_settled(payload.substr(0, 9)), std::nullopt);
  EXPECT_EQ(decode_settled(""), std::vector<std::uint64_t>{});
}

TEST(ChannelPayloads, TlsFilesGoThereAndBackAndNeedTheirSeparator) {
  const auto back = decode_tls_files(encode_tls_files({.cert = "/etc/c.pem", .key = "/etc/k.pem"}));
  ASSERT_TRUE(back);
  EXPECT_EQ(back->cert, "/etc/c.pem");
  EXPECT_EQ(back->key, "/etc/k.pem");
  EXPECT_EQ(decode_tls_files("/etc/c.pem"), std::nullopt);
}

// The end's own queue: what finds the channel full waits, in order, behind what waits
// already, with EPOLLOUT interest while it does; flush() sends it when there is room.
TEST(ChannelEnd, WhatFindsTheChannelFullWaitsInOrderAndGoesOnFlush) {
  Pair p = make();
  End end(std::move(p.master));
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  ASSERT_TRUE(end.watch(epoll.get(), 7));
  const std::string payload(30'000, 'p');
  std::int64_t next = 0;
  while (end.waiting() < 3) {
    ASSERT_EQ(end.send(Message{.cmd = Cmd::push, .queued_at_ns = next++}, payload), Io::ok);
  }
  EXPECT_GT(end.waiting_bytes(), 3 * payload.size());
  EXPECT_EQ(end.send_socket(Message{.cmd = Cmd::new_connection}, 0), Io::want_write);
  epoll_event ev{};
  EXPECT_EQ(::epoll_wait(epoll.get(), &ev, 1, 0), 0);  // full: not writable yet

  std::int64_t expected = 0;
  auto read_all = [&] {
    for (Received r = receive(p.worker.get()); r.io == Io::ok; r = receive(p.worker.get())) {
      ASSERT_EQ(r.message.queued_at_ns, expected++);
    }
  };
  for (int rounds = 0; end.waiting() > 0 && rounds < 100; ++rounds) {
    read_all();
    ASSERT_EQ(::epoll_wait(epoll.get(), &ev, 1, 1000), 1);
    EXPECT_EQ(ev.data.u64, 7u);
    ASSERT_TRUE(ev.events & EPOLLOUT);
    EXPECT_NE(end.flush(), Io::error);
  }
  read_all();
  EXPECT_EQ(expected, next);
  EXPECT_EQ(end.waiting(), 0u);
  EXPECT_EQ(end.waiting_bytes(), 0u);
  EXPECT_EQ(::epoll_wait(epoll.get(), &ev, 1, 0), 0);  // EPOLLOUT interest gone
}

TEST(Channel, APayloadOverTheLimitIsRefusedAndNothingIsSent) {
  Pair p = make();
  EXPECT_EQ(send(p.master.get(), Message{.cmd = Cmd::push}, std::string(kMaxPayload + 1, 'x')),
            Io::error);
  EXPECT_EQ(errno, EMSGSIZE);
  EXPECT_EQ(receive(p.worker.get()).io, Io::want_read);
}

TEST(Channel, APayloadOnACommandThatCarriesNoneIsAnError) {
  Pair p = make();
  ASSERT_EQ(send(p.master.get(), Message{.cmd = Cmd::shutdown}, std::string("stray")), Io::ok);
  EXPECT_EQ(receive(p.worker.get()).io, Io::error);
}

TEST(Channel, APassedSocketArrivesOpenWithItsNewConnection) {
  Pair p = make();
  int pipe_fds[2];
  ASSERT_EQ(::pipe(pipe_fds), 0);
  Fd read_end(pipe_fds[0]);
  Fd write_end(pipe_fds[1]);
  ASSERT_EQ(send(p.master.get(), Message{.cmd = Cmd::new_connection}, read_end.get()), Io::ok);
  Received r = receive(p.worker.get());
  ASSERT_EQ(r.io, Io::ok);
  ASSERT_TRUE(r.fd.valid());
  EXPECT_FALSE(r.fd_lost);
  EXPECT_NE(r.fd.get(), read_end.get());
  // The same pipe: what is written at the other end can be read from the passed one.
  ASSERT_EQ(::write(write_end.get(), "ok", 2), 2);
  char buffer[2];
  ASSERT_EQ(::read(r.fd.get(), buffer, 2), 2);
  EXPECT_EQ(std::string(buffer, 2), "ok");
  EXPECT_NE(::fcntl(r.fd.get(), F_GETFD) & FD_CLOEXEC, 0);
}

TEST(Channel, ANewConnectionWithoutItsSocketIsAnError) {
  Pair p = make();
  ASSERT_EQ(send(p.master.get(), Message{.cmd = Cmd::new_connection}), Io::ok);
  EXPECT_EQ(receive(p.worker.get()).io, Io::error);
}

TEST(Channel, AFullChannelIsWantWriteAndWhatWasSentStillArrivesWhole) {
  Pair p = make();
  const std::string payload(30'000, 'p');
  std::size_t sent = 0;
  Io io = Io::ok;
  for (; sent < 100'000; ++sent) {
    const Message push{.cmd = Cmd::push, .queued_at_ns = static_cast<std::int64_t>(sent)};
    io = send(p.master.get(), push, payload);
    if (io != Io::ok) break;
  }
  ASSERT_EQ(io, Io::want_write);
  ASSERT_GT(sent, 0u);
  for (std::size_t i = 0; i < sent; ++i) {
    Received r = receive(p.worker.get());
    ASSERT_EQ(r.io, Io::ok) << "message " << i;
    ASSERT_EQ(r.message.queued_at_ns, static_cast<std::int64_t>(i));
    ASSERT_EQ(r.payload.size(), payload.size());
  }
  EXPECT_EQ(receive(p.worker.get()).io, Io::want_read);
}

// A worker that dies with messages it never read: the kernel flags the master's end with
// ECONNRESET, which the first read reports ahead of what the worker had sent. Those
// messages (pushes handed back, settles) must still be read, and then the end.
TEST(Channel, WhatAPeerSentBeforeItClosedWithUnreadMessagesIsStillRead) {
  Pair p = make();
  ASSERT_EQ(send(p.master.get(), Message{.cmd = Cmd::push}, std::string("never read")), Io::ok);
  for (std::int64_t i = 1; i <= 3; ++i) {
    ASSERT_EQ(send(p.worker.get(), Message{.cmd = Cmd::push_returned, .queued_at_ns = i},
                   std::string("back")),
              Io::ok);
  }
  p.worker.reset();
  for (std::int64_t i = 1; i <= 3; ++i) {
    Received r = receive(p.master.get());
    ASSERT_EQ(r.io, Io::ok) << "message " << i;
    EXPECT_EQ(r.message.queued_at_ns, i);
  }
  EXPECT_EQ(receive(p.master.get()).io, Io::closed);
}

TEST(Channel, TheOtherEndClosedIsClosed) {
  Pair p = make();
  p.master.reset();
  EXPECT_EQ(receive(p.worker.get()).io, Io::closed);
}

}  // namespace
}  // namespace iotsocket::channel
