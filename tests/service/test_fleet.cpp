// The service with the redis queue (a fleet), in-process, against a real
// redis-server: fronts and workers as separate Servers with the fake backend.
// A worker "killed mid-job" is a raw consumer that takes and starts a job and
// never finishes it: exactly the state a kill -9 leaves in Redis.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "fake_backend.h"
#include "running_server.h"
#include "redis_test_helpers.h"
#include "service_test_helpers.h"
#include "service/client.h"
#include "service/server.h"
#include "test_support.h"

namespace feu::service {
namespace {
namespace fs = std::filesystem;
using test::FakeBackend;

using test::RunningServer;

class Fleet : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_.file("redis"));
    redis_ = std::make_unique<test::RedisServerProcess>(dir_.file("redis"));
  }
  ServerConfig config(Role role) const {
    ServerConfig c;
    c.bind = "tcp://127.0.0.1:*";
    c.journal_dir = dir_.file("unused");
    c.max_wait_ms = 2;
    c.drain_timeout_ms = 2000;
    c.role = role;
    c.queue.backend = "redis";
    c.queue.redis.url = redis_->url();
    c.queue.redis.stream = "feu:test";
    c.queue.redis.visibility_timeout_ms = 400;
    c.queue.redis.connect_timeout_ms = 500;
    c.queue.redis.worker_timeout_ms = 600;
    return c;
  }
  RedisQueue raw_queue() const {
    RedisQueueConfig c = config(Role::kWorker).queue.redis;
    return RedisQueue(c);
  }

  test::TempDir dir_;
  std::unique_ptr<test::RedisServerProcess> redis_;
};

edit::EditRequest edit_of(const std::string& instruction, int64_t seed = 1) {
  return test::edit_of(instruction, seed, {2.0});
}

std::string first_image(const Message& reply) { return test::image_text(decode_edit_result(reply).images.at(0)); }

TEST_F(Fleet, EditThroughRedisWithBothRoles) {
  FakeBackend backend({});
  RunningServer server(config(Role::kBoth), backend);
  Client client(test::client_for(server.endpoint()));
  edit::EditRequest e = edit_of("blond hair", 7);
  Message reply = client.edit("job-1", e);
  ASSERT_EQ(reply.header["status"], "done") << reply.header.dump();
  EXPECT_EQ(first_image(reply), test::fake_image_bytes(e, 2.0, "v1"));
  // Any later ask is answered from Redis, and the same id never runs twice.
  Message again = client.edit("job-1", e);
  EXPECT_EQ(again.header["status"], "done");
  EXPECT_EQ(again.header["duplicate"], true);
  EXPECT_EQ(client.result("job-1").header["status"], "done");
  EXPECT_EQ(backend.executions("blond hair"), 1);
  Message status = client.status();
  EXPECT_EQ(status.header["queue"]["backend"], "redis");
  EXPECT_EQ(status.header["queue"]["reachable"], true);
  EXPECT_EQ(client.result("never-submitted").header["error"]["code"], "not_found");
}

