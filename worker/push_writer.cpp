#include "worker/push_writer.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <optional>

#include <spdlog/spdlog.h>

#include "protocol/encoder.hpp"
#include "protocol/errors.hpp"
#include "worker/connection_table.hpp"
#include "worker/master_link.hpp"
#include "worker/settle_reports.hpp"
#include "worker/tls_io.hpp"

namespace iotsocket::worker {

std::string_view PushWriter::queue(Connection& c, std::string payload, const channel::Message& m) noexcept {
  if (!c.out) c.out = std::make_unique<WriteQueue>();
  WriteQueue& q = *c.out;
  const std::size_t before = q.bytes.size();
  const auto time = c.push_times.next(wall_now(), limits_.time_tolerance);
  std::optional<protocol::FrameError> error;
  if (time) error = protocol::append_push_frame(q.bytes, *c.session.device(), *time, payload);
  if (error) {
    // The master checked the payload (parse_record); this is a broken invariant.
    spdlog::critical("device={} push not framed: {}; dropped", device_text(c), protocol::name(*error));
    settled_.add(m.seq);
    if (q.entries.empty() && q.unsent() == 0) c.out.reset();
    return {};
  }
  // Unframed (end past the bytes) when it cannot be sent: it is handed back with the rest.
  q.entries.push_back(WriteQueue::Entry{.end = time ? q.bytes.size() : ~std::size_t{0},
                                        .payload = std::move(payload),
                                        .queued_at_ns = m.queued_at_ns,
                                        .seq = m.seq});
  // More than one push per 0.1 ms for the whole time tolerance: the device would refuse
  // TIMEs that far ahead of its clock.
  if (!time) return "push_rate";
  if (q.unsent() > config_.write_queue && before > q.written) return "write_queue_full";
  c.lease.raise_push_mark(*time);
  if (q.retry_len == 0) return write(c);
  return {};
}

std::string_view PushWriter::write(Connection& c) noexcept {
  WriteQueue& q = *c.out;
  while (q.unsent() > 0) {
    const std::size_t len = q.retry_len != 0 ? q.retry_len : std::min(q.unsent(), kWriteChunk);
    std::size_t wrote = 0;
    switch (write_some(c, q.bytes.data() + q.written, len, wrote)) {
      case Io::ok:
        q.retry_len = 0;
        q.written += wrote;
        shm::WorkerCounters::add(counters_.bytes_out, wrote);
        break;
      case Io::want_write:
      case Io::want_read:
        q.retry_len = len;
        connections_.set_interest(c, c.paused ? 0u : std::uint32_t{EPOLLIN});
        return {};
      case Io::closed:
        return "peer_closed";
      case Io::error: {
        const int saved = errno;
        spdlog::info("write failed device={} peer={}: {}", device_text(c), c.peer.to_string(),
                     last_io_error(saved));
        return "write_error";
      }
    }
    settle_written(c, q);
  }
  c.out.reset();  // all written: give the memory back
  connections_.set_interest(c, c.paused ? 0u : std::uint32_t{EPOLLIN});
  return {};
}

// The pushes whose frames are now on the wire whole.
void PushWriter::settle_written(Connection& c, WriteQueue& q) noexcept {
  std::size_t done = 0;
  while (done < q.entries.size() && q.entries[done].end <= q.written) ++done;
  if (done == 0) return;
  counters_.pushes_out.fetch_add(done, std::memory_order_relaxed);
  for (std::size_t i = 0; i < done; ++i) {
    events_.push_delivered(*c.session.device());
    settled_.add(q.entries[i].seq);
  }
  q.entries.erase(q.entries.begin(), q.entries.begin() + static_cast<std::ptrdiff_t>(done));
}

void PushWriter::hand_back(Connection& c) noexcept {
  if (!c.out) return;
  auto& entries = c.out->entries;
  const std::uint64_t device = c.session.device() ? c.session.device()->value : 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    master_.send(channel::Message{.cmd = channel::Cmd::push_returned,
                                  .device = device,
                                  .slot = c.slot,
                                  .conn_generation = c.generation,
                                  .queued_at_ns = entries[i].queued_at_ns,
                                  .more = i + 1 < entries.size(),
                                  .seq = entries[i].seq},
                 entries[i].payload);
  }
  if (!entries.empty()) {
    spdlog::info("device={} {} unsent pushes go back to its offline queue", device_text(c), entries.size());
  }
  c.out.reset();
}

void PushWriter::bounce(const channel::Message& m, std::string payload) noexcept {
  master_.send(channel::Message{.cmd = channel::Cmd::push_returned,
                                .device = m.device,
                                .slot = m.slot,
                                .conn_generation = m.conn_generation,
                                .queued_at_ns = m.queued_at_ns,
                                .seq = m.seq},
               payload);
}

}  // namespace iotsocket::worker
