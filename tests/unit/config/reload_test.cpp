// config/reload.hpp: which changed settings a SIGHUP applies and which wait for a restart.
#include "config/reload.hpp"

#include <gtest/gtest.h>

namespace iotsocket::config {
namespace {

using Names = std::vector<std::string>;
using namespace std::chrono_literals;

TEST(Reload, TakesTheReloadableSettingsAndKeepsTheRestartOnlyOnes) {
  Config running;
  Config next;
  next.devices.sqlite = "/srv/other.db";
  next.devices.duplicate = DuplicatePolicy::replace;
  next.timeouts.idle = 30s;
  next.protocol.flood_frames = 10;
  next.limits.per_ip = 7;
  next.limits.max_devices = 5;     // restart-only
  next.push.write_queue = 1 << 20;
  next.shutdown.drain = 2s;
  next.log.level = "debug";
  next.log.file = "/var/log/x.log";  // restart-only
  next.workers = 3;                  // restart-only
  const Config merged = with_reloadable(running, next);
  EXPECT_EQ(merged.devices, next.devices);
  EXPECT_EQ(merged.timeouts, next.timeouts);
  EXPECT_EQ(merged.protocol, next.protocol);
  EXPECT_EQ(merged.limits.per_ip, 7u);
  EXPECT_EQ(merged.limits.max_devices, running.limits.max_devices);
  EXPECT_EQ(merged.push.write_queue, next.push.write_queue);
  EXPECT_EQ(merged.shutdown, next.shutdown);
  EXPECT_EQ(merged.log.level, "debug");
  EXPECT_EQ(merged.log.file, "");
  EXPECT_EQ(merged.workers, 0u);

  EXPECT_EQ(reloadable_changes(running, merged),
            (Names{"devices.sqlite", "devices.duplicate", "timeouts.idle", "protocol.flood_frames",
                   "limits.per_ip", "push.write_queue", "shutdown.drain", "log.level"}));
  // The offline queue's default path sits beside the registry: it moves with it.
  EXPECT_EQ(restart_only_changes(running, next),
            (Names{"workers", "limits.max_devices", "push.offline_db", "log.file"}));
}

TEST(Reload, NothingChangedIsNothingToSay) {
  const Config c;
  EXPECT_TRUE(reloadable_changes(c, c).empty());
  EXPECT_TRUE(restart_only_changes(c, c).empty());
  EXPECT_EQ(with_reloadable(c, c), c);
}

TEST(Reload, EveryRestartOnlySectionIsNamed) {
  const Config running;
  auto named = [&](auto change) {
    Config next = running;
    change(next);
    return restart_only_changes(running, next);
  };
  EXPECT_EQ(named([](Config& c) { c.listen[0].port = 1; }), Names{"listen"});
  EXPECT_EQ(named([](Config& c) { c.tls.enabled = false; }), Names{"tls.enabled"});
  EXPECT_EQ(named([](Config& c) { c.fifo.push = "/x"; }), Names{"fifo"});
  EXPECT_EQ(named([](Config& c) { c.spool.memory = 1; }), Names{"spool"});
  EXPECT_EQ(named([](Config& c) { c.runtime.shm_name = "x"; }), Names{"runtime"});
  EXPECT_EQ(named([](Config& c) { c.push.offline_db = "/x.db"; }), Names{"push.offline_db"});
  // The certificate files are the TLS reload's, not a restart's.
  EXPECT_TRUE(named([](Config& c) { c.tls.cert = "/new.pem"; }).empty());
}

}  // namespace
}  // namespace iotsocket::config