TEST_F(Fleet, TwoFrontsThreeWorkersAnswerEveryIdOnce) {
  std::vector<std::unique_ptr<FakeBackend>> backends;
  std::vector<std::unique_ptr<RunningServer>> fronts, workers;
  FakeBackend front_backend({});
  for (int i = 0; i < 2; ++i) fronts.push_back(std::make_unique<RunningServer>(config(Role::kFront), front_backend));
  for (int i = 0; i < 3; ++i) {
    backends.push_back(std::make_unique<FakeBackend>(test::fake_options(5)));
    workers.push_back(std::make_unique<RunningServer>(config(Role::kWorker), *backends.back()));
    EXPECT_EQ(workers.back()->endpoint(), "") << "a worker alone binds no socket";
  }
  const std::string servers = fronts[0]->endpoint() + "," + fronts[1]->endpoint();
  constexpr int kClients = 8, kEdits = 25;
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      Client client(test::client_for(servers, 10000));
      for (int j = 0; j < kEdits; ++j) {
        std::string instruction = "c" + std::to_string(c) + "e" + std::to_string(j);
        edit::EditRequest e = edit_of(instruction, j);
        Message reply = client.edit(instruction, e);
        if (reply.header.value("status", std::string()) == "done" &&
            first_image(reply) == test::fake_image_bytes(e, 2.0, "v1"))
          ++good;
        else
          ADD_FAILURE() << reply.header.dump();
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(good.load(), kClients * kEdits);
  size_t runs = 0, busy_workers = 0;
  for (auto& backend : backends) {
    runs += backend->total_executions();
    busy_workers += backend->total_executions() > 0;
  }
  EXPECT_EQ(runs, size_t(kClients * kEdits)) << "every id ran exactly once";
  EXPECT_GE(busy_workers, 2u) << "the stream spreads jobs over the workers";
  EXPECT_EQ(front_backend.total_executions(), 0u);
  EXPECT_EQ(raw_queue().depth(), 0u) << "every entry acknowledged and deleted";
}

TEST_F(Fleet, IdConflictAcrossFronts) {
  FakeBackend backend({});
  RunningServer front_a(config(Role::kFront), backend), front_b(config(Role::kFront), backend);
  Client a(test::client_for(front_a.endpoint())), b(test::client_for(front_b.endpoint()));
  EXPECT_EQ(test::submit(a, "shared-id", edit_of("smile")), "accepted");
  auto conflict = b.call(make_edit_request("shared-id", edit_of("frown")));
  EXPECT_EQ(conflict.header["error"]["code"], "id_conflict") << conflict.header.dump();
  // The same request through the other front is the same job.
  auto same = b.call(make_edit_request("shared-id", edit_of("smile")));
  EXPECT_EQ(same.header["status"], "accepted");
  EXPECT_EQ(same.header["duplicate"], true);
  EXPECT_EQ(raw_queue().depth(), 1u);
}

TEST_F(Fleet, CancelledJobNeverRunsAndFullStreamIsBusy) {
  FakeBackend backend({});
  ServerConfig front_config = config(Role::kFront);
  front_config.max_queue = 2;
  RunningServer front(front_config, backend);
  Client client(test::client_for(front.endpoint()));
  EXPECT_EQ(test::submit(client, "a", edit_of("to cancel")), "accepted");
  EXPECT_EQ(test::submit(client, "b", edit_of("kept")), "accepted");
  EXPECT_EQ(test::submit(client, "c", edit_of("one too many")), "busy");
  // A client apart from the submitter: the submitter hears of the cancel too.
  Client other(test::client_for(front.endpoint()));
  Message cancel = other.cancel("a");
  EXPECT_EQ(cancel.header["cancelled"], true) << cancel.header.dump();
  Message resubmitted = other.call(make_edit_request("c", edit_of("one too many")));
  EXPECT_EQ(resubmitted.header["status"], "accepted") << "the cancelled job left the stream: "
                                                       << resubmitted.header.dump();
  FakeBackend worker_backend({});
  RunningServer worker(config(Role::kWorker), worker_backend);
  Message b = test::wait_result(other, "b");
  EXPECT_EQ(b.header["status"], "done") << b.header.dump();
  EXPECT_EQ(test::wait_result(other, "c").header["status"], "done");
  EXPECT_EQ(other.result("a").header["error"]["code"], "cancelled");
  EXPECT_EQ(worker_backend.executions("to cancel"), 0);
  Message cancel_finished = other.cancel("b");
  EXPECT_EQ(cancel_finished.header["state"], "finished") << cancel_finished.header.dump();
}

TEST_F(Fleet, JobOfAKilledWorkerIsClaimedAndFinishes) {
  FakeBackend backend({});
  RunningServer front(config(Role::kFront), backend);
  Client client(test::client_for(front.endpoint()));
  EXPECT_EQ(test::submit(client, "orphan", edit_of("orphan")), "accepted");
  {
    // The worker that dies: it took the job and started it, then vanished.
    RedisQueue dead = raw_queue();
    dead.ensure_group();
    std::vector<StreamJob> taken = dead.read("dead-worker", 1, 0);
    ASSERT_EQ(taken.size(), 1u);
    ASSERT_EQ(dead.start(taken, {"x"}).front(), RedisQueue::StartState::kRun);
  }
  FakeBackend worker_backend({});
  RunningServer worker(config(Role::kWorker), worker_backend);
  Message reply = test::wait_result(client, "orphan", 500);
  EXPECT_EQ(reply.header["status"], "done") << reply.header.dump();
  EXPECT_EQ(worker_backend.executions("orphan"), 1);
  EXPECT_EQ(raw_queue().depth(), 0u);
}

TEST_F(Fleet, JobThatKillsItsWorkersGoesToTheDeadLetterStream) {
  FakeBackend backend({});
  ServerConfig front_config = config(Role::kFront);
  RunningServer front(front_config, backend);
  Client client(test::client_for(front.endpoint()));
  EXPECT_EQ(test::submit(client, "poison", edit_of("poison")), "accepted");
  RedisQueue dead = raw_queue();
  dead.ensure_group();
  // max_deliveries (3) runs started, none finished.
  std::vector<StreamJob> taken = dead.read("victim-0", 1, 0);
  ASSERT_EQ(taken.size(), 1u);
  ASSERT_EQ(dead.start(taken, {"x"}).front(), RedisQueue::StartState::kRun);
  for (int victim = 1; victim < 3; ++victim) {
    std::this_thread::sleep_for(std::chrono::milliseconds(450));
    taken = dead.claim_stale("victim-" + std::to_string(victim), 1);
    ASSERT_EQ(taken.size(), 1u);
    ASSERT_EQ(dead.start(taken, {"x"}).front(), RedisQueue::StartState::kRun);
  }
  FakeBackend worker_backend({});
  RunningServer worker(config(Role::kWorker), worker_backend);
  Message reply = test::wait_result(client, "poison", 500);
  EXPECT_EQ(reply.header["error"]["code"], "dead_letter") << reply.header.dump();
  EXPECT_EQ(worker_backend.executions("poison"), 0);
  EXPECT_EQ(dead.dead_letters(), 1u);
  EXPECT_EQ(dead.depth(), 0u);
}

TEST_F(Fleet, RedisDownMeansBusyAndNoAcceptedJobIsLost) {
  FakeBackend backend({});
  FakeBackend worker_backend(test::fake_options(2));
  RunningServer front(config(Role::kFront), backend);
  RunningServer worker(config(Role::kWorker), worker_backend);
  Client probe(test::client_for(front.endpoint()));

  std::mutex mutex;
  std::set<std::string> accepted;
  std::atomic<bool> stop{false};
  std::atomic<int> busy_unavailable{0};
  std::thread submitter([&] {
    Client client(test::client_for(front.endpoint()));
    for (int i = 0; !stop; ++i) {
      std::string id = "r" + std::to_string(i);
      auto reply = client.call(make_edit_request(id, edit_of(id)));
      std::string state = reply.header.value("status", std::string());
      if (state == "accepted" || state == "done") {
        std::lock_guard<std::mutex> lock(mutex);
        accepted.insert(id);
      } else if (state == "busy" && reply.header.value("unavailable", false)) {
        ++busy_unavailable;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  redis_->stop();  // for 5 s, as a Redis restart or failover takes
  std::this_thread::sleep_for(std::chrono::milliseconds(5000));
  Message status = probe.status();
  EXPECT_EQ(status.header["queue"]["reachable"], false) << status.header.dump();
  size_t accepted_before_restart;
  {
    std::lock_guard<std::mutex> lock(mutex);
    accepted_before_restart = accepted.size();
  }
  redis_->start();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  submitter.join();
  EXPECT_GT(accepted.size(), accepted_before_restart) << "the front accepts again once Redis is back";
  EXPECT_GT(busy_unavailable.load(), 0) << "the front refused while Redis was down";
  ASSERT_GT(accepted.size(), 20u);
  for (const std::string& id : accepted) {
    Message reply = test::wait_result(probe, id, 1000);
    EXPECT_EQ(reply.header["status"], "done") << id << ": " << reply.header.dump();
  }
  EXPECT_GE(worker_backend.total_executions(), accepted.size());
}

// The live workers `status` lists: consumer name -> artifact version.
std::map<std::string, std::string> listed_workers(Client& client) {
  std::map<std::string, std::string> workers;
  Message status = client.status();
  for (const auto& worker : status.header["queue"].value("worker_list", nlohmann::json::array()))
    workers[worker.value("consumer", std::string())] = worker.value("artifact_version", std::string());
  EXPECT_EQ(status.header["queue"].value("workers", size_t(0)), workers.size()) << status.header.dump();
  return workers;
}

// Polls `condition` every 20 ms for up to `limit_ms` (what a test waits for
// happens after a Redis-side timeout).
bool eventually(const std::function<bool()>& condition, int limit_ms = 5000) {
  for (int waited = 0; waited < limit_ms; waited += 20) {
    if (condition()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return condition();
}

TEST_F(Fleet, StatusListsEveryLiveWorkersVersionAndNotTheDeadOnes) {
  FakeBackend front_backend({});
  RunningServer front(config(Role::kFront), front_backend);
  Client client(test::client_for(front.endpoint()));
  EXPECT_EQ(test::submit(client, "taken", edit_of("taken")), "accepted");
  {
    // A worker that took a job, beat once and died (what kill -9 leaves).
    RedisQueue dead = raw_queue();
    dead.ensure_group();
    std::vector<StreamJob> taken = dead.read("ghost", 1, 0);
    ASSERT_EQ(taken.size(), 1u);
    ASSERT_EQ(dead.start(taken, {"x"}).front(), RedisQueue::StartState::kRun);
    dead.heartbeat({"ghost", "v0", 4242, "elsewhere"});
  }
  EXPECT_EQ(listed_workers(client), (std::map<std::string, std::string>{{"ghost", "v0"}}));

  FakeBackend::Options old_version, new_version;
  old_version.version = "v1";
  new_version.version = "v2";
  FakeBackend old_backend(old_version), new_backend(new_version);
  auto old_worker = std::make_unique<RunningServer>(config(Role::kWorker), old_backend);
  auto new_worker = std::make_unique<RunningServer>(config(Role::kWorker), new_backend);
  std::map<std::string, std::string> listed;
  EXPECT_TRUE(eventually([&] {
    listed = listed_workers(client);
    return listed.size() == 2 && !listed.count("ghost");
  })) << "the silent worker drops out after worker_timeout_ms";
  std::set<std::string> versions;
  for (const auto& [consumer, version] : listed) versions.insert(version);
  EXPECT_EQ(versions, (std::set<std::string>{"v1", "v2"})) << "both versions are listed";
  EXPECT_EQ(test::wait_result(client, "taken", 500).header["status"], "done") << "its job was claimed";
  EXPECT_TRUE(eventually([&] {
    std::vector<std::string> consumers = raw_queue().consumer_names();
    return std::find(consumers.begin(), consumers.end(), "ghost") == consumers.end();
  })) << "the dead worker's consumer left the group once it owned no pending job";

  new_worker->stop();
  EXPECT_EQ(listed_workers(client).size(), 1u) << "a worker that stops cleanly is unlisted at once";
}

TEST(FleetConfig, RolesNeedTheRedisQueueAndUrlsAreChecked) {
  ServerConfig c;
  c.role = Role::kFront;
  test::expect_error([&] { c.validate(); }, ErrorCode::kConfigError, {"--role front", "backend: redis"});
  c.queue.backend = "redis";
  c.queue.redis.url = "http://127.0.0.1:6379";
  test::expect_error([&] { c.validate(); }, ErrorCode::kConfigError, {"daemon.queue.url", "redis://"});
  c.queue.redis.url = "redis://127.0.0.1:99999/0";
  test::expect_error([&] { c.validate(); }, ErrorCode::kConfigError, {"port"});
  c.queue.redis.url = "redis://10.0.0.5:6380/2";
  c.validate();
  RedisAddress address = RedisAddress::parse(c.queue.redis.url);
  EXPECT_EQ(address.host, "10.0.0.5");
  EXPECT_EQ(address.port, 6380);
  EXPECT_EQ(address.db, 2);
  test::expect_error([] { parse_role("leader"); }, ErrorCode::kConfigError, {"leader", "front, worker, both"});

  ConfigMap yaml = ConfigMap::parse("queue: {backend: rabbit}\n", "test.yaml");
  test::expect_error([&] { ServerConfig::from_config(yaml); }, ErrorCode::kConfigError, {"backend", "rabbit"});
  ServerConfig parsed = ServerConfig::from_config(ConfigMap::parse(
      "queue: {backend: redis, url: 'redis://127.0.0.1:6379/0', stream: s, group: g, max_deliveries: 5, "
      "worker_timeout_ms: 2500}\n",
      "test.yaml"));
  EXPECT_TRUE(parsed.queue.is_redis());
  EXPECT_EQ(parsed.queue.redis.worker_timeout_ms, 2500);
  c.queue.redis.worker_timeout_ms = 50;
  test::expect_error([&] { c.validate(); }, ErrorCode::kConfigError, {"worker_timeout_ms"});
  EXPECT_EQ(parsed.queue.redis.stream, "s");
  EXPECT_EQ(parsed.queue.redis.max_deliveries, 5);
}

TEST(FleetClient, FailsOverToTheNextFront) {
  test::TempDir dir;
  FakeBackend backend({});
  ServerConfig c;
  c.bind = "tcp://127.0.0.1:*";
  c.journal_dir = dir.file("state");
  RunningServer server(c, backend);
  // The first endpoint answers nothing: each attempt moves on to the next.
  const std::string dead_endpoint = "tcp://127.0.0.1:" + std::to_string(test::free_loopback_port());
  Client client(test::client_for(dead_endpoint + "," + server.endpoint(), 300));
  for (int i = 0; i < 4; ++i) EXPECT_EQ(client.ping().header["status"], "done");
  test::expect_error([] { Client bad(test::client_for("tcp://127.0.0.1:1,,tcp://127.0.0.1:2")); },
                     ErrorCode::kInvalidArgument, {"empty entry"});
}

}  // namespace
}  // namespace feu::service
