// The real parts that push delivery works on, in a temporary directory: a shared-memory
// device table for two workers, an offline queue and a registry, each in its own file.
#pragma once

#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/registry.hpp"
#include "master/offline_queue.hpp"
#include "shm/device_table.hpp"

namespace iotsocket::master {

struct PushState {
  // With `device` in the registry. Asserts: call it in ASSERT_NO_FATAL_FAILURE.
  void open(const std::string& name, protocol::DeviceId device) {
    std::string pattern = "/tmp/iotsocket-" + name + "-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir = pattern;
    auto made = shm::DeviceTable::create("iotsocket-" + name + "-" + std::to_string(::getpid()), 64, 2);
    ASSERT_TRUE(made) << made.error();
    table.emplace(std::move(*made));
    auto queue = OfflineQueue::open(OfflineOptions{.path = dir + "/offline.db"});
    ASSERT_TRUE(queue) << queue.error();
    offline.emplace(std::move(*queue));
    auto opened = DeviceRegistry::open(dir + "/devices.db", DeviceRegistry::Mode::read_write);
    ASSERT_TRUE(opened) << opened.error();
    registry.emplace(std::move(*opened));
    ASSERT_TRUE(registry->add(device, "push-state-key-00001"));
  }
  void close() {
    if (table) table->unlink();
    table.reset();
    if (!dir.empty()) std::filesystem::remove_all(dir);
  }

  // Takes the device's queue out: the payloads, in order.
  std::vector<std::string> queued(protocol::DeviceId device) {
    auto taken = offline->take(device, std::chrono::system_clock::now());
    EXPECT_TRUE(taken) << taken.error();
    std::vector<std::string> out;
    if (taken) {
      for (const QueuedPush& p : taken->pushes) out.push_back(p.payload);
    }
    return out;
  }

  std::string dir;
  std::optional<shm::DeviceTable> table;
  std::optional<OfflineQueue> offline;
  std::optional<DeviceRegistry> registry;
};

}  // namespace iotsocket::master
