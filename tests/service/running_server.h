// A service::Server running on its own thread, stopped gracefully on
// destruction: the in-process daemon of the service, fleet and bench tests.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "service/server.h"

namespace feu::test {

class RunningServer {
 public:
  // resolve_current: Server's artifact-version resolver (reload tests), or none
  RunningServer(service::ServerConfig config, service::Backend& backend,
                std::function<std::string()> resolve_current = nullptr)
      : server_(std::make_unique<service::Server>(std::move(config), backend, std::move(resolve_current))),
        thread_([this] { server_->run(); }) {}
  ~RunningServer() { stop(); }
  void stop() {
    if (!thread_.joinable()) return;
    server_->request_stop();
    thread_.join();
  }
  service::Server& server() { return *server_; }
  const std::string& endpoint() const { return server_->endpoint(); }

 private:
  std::unique_ptr<service::Server> server_;
  std::thread thread_;
};

}  // namespace feu::test
