// A fleet whose workers follow a publisher (`artifacts: {follow: URL}`): a
// real redis-server, a front and two workers in-process around the test
// double backend, each worker with its own artifact root kept current by an
// ArtifactFollower pulling from tests/index/artifact_server.py, and the
// server's reload poll switching to what lands in <root>/current (what
// feu-daemon wires up in daemon/main.cpp). A new version is published while
// edits flow.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "../service/fake_backend.h"
#include "../service/redis_test_helpers.h"
#include "../service/running_server.h"
#include "../service/service_test_helpers.h"
#include "artifact_test_helpers.h"
#include "index/pull.h"
#include "service/client.h"
#include "service/server.h"

namespace feu::index {
namespace {
namespace fs = std::filesystem;
using service::Client;
using service::Message;
using service::Role;
using service::Server;
using service::ServerConfig;

using test::RunningServer;

// A worker machine: its artifact root, the follower that keeps it current,
// the backend serving <root>/current and the worker daemon reloading it.
struct FollowingWorker {
  test::TempDir root;
  std::unique_ptr<ArtifactFollower> follower;
  std::unique_ptr<test::FakeBackend> backend;
  std::unique_ptr<RunningServer> server;

  FollowingWorker(const std::string& url, ServerConfig config) {
    PullOptions follow;
    follow.from = url;
    follow.root = root.path();
    pull(follow);  // a fresh machine has nothing to serve before its first pull
    test::FakeBackend::Options options;
    options.version_dir = ArtifactSet::resolve_current(root.path());
    options.version = fs::path(options.version_dir).filename().string();
    options.batch_ms = 10;
    backend = std::make_unique<test::FakeBackend>(options);
    follower = std::make_unique<ArtifactFollower>(follow, std::chrono::milliseconds(200),
                                                  [](const std::string&, bool) {});
    const std::string dir = root.path();
    server = std::make_unique<RunningServer>(std::move(config), *backend,
                                             [dir] { return ArtifactSet::resolve_current(dir); });
  }
};

// Consumer name -> artifact version of the live workers `status` lists.
std::map<std::string, std::string> worker_versions(Client& client) {
  std::map<std::string, std::string> versions;
  for (const auto& worker : client.status().header["queue"].value("worker_list", nlohmann::json::array()))
    versions[worker.value("consumer", std::string())] = worker.value("artifact_version", std::string());
  return versions;
}

TEST(FleetFollow, ANewVersionPublishedMidRunReachesEveryWorkerAndNoJobFails) {
  Inputs inputs;
  test::TempDir remote, state;
  publish(inputs.options(remote.path(), "v1"));
  ArtifactServer artifacts(remote.path());
  fs::create_directories(state.file("redis"));
  test::RedisServerProcess redis(state.file("redis"));
  auto config = [&](Role role) {
    ServerConfig c;
    c.bind = "tcp://127.0.0.1:*";
    c.journal_dir = state.file("unused");
    c.max_wait_ms = 2;
    c.drain_timeout_ms = 2000;
    c.reload_poll_ms = 50;
    c.role = role;
    c.queue.backend = "redis";
    c.queue.redis.url = redis.url();
    c.queue.redis.stream = "feu:follow";
    c.queue.redis.visibility_timeout_ms = 2000;
    c.queue.redis.worker_timeout_ms = 600;
    return c;
  };
  test::FakeBackend front_backend({});
  RunningServer front(config(Role::kFront), front_backend);
  std::vector<std::unique_ptr<FollowingWorker>> workers;
  for (int i = 0; i < 2; ++i)
    workers.push_back(std::make_unique<FollowingWorker>(artifacts.url(), config(Role::kWorker)));

  // Jobs flow from 4 clients until 20 more have finished after the switch.
  std::atomic<bool> switched{false};
  std::atomic<int> done_after_switch{0};
  std::mutex mutex;
  std::vector<std::string> failures;
  std::map<std::string, int> by_version;
  std::vector<std::thread> clients;
  for (int c = 0; c < 4; ++c)
    clients.emplace_back([&, c] {
      Client client(test::client_for(front.endpoint(), 10000));
      for (int j = 0; done_after_switch < 20 && j < 2000; ++j) {
        const bool submitted_after_switch = switched;
        const std::string id = "c" + std::to_string(c) + "e" + std::to_string(j);
        Message reply = client.edit(id, test::edit_of(id, j));
        std::lock_guard<std::mutex> lock(mutex);
        if (reply.header.value("status", std::string()) != "done") {
          failures.push_back(id + ": " + reply.header.dump());
          continue;
        }
        const std::string version =
            service::decode_edit_result(reply).diagnostics.value("artifact_version", std::string());
        by_version[version]++;
        if (version != "v1" && version != "v2") failures.push_back(id + " names version '" + version + "'");
        if (submitted_after_switch) {
          if (version != "v2") failures.push_back(id + " ran after the switch on '" + version + "'");
          ++done_after_switch;
        }
      }
    });

  Client observer(test::client_for(front.endpoint()));
  // Both workers listed on v1 and jobs done on it before anything is published.
  for (int waited = 0; waited < 10000; waited += 20) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (by_version["v1"] >= 20 && worker_versions(observer).size() == 2) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  publish(inputs.options(remote.path(), "v2"));
  std::map<std::string, std::string> versions;
  for (int waited = 0; waited < 20000; waited += 20) {
    versions = worker_versions(observer);
    if (versions.size() == 2 && versions.begin()->second == "v2" && versions.rbegin()->second == "v2") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  switched = true;
  for (auto& t : clients) t.join();

  EXPECT_EQ(failures, std::vector<std::string>{});
  EXPECT_GE(by_version["v1"], 20) << "jobs ran on v1 before the publish";
  EXPECT_GE(done_after_switch.load(), 20);
  ASSERT_EQ(versions.size(), 2u);
  for (const auto& [consumer, version] : versions) EXPECT_EQ(version, "v2") << consumer;
  for (const auto& worker : workers) {
    EXPECT_EQ(worker->backend->artifact_version(), "v2");
    EXPECT_TRUE(fs::exists(worker->root.path() + "/v1")) << "the previous version is kept";
  }
}

}  // namespace
}  // namespace feu::index
