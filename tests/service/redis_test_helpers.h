// A real redis-server (Debian's) on a free loopback port, in a temp dir, with
// the durability the fleet relies on: AOF with `appendfsync always`, no RDB
// snapshots. Stoppable and restartable on the same port and data. Used by the
// tests and by bench_fleet.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "service/redis_queue.h"
#include "test_support.h"

namespace feu::test {

// A loopback TCP port nobody listens on now.
inline int free_loopback_port() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address);
  socklen_t length = sizeof address;
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

class RedisServerProcess {
 public:
  explicit RedisServerProcess(std::string dir) : dir_(std::move(dir)), port_(free_loopback_port()) { start(); }
  ~RedisServerProcess() { stop(); }

  void start() {
    pid_ = test::spawn({"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1", "--dir", dir_,
                        "--appendonly", "yes", "--appendfsync", "always", "--save", "", "--daemonize", "no"},
                       dir_ + "/redis.log");
    // Ready once it answers (it replays its AOF first).
    service::RedisQueueConfig config;
    config.url = url();
    service::RedisQueue probe(config);
    for (int i = 0; i < 500; ++i) {
      try {
        probe.depth();
        return;
      } catch (const Error&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    throw std::runtime_error("redis-server did not start on port " + std::to_string(port_) + " (see " + dir_ +
                             "/redis.log)");
  }
  // kill -9: what the data survives is what `appendfsync always` promised.
  void stop() {
    test::stop(pid_);
    pid_ = -1;
  }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

 private:
  std::string dir_;
  int port_;
  pid_t pid_ = -1;
};

}  // namespace feu::test
