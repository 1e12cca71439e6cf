// The segment itself: creating it (and telling a live server's from a stale one), attaching
// to it, the mapping's life and the header's facts (design: README.md "Segments of earlier
// runs").
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <utility>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>

#include "shm/layout.hpp"

namespace iotsocket::shm {

namespace bip = boost::interprocess;
using namespace detail;

struct DeviceTable::Mapping {
  std::string name;
  bip::mapped_region region;
};
namespace {

// --- processes ---

struct ProcStat {
  char state = '?';
  std::uint64_t start_time = 0;
};

// State (field 3) and start time (field 22) of /proc/<pid>/stat; nullopt when unreadable.
std::optional<ProcStat> proc_stat(pid_t pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');  // the command name may contain anything
  if (p == nullptr) return std::nullopt;
  ProcStat st;
  int field = 2;
  for (const char* tok = p + 1; *tok != '\0';) {
    while (*tok == ' ') ++tok;
    if (*tok == '\0') break;
    ++field;
    if (field == 3) st.state = *tok;
    if (field == 22) {
      st.start_time = std::strtoull(tok, nullptr, 10);
      return st;
    }
    while (*tok != ' ' && *tok != '\0') ++tok;
  }
  return std::nullopt;
}

std::uint64_t own_start_time() noexcept {
  const auto st = proc_stat(::getpid());
  return st ? st->start_time : 0;
}

// Whether the master recorded in a segment still runs: the pid exists (EPERM: it does,
// as another user), is no zombie, and has the recorded start time (not a reused pid).
bool master_alive(std::int64_t pid, std::uint64_t start_time) noexcept {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  const auto p = static_cast<pid_t>(pid);
  if (::kill(p, 0) != 0 && errno != EPERM) return false;
  const auto st = proc_stat(p);
  if (!st) return true;  // no /proc (or hidden): trust kill()
  if (st->state == 'Z' || st->state == 'X') return false;
  return start_time == 0 || st->start_time == 0 || st->start_time == start_time;
}

// The segment a master of this name left: an error when its master is alive, else
// nothing (a stale or foreign segment is removed by the caller).
std::optional<std::string> check_existing(const std::string& name) {
  std::int64_t pid = 0;
  std::uint64_t start = 0;
  try {
    bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_only);
    bip::offset_t size = 0;
    if (!shm.get_size(size) || size < static_cast<bip::offset_t>(sizeof(Layout))) return std::nullopt;
    bip::mapped_region region(shm, bip::read_only, 0, sizeof(Layout));
    const auto* l = static_cast<const Layout*>(region.get_address());
    if (l->magic.load(std::memory_order_acquire) != kMagic) return std::nullopt;
    pid = l->master_pid;
    start = l->master_start;
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error) return std::nullopt;
    return "cannot open the existing shared memory segment " + display_name(name) + ": " + e.what();
  }
  if (pid != ::getpid() && master_alive(pid, start)) {
    return "shared memory segment " + display_name(name) + " is in use by iotsocketd pid " +
           std::to_string(pid) + " (another server with the same runtime.shm_name?)";
  }
  return std::nullopt;
}

// Constructs the header, counters and entries in a zeroed segment and publishes it.
void initialize(void* address, std::uint32_t capacity, std::uint32_t workers, const Geometry& g) {
  auto* l = new (address) Layout{};
  l->version = kVersion;
  l->master_pid = ::getpid();
  l->master_start = own_start_time();
  l->capacity = capacity;
  l->workers = workers;
  l->slot_count = g.slot_count;
  l->counters_offset = g.counters_offset;
  l->entries_offset = g.entries_offset;
  l->total_size = g.total_size;
  for (std::uint32_t w = 0; w < workers; ++w) new (counters_at(*l, w)) WorkerCounters{};
  for (std::uint32_t i = 0; i < g.slot_count; ++i) new (entries(*l) + i) Entry{};
  l->magic.store(kMagic, std::memory_order_release);
}

// Whether a mapped header describes a table that fits in `size` bytes.
bool consistent(const Layout& l, std::size_t size) noexcept {
  if (l.version != kVersion || l.capacity == 0 || l.capacity > kMaxCapacity ||
      l.workers == 0 || l.workers > kMaxWorkers) {
    return false;
  }
  const Geometry g = geometry(l.capacity, l.workers);
  return l.slot_count == g.slot_count && l.counters_offset == g.counters_offset &&
         l.entries_offset == g.entries_offset && l.total_size == g.total_size &&
         g.total_size <= size;
}

}  // namespace

// --- creation ---

