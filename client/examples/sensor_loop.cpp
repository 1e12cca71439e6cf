// A sensor on a Raspberry Pi: one temperature reading every 10 s, and each command the
// backend pushes is printed. Build with CMake (CMakeLists.txt here) or with pkg-config:
//   g++ -std=c++17 sensor_loop.cpp $(pkg-config --cflags --libs iotsocket-client)
#include <iotsocket/client.hpp>

#include <cstdio>
#include <fstream>
#include <string>

static std::string read_temperature() {
  long millidegrees = 0;
  std::ifstream("/sys/class/thermal/thermal_zone0/temp") >> millidegrees;
  return "temp=" + std::to_string(millidegrees / 1000.0);
}

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s HOST DEVICE_ID KEY sha256/PIN\n", argv[0]);
    return 2;
  }
  iotsocket::client::Options options;
  options.host = argv[1];
  options.device_id = argv[2];
  options.key = argv[3];
  options.pins = {argv[4]};
  iotsocket::client::Error error;
  auto client = iotsocket::client::Client::create(options, &error);
  if (!client) {
    std::fprintf(stderr, "%s\n", error.message.c_str());
    return 2;
  }
  client->on_push = [](const iotsocket::client::Push& push) {
    std::printf("command: %s\n", push.payload.c_str());
  };
  for (;;) {
    client->send(read_temperature());  // queued while offline; sent after the next login
    if (auto fatal = client->run_for(std::chrono::seconds(10))) {  // wrong key, wrong pin...
      std::fprintf(stderr, "%s\n", fatal->message.c_str());
      return 1;
    }
  }
}