Expected<DeviceTable, std::string> DeviceTable::create(const std::string& name,
                                                       std::uint32_t capacity,
                                                       std::uint32_t workers) {
  const std::string shown = display_name(name);
  try {
    if (capacity == 0 || capacity > kMaxCapacity) {
      return Unexpected("device table " + shown + ": capacity must be 1.." +
                        std::to_string(kMaxCapacity) + ", got " + std::to_string(capacity));
    }
    if (workers == 0 || workers > kMaxWorkers) {
      return Unexpected("device table " + shown + ": workers must be 1.." +
                        std::to_string(kMaxWorkers) + ", got " + std::to_string(workers));
    }
    if (auto error = check_existing(name)) return Unexpected(std::move(*error));
    bip::shared_memory_object::remove(name.c_str());  // stale: a crashed run, or not ours

    const Geometry g = geometry(capacity, workers);
    auto mapping = std::make_unique<Mapping>();
    mapping->name = name;
    bool created = false;
    try {
      // 0660: iotsocketctl, run by a member of the server's group, attaches read-write.
      bip::permissions perm;
      perm.set_permissions(0660);
      bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write, perm);
      created = true;
      shm.truncate(static_cast<bip::offset_t>(g.total_size));
      // Reserve the pages now: a full /dev/shm is an error here, not a SIGBUS in a worker.
      const int rc = ::posix_fallocate(shm.get_mapping_handle().handle, 0,
                                       static_cast<off_t>(g.total_size));
      if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
        bip::shared_memory_object::remove(name.c_str());
        return Unexpected("cannot reserve " + std::to_string(g.total_size) +
                          " bytes for shared memory segment " + shown + ": " +
                          std::strerror(rc) + " (is /dev/shm large enough?)");
      }
      mapping->region = bip::mapped_region(shm, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
      if (created) bip::shared_memory_object::remove(name.c_str());
      return Unexpected("cannot create shared memory segment " + shown + ": " + e.what());
    }
    initialize(mapping->region.get_address(), capacity, workers, g);
    return DeviceTable(std::move(mapping));
  } catch (const std::exception& e) {
    return Unexpected("cannot create shared memory segment " + shown + ": " + e.what());
  } catch (...) {
    return Unexpected("cannot create shared memory segment " + shown + ": unknown error");
  }
}

Expected<DeviceTable, std::string> DeviceTable::attach(const std::string& name) {
  const std::string shown = display_name(name);
  try {
    auto mapping = std::make_unique<Mapping>();
    mapping->name = name;
    try {
      bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
      bip::offset_t size = 0;
      if (!shm.get_size(size) || size < static_cast<bip::offset_t>(sizeof(Layout))) {
        return Unexpected("shared memory segment " + shown +
                          " is not an iotsocketd device table (too small)");
      }
      mapping->region = bip::mapped_region(shm, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
      if (e.get_error_code() == bip::not_found_error) {
        return Unexpected("no shared memory segment " + shown +
                          ": is iotsocketd running (runtime.shm_name)?");
      }
      return Unexpected("cannot attach to shared memory segment " + shown + ": " + e.what());
    }
    const auto* l = static_cast<const Layout*>(mapping->region.get_address());
    if (l->magic.load(std::memory_order_acquire) != kMagic) {
      return Unexpected("shared memory segment " + shown + " is not an iotsocketd device table");
    }
    if (!consistent(*l, mapping->region.get_size())) {
      return Unexpected("shared memory segment " + shown +
                        " is a device table of another iotsocketd version (restart iotsocketd "
                        "or use the matching iotsocketctl)");
    }
    return DeviceTable(std::move(mapping));
  } catch (const std::exception& e) {
    return Unexpected("cannot attach to shared memory segment " + shown + ": " + e.what());
  } catch (...) {
    return Unexpected("cannot attach to shared memory segment " + shown + ": unknown error");
  }
}

DeviceTable::DeviceTable(std::unique_ptr<Mapping> mapping) noexcept
    : mapping_(std::move(mapping)),
      layout_(static_cast<Layout*>(mapping_->region.get_address())) {}

DeviceTable::DeviceTable(DeviceTable&& other) noexcept
    : mapping_(std::move(other.mapping_)), layout_(std::exchange(other.layout_, nullptr)) {}

DeviceTable& DeviceTable::operator=(DeviceTable&& other) noexcept {
  if (this != &other) {
    mapping_ = std::move(other.mapping_);
    layout_ = std::exchange(other.layout_, nullptr);
  }
  return *this;
}

DeviceTable::~DeviceTable() = default;  // unmaps; the name stays until unlink()

void DeviceTable::unlink() noexcept {
  if (mapping_) bip::shared_memory_object::remove(mapping_->name.c_str());
}

std::uint32_t DeviceTable::capacity() const noexcept { return layout_->capacity; }
std::uint32_t DeviceTable::workers() const noexcept { return layout_->workers; }
pid_t DeviceTable::master_pid() const noexcept { return static_cast<pid_t>(layout_->master_pid); }

bool DeviceTable::master_running() const noexcept {
  return master_alive(layout_->master_pid, layout_->master_start);
}

}  // namespace iotsocket::shm
