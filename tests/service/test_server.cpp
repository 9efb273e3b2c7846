// The service in-process with the fake backend: round trips, batching,
// idempotency, busy, deadlines, cancel, recovery, reload, malformed input, CURVE.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include <unistd.h>

#include "fake_backend.h"
#include "service_test_helpers.h"
#include "running_server.h"
#include "service/client.h"
#include "service/metrics.h"
#include "service/server.h"
#include "test_support.h"

namespace feu::service {
namespace {
using nlohmann::json;
using test::FakeBackend;

using test::RunningServer;

ServerConfig config_in(const test::TempDir& dir) {
  ServerConfig c;
  c.bind = "tcp://127.0.0.1:*";
  c.journal_dir = dir.file("state");
  c.max_wait_ms = 2;
  c.drain_timeout_ms = 5000;
  return c;
}

using test::client_for;
using test::image_text;
using test::submit;
using test::wait_result;

// Two strengths: every reply carries two images.
edit::EditRequest edit_of(const std::string& instruction, int64_t seed = 1) {
  return test::edit_of(instruction, seed, {2.0, 4.0});
}

TEST(Metrics, TheCpuAllocationCacheIsExposedWhereTheEngineReportsIt) {
  nlohmann::json status = {{"engine",
                            {{"cpu_allocation_cache",
                              {{"hits", 41}, {"misses", 3}, {"cached_bytes", 1048576}, {"limit_bytes", 2147483648}}}}}};
  const std::string text = prometheus_text(status, nlohmann::json::object());
  EXPECT_NE(text.find("feu_cache_hits_total{cache=\"cpu_allocation\"} 41\n"), std::string::npos) << text;
  EXPECT_NE(text.find("feu_cache_misses_total{cache=\"cpu_allocation\"} 3\n"), std::string::npos) << text;
  EXPECT_NE(text.find("# TYPE feu_cpu_allocation_cache_bytes gauge\nfeu_cpu_allocation_cache_bytes 1048576\n"),
            std::string::npos)
      << text;
  // A backend without it (the test double, a CUDA-only engine's peers) gets no family.
  const std::string without = prometheus_text(nlohmann::json::object(), nlohmann::json::object());
  EXPECT_EQ(without.find("cpu_allocation"), std::string::npos) << without;
}

TEST(Metrics, AFleetsWorkersAreListedWithTheirArtifactVersions) {
  nlohmann::json status = {
      {"queue",
       {{"backend", "redis"},
        {"workers", 2},
        {"worker_list",
         {{{"consumer", "w-a"}, {"artifact_version", "v1"}, {"pid", 101}, {"host", "gpu-1"}},
          {{"consumer", "w-b"}, {"artifact_version", "v2"}, {"pid", 202}, {"host", "gpu-2"}}}}}}};
  const std::string text = prometheus_text(status, nlohmann::json::object());
  EXPECT_NE(text.find("feu_fleet_workers 2\n"), std::string::npos) << text;
  EXPECT_NE(text.find("feu_fleet_worker_info{consumer=\"w-a\",host=\"gpu-1\",pid=\"101\",version=\"v1\"} 1\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("feu_fleet_worker_info{consumer=\"w-b\",host=\"gpu-2\",pid=\"202\",version=\"v2\"} 1\n"),
            std::string::npos)
      << text;
  // A single daemon (local queue) has no fleet families.
  const std::string local = prometheus_text({{"queue", {{"backend", "local"}}}}, nlohmann::json::object());
  EXPECT_EQ(local.find("feu_fleet"), std::string::npos) << local;
}

TEST(Server, PingStatusAndEditRoundTrip) {
  test::TempDir dir;
  FakeBackend backend({});
  RunningServer server(config_in(dir), backend);
  Client client(client_for(server.endpoint()));
  Message pong = client.ping();
  EXPECT_EQ(pong.header["status"], "done");
  EXPECT_EQ(pong.header["artifact_version"], "v1");

  edit::EditRequest e = edit_of("blond hair", 42);
  Message reply = client.edit("job-1", e);
  ASSERT_EQ(reply.header["status"], "done") << reply.header.dump();
  edit::EditResult result = decode_edit_result(reply);
  ASSERT_EQ(result.images.size(), 2u);
  EXPECT_EQ(image_text(result.images[0]), test::fake_image_bytes(e, 2.0, "v1"));
  EXPECT_EQ(image_text(result.images[1]), test::fake_image_bytes(e, 4.0, "v1"));
  EXPECT_TRUE(reply.header["timings_ms"].contains("total_ms"));

  json status = client.status().header;
  EXPECT_EQ(status["counters"]["jobs.done"], 1);
  EXPECT_FALSE(status["server"]["version"].get<std::string>().empty());
  EXPECT_EQ(status["engine"]["device"], "fake");  // the backend's own description
  EXPECT_GT(status["memory"]["rss_bytes"].get<int64_t>(), 0);
  EXPECT_GE(status["memory"]["peak_rss_bytes"].get<int64_t>(), status["memory"]["rss_bytes"].get<int64_t>());
  EXPECT_EQ(status["artifact_version"], "v1");
  for (const char* stage : {"queue", "run", "total", "engine.synthesis"}) {
    ASSERT_TRUE(status["latency_ms"].contains(stage)) << stage;
    EXPECT_TRUE(status["latency_ms"][stage].contains("p99"));
  }
  EXPECT_EQ(status["queue"]["depth"], 0);
  EXPECT_GE(status["server"]["uptime_s"].get<double>(), 0.0);
}

TEST(Server, LatentPayloadTravelsBitExact) {
  test::TempDir dir;
  FakeBackend backend({});
  RunningServer server(config_in(dir), backend);
  Client client(client_for(server.endpoint()));
  edit::EditRequest e = edit_of("w edit");
  e.latent_kind = edit::LatentKind::kW;
  e.latent = {0.1f, -2.5f, 1e-30f, 3.0e5f};
  e.return_styles = true;
  Message reply = client.edit("w-1", e);
  ASSERT_EQ(reply.header["status"], "done") << reply.header.dump();
  EXPECT_EQ(decode_edit_result(reply).edited_styles, e.latent);  // the fake echoes the latent
}

TEST(Server, OneBadRequestInABatchFailsAloneWithItsCode) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(50));
  ServerConfig config = config_in(dir);
  config.max_wait_ms = 30;
  RunningServer server(config, backend);
  std::vector<std::thread> threads;
  Message good, bad;
  threads.emplace_back([&] { good = Client(client_for(server.endpoint())).edit("good", edit_of("fine")); });
  threads.emplace_back([&] { bad = Client(client_for(server.endpoint())).edit("bad", edit_of("fail:shape_mismatch")); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(good.header["status"], "done");
  EXPECT_EQ(bad.header["status"], "error");
  EXPECT_EQ(bad.header["error"]["code"], "shape_mismatch");
}

TEST(Server, ResubmittingAnIdNeverRunsItTwice) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(100));
  RunningServer server(config_in(dir), backend);
  Client client(client_for(server.endpoint()));
  // A second submission while the first is queued/running: accepted again, not re-run.
  Client raw(client_for(server.endpoint()));
  auto first = raw.call_raw(to_frames(make_edit_request("same", edit_of("once"))));
  ASSERT_TRUE(first && first->header["status"] == "accepted");
  Message reply = client.edit("same", edit_of("once"));
  EXPECT_EQ(reply.header["status"], "done");
  // After it finished: the stored result comes back, marked duplicate.
  Message again = client.edit("same", edit_of("once"));
  EXPECT_EQ(again.header["status"], "done");
  EXPECT_EQ(again.header["duplicate"], true);
  EXPECT_EQ(backend.executions("once"), 1);
  // The same id for a different request is refused.
  Message conflict = client.edit("same", edit_of("something else"));
  EXPECT_EQ(conflict.header["error"]["code"], codes::kIdConflict);
  EXPECT_EQ(backend.executions("something else"), 0);
  // Fetch by id.
  Message fetched = client.result("same");
  EXPECT_EQ(fetched.header["status"], "done");
  EXPECT_EQ(decode_edit_result(fetched).images.size(), 2u);
  EXPECT_EQ(client.result("never-submitted").header["error"]["code"], "not_found");
}

TEST(Server, EightConcurrentClientsAllAnsweredNoneLostOrDuplicated) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(2));
  RunningServer server(config_in(dir), backend);
  constexpr int kClients = 8, kEdits = 25;
  std::atomic<int> done{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < kClients; ++c)
    threads.emplace_back([&, c] {
      Client client(client_for(server.endpoint(), 20000));
      for (int i = 0; i < kEdits; ++i) {
        std::string name = "c" + std::to_string(c) + "-e" + std::to_string(i);
        edit::EditRequest e = edit_of(name, i);
        Message reply = client.edit(name, e);
        if (reply.header["status"] != "done") {
          wrong++;
          continue;
        }
        auto result = decode_edit_result(reply);
        if (image_text(result.images[0]) == test::fake_image_bytes(e, 2.0, "v1")) done++;
        else wrong++;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), kClients * kEdits);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(backend.total_executions(), size_t(kClients * kEdits));
  for (int c = 0; c < kClients; ++c)
    for (int i = 0; i < kEdits; ++i)
      ASSERT_EQ(backend.executions("c" + std::to_string(c) + "-e" + std::to_string(i)), 1);
  EXPECT_GT(backend.max_batch_seen(), 1u);  // concurrent jobs were batched
}

TEST(Server, ABatchIsEncodedWhileTheNextOneRenders) {
  test::TempDir dir;
  FakeBackend::Options options = test::fake_options(150);
  options.encode_ms = 150;
  FakeBackend backend(options);
  ServerConfig config = config_in(dir);
  config.max_batch = 1;
  RunningServer server(config, backend);
  constexpr int kJobs = 4;
  Client submitter(client_for(server.endpoint()));
  for (int i = 0; i < kJobs; ++i)
    ASSERT_EQ(test::submit(submitter, "p" + std::to_string(i), edit_of("pipelined " + std::to_string(i))),
              "accepted");
  Client client(client_for(server.endpoint(), 20000));
  for (int i = 0; i < kJobs; ++i) {
    Message reply = test::wait_result(client, "p" + std::to_string(i), 2000);
    ASSERT_EQ(reply.header["status"], "done") << reply.header.dump();
    EXPECT_EQ(image_text(decode_edit_result(reply).images.at(0)),
              test::fake_image_bytes(edit_of("pipelined " + std::to_string(i)), 2.0, "v1"));
    // run_ms is the batch's own render and encoding.
    EXPECT_GE(reply.header["timings_ms"]["run_ms"].get<double>(), 295.0);
  }
  const auto renders = backend.render_spans(), encodings = backend.encode_spans();
  ASSERT_EQ(renders.size(), size_t(kJobs));
  ASSERT_EQ(encodings.size(), size_t(kJobs));
  // Batch k+1 rendered while batch k was encoded: the queue held all of them.
  int overlapped = 0;
  for (int k = 0; k + 1 < kJobs; ++k) {
    EXPECT_GE(encodings[k].first, renders[k].second) << "batch " << k << " is encoded after it rendered";
    if (renders[k + 1].first < encodings[k].second && encodings[k].first < renders[k + 1].second) ++overlapped;
  }
  EXPECT_GE(overlapped, kJobs - 2);
  for (int i = 0; i < kJobs; ++i) EXPECT_EQ(backend.executions("pipelined " + std::to_string(i)), 1);
}

TEST(Server, FullQueueAnswersBusyWithARetryHint) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(200));
  ServerConfig config = config_in(dir);
  config.max_queue = 2;
  config.max_batch = 1;
  RunningServer server(config, backend);
  zmq::context_t context;
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.connect(server.endpoint());
  for (int i = 0; i < 8; ++i) {
    auto frames = to_frames(make_edit_request("b" + std::to_string(i), edit_of("b" + std::to_string(i))));
    socket.send(zmq::buffer(frames[0]));
  }
  int busy = 0, accepted = 0, done = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (done < accepted || accepted + busy < 8) {
    ASSERT_LT(std::chrono::steady_clock::now(), until);
    zmq::pollitem_t item{socket.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(100));
    if (!(item.revents & ZMQ_POLLIN)) continue;
    std::vector<zmq::message_t> parts;
    (void)zmq::recv_multipart(socket, std::back_inserter(parts));
    json h = json::parse(parts[0].to_string());
    if (h["status"] == "busy") {
      busy++;
      EXPECT_GT(h["retry_after_ms"].get<int64_t>(), 0);
      EXPECT_EQ(h["error"]["code"], "busy");
    } else if (h["status"] == "accepted") {
      accepted++;
    } else if (h["status"] == "done") {
      done++;
    }
  }
  EXPECT_GT(busy, 0);
  EXPECT_GE(accepted, 2);
  EXPECT_EQ(done, accepted);  // everything accepted finished
}

TEST(Server, ExpiredJobsEndWithDeadlineExceeded) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(300));
  ServerConfig config = config_in(dir);
  config.max_batch = 1;
  RunningServer server(config, backend);
  Client slow(client_for(server.endpoint()));
  Client raw(client_for(server.endpoint()));
  ASSERT_EQ(submit(raw, "long", edit_of("long")), "accepted");
  Message reply = slow.edit("hurry", edit_of("hurry"), 50);
  EXPECT_EQ(reply.header["status"], "error");
  EXPECT_EQ(reply.header["error"]["code"], "deadline_exceeded");
  EXPECT_EQ(backend.executions("hurry"), 0);
}

TEST(Server, CancelRemovesAQueuedJob) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(300));
  ServerConfig config = config_in(dir);
  config.max_batch = 1;
  RunningServer server(config, backend);
  Client raw(client_for(server.endpoint()));
  ASSERT_EQ(submit(raw, "first", edit_of("first")), "accepted");
  ASSERT_EQ(submit(raw, "second", edit_of("second")), "accepted");
  Client client(client_for(server.endpoint()));
  Message cancel = client.cancel("second");
  EXPECT_EQ(cancel.header["cancelled"], true);
  EXPECT_EQ(client.result("second").header["error"]["code"], "cancelled");
  EXPECT_EQ(client.cancel("nope").header["error"]["code"], "not_found");
  EXPECT_EQ(client.edit("first", edit_of("first")).header["status"], "done");
  EXPECT_EQ(backend.executions("second"), 0);
}

TEST(Server, GracefulStopJournalsQueuedJobsAndARestartFinishesThemOnce) {
  test::TempDir dir;
  ServerConfig config = config_in(dir);
  config.max_batch = 1;
  config.drain_timeout_ms = 0;  // journal everything still queued
  FakeBackend first(test::fake_options(100));
  std::vector<std::string> ids;
  {
    RunningServer server(config, first);
    Client raw(client_for(server.endpoint()));
    for (int i = 0; i < 6; ++i) {
      ids.push_back("r" + std::to_string(i));
      ASSERT_EQ(submit(raw, ids.back(), edit_of(ids.back())),
                "accepted");
    }
  }  // stop: at most the running batch finishes
  size_t ran_before = first.total_executions();
  EXPECT_LT(ran_before, ids.size());

  FakeBackend second({});
  RunningServer server(config, second);
  EXPECT_EQ(server.server().recovered_jobs(), ids.size() - ran_before);
  Client client(client_for(server.endpoint()));
  for (const auto& id : ids) {
    Message reply = wait_result(client, id);
    ASSERT_EQ(reply.header["status"], "done") << id << " " << reply.header.dump();
    EXPECT_EQ(first.executions(id) + second.executions(id), 1) << id;
  }
}

TEST(Server, ReloadSwapsVersionsAndAFailedLoadKeepsTheOld) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(5, 100));
  std::mutex mutex;
  std::string current = dir.file("v1");
  ServerConfig config = config_in(dir);
  config.reload_poll_ms = 20;
  RunningServer server(config, backend, [&] {
    std::lock_guard<std::mutex> lock(mutex);
    return current;
  });
  Client client(client_for(server.endpoint()));
  auto wait_for = [&](const std::string& state) {
    json status;
    for (int i = 0; i < 300; ++i) {
      status = client.status().header;
      if (status["reload"]["state"] == state) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return status;
  };
  {
    std::lock_guard<std::mutex> lock(mutex);
    current = dir.file("v2");
  }
  // Edits keep being answered while v2 loads.
  for (int i = 0; i < 5; ++i)
    EXPECT_EQ(client.edit("during-" + std::to_string(i), edit_of("d" + std::to_string(i))).header["status"], "done");
  json status = wait_for("ok");
  EXPECT_EQ(status["artifact_version"], "v2");
  Message after = client.edit("after", edit_of("after"));
  EXPECT_EQ(decode_edit_result(after).diagnostics["artifact_version"], "v2");

  {
    std::lock_guard<std::mutex> lock(mutex);
    current = dir.file("v3-bad");
  }
  status = wait_for("failed");
  EXPECT_EQ(status["reload"]["state"], "failed");
  EXPECT_NE(status["reload"]["error"].get<std::string>().find("checksum_mismatch"), std::string::npos);
  EXPECT_EQ(status["artifact_version"], "v2");
  EXPECT_EQ(client.edit("still", edit_of("still")).header["status"], "done");

  server.server().request_reload();  // SIGHUP re-resolves current: fails again, reported again
  status = wait_for("loading");
  status = wait_for("failed");
  EXPECT_EQ(status["counters"]["reloads.failed"], 2);
}

TEST(Server, MalformedInputNeverCrashesOrStalls) {
  test::TempDir dir;
  FakeBackend backend({});
  ServerConfig config = config_in(dir);
  config.limits.max_payload_bytes = 1 << 20;
  config.limits.max_photo_bytes = 1 << 20;
  RunningServer server(config, backend);
  Client client(client_for(server.endpoint(), 3000));
  auto code_of = [&](const std::vector<Frame>& frames) -> std::string {
    auto reply = client.call_raw(frames);
    if (!reply) return "no reply";
    return reply->header["error"].value("code", std::string("?"));
  };
  std::string nan_bytes(8, '\0');
  float nan_values[2] = {1.0f, NAN};
  std::memcpy(nan_bytes.data(), nan_values, 8);
  EXPECT_EQ(code_of({std::string("\x00\xff\x13garbage", 10)}), "bad_request");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t","instr)"}), "bad_request");  // truncated JSON
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t","instruction":["a"]})"}), "bad_request");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t","instruction":"a","latent":"w"})", nan_bytes}), "invalid_argument");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t","instruction":"a","surprise":1})"}), "unknown_field");
  EXPECT_EQ(code_of({R"({"type":"launch"})"}), "unknown_type");
  EXPECT_EQ(code_of(std::vector<Frame>(20, "{}")), "payload_too_large");
  EXPECT_EQ(code_of({""}), "bad_request");
  // A frame one byte over the largest legal frame drops that connection
  // (ZMQ_MAXMSGSIZE) before libzmq buffers it, and nothing else.
  {
    zmq::context_t context;
    zmq::socket_t rogue(context, zmq::socket_type::dealer);
    rogue.set(zmq::sockopt::linger, 0);
    rogue.connect(server.endpoint());
    std::string huge((1 << 20) + 1, 'x');
    rogue.send(zmq::buffer(huge));
    zmq::pollitem_t item{rogue.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(500));
    EXPECT_FALSE(item.revents & ZMQ_POLLIN) << "the oversized frame reached the server and was answered";
  }
  EXPECT_EQ(client.ping().header["status"], "done");
  json status = client.status().header;
  EXPECT_GE(status["counters"]["rejected.bad_request"].get<int>(), 4);
  EXPECT_EQ(backend.total_executions(), 0u);
}

// The daemon cannot echo an id it refuses (over max_id_bytes), so its error
// carries none; the client takes that as the answer to its request in flight
// instead of waiting out every timeout for a reply with its id.
TEST(Server, AnIdTooLongToEchoIsStillAnsweredWithItsError) {
  test::TempDir dir;
  FakeBackend backend({});
  ServerConfig config = config_in(dir);
  RunningServer server(config, backend);
  Client client(client_for(server.endpoint(), 4000));
  const std::string long_id(config.limits.max_id_bytes + 1, '0');
  edit::EditRequest request;
  request.instruction = "smile";
  const auto start = std::chrono::steady_clock::now();
  for (const Message& reply : {client.edit(long_id, request), client.result(long_id), client.cancel(long_id)}) {
    EXPECT_EQ(reply.header["status"], "error") << reply.header.dump();
    EXPECT_EQ(reply.header["error"]["code"], "payload_too_large") << reply.header.dump();
    EXPECT_NE(reply.header["error"]["message"].get<std::string>().find("field 'id' is 129 bytes (limit 128)"),
              std::string::npos)
        << reply.header.dump();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));  // not 3 × 4 s each
  EXPECT_EQ(client.ping().header["status"], "done");  // the next call's own reply, not a leftover
  EXPECT_EQ(backend.total_executions(), 0u);
}

// Client::answered() is what lets a client be kept for the next call (the
// HTTP front's idle clients): true once a request had its reply, false while
// one sent is still owed one.
TEST(Server, AClientIsAnsweredOnlyWhenItsLastRequestHadItsReply) {
  test::TempDir dir;
  FakeBackend backend({});
  auto server = std::make_unique<RunningServer>(config_in(dir), backend);
  ClientOptions options = client_for(server->endpoint(), 300);
  options.retries = 0;
  Client client(options);
  EXPECT_TRUE(client.answered());
  EXPECT_EQ(client.ping().header["status"], "done");
  EXPECT_TRUE(client.answered());
  const std::string long_id(129, 'x');
  EXPECT_EQ(client.result(long_id).header["error"]["code"], "payload_too_large");  // answered without its id
  EXPECT_TRUE(client.answered());
  server.reset();
  EXPECT_THROW(client.ping(), Error);
  EXPECT_FALSE(client.answered());
}

TEST(Server, ResultsOfAVanishedClientAreKeptForFetchById) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(100));
  RunningServer server(config_in(dir), backend);
  {
    Client gone(client_for(server.endpoint()));
    ASSERT_EQ(submit(gone, "orphan", edit_of("orphan")), "accepted");
  }  // disconnects before `done`
  Client client(client_for(server.endpoint()));
  Message reply;
  for (int i = 0; i < 100; ++i) {
    reply = client.result("orphan");
    if (reply.header["status"] == "done") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(reply.header["status"], "done");
  EXPECT_EQ(backend.executions("orphan"), 1);
}

TEST(Server, RetrieveIsAnsweredWithHits) {
  test::TempDir dir;
  FakeBackend backend({});
  RunningServer server(config_in(dir), backend);
  Client client(client_for(server.endpoint()));
  Message reply = client.retrieve("smiling", 3);
  ASSERT_EQ(reply.header["status"], "done");
  EXPECT_EQ(reply.header["result"]["hits"].size(), 3u);
  EXPECT_EQ(client.retrieve("fail", 3).header["error"]["code"], "not_found");
}

TEST(Server, NonLoopbackBindNeedsCurveOrExplicitConsent) {
  test::TempDir dir;
  ServerConfig config = config_in(dir);
  config.bind = "tcp://0.0.0.0:0";
  EXPECT_THROW(config.validate(), Error);
  config.allow_insecure_remote = true;
  EXPECT_NO_THROW(config.validate());
  EXPECT_TRUE(is_loopback_endpoint("tcp://127.0.0.1:5555"));
  EXPECT_TRUE(is_loopback_endpoint("ipc:///tmp/feu.sock"));
  EXPECT_FALSE(is_loopback_endpoint("tcp://10.0.0.3:5555"));
}

TEST(Server, CurveAdmitsOnlyAllowListedClients) {
  if (!zmq_has("curve")) GTEST_SKIP() << "libzmq without CURVE";
  test::TempDir dir;
  auto [server_public, server_secret] = curve_keypair();
  auto [client_public, client_secret] = curve_keypair();
  auto [other_public, other_secret] = curve_keypair();
  { std::ofstream(dir.file("server.key")) << "# secret\n" << server_secret << "\n"; }
  { std::ofstream(dir.file("clients.txt")) << client_public << "\n"; }
  EXPECT_EQ(curve_public_key(server_secret), server_public);
  ServerConfig config = config_in(dir);
  config.curve.enabled = true;
  config.curve.secret_key_file = dir.file("server.key");
  config.curve.allowed_clients_file = dir.file("clients.txt");
  FakeBackend backend({});
  RunningServer server(config, backend);

  ClientOptions allowed = client_for(server.endpoint(), 2000);
  allowed.curve_server_key = server_public;
  allowed.curve_public_key = client_public;
  allowed.curve_secret_key = client_secret;
  EXPECT_EQ(Client(allowed).ping().header["status"], "done");

  ClientOptions refused = allowed;
  refused.curve_public_key = other_public;
  refused.curve_secret_key = other_secret;
  refused.timeout_ms = 300;
  refused.retries = 0;
  EXPECT_THROW(Client(refused).ping(), Error);

  ClientOptions plain = client_for(server.endpoint(), 300);
  plain.retries = 0;
  EXPECT_THROW(Client(plain).ping(), Error);
}

TEST(ServerConfig, ParsesTheDaemonSectionAndRejectsUnknownKeys) {
  test::TempDir dir;
  std::string path = dir.file("c.yaml");
  std::ofstream(path) << "daemon:\n  bind: \"tcp://127.0.0.1:6000\"\n  max_queue: 7\n  max_batch: 3\n"
                         "  journal_dir: state\n  limits: {max_alphas: 4}\n";
  ConfigMap root = ConfigMap::load_file(path);
  ServerConfig c = ServerConfig::from_config(root.child("daemon"));
  EXPECT_EQ(c.bind, "tcp://127.0.0.1:6000");
  EXPECT_EQ(c.max_queue, 7u);
  EXPECT_EQ(c.max_batch, 3u);
  EXPECT_EQ(c.limits.max_alphas, 4u);
  EXPECT_EQ(c.journal_dir, dir.file("state"));  // relative to the config file
  EXPECT_EQ(c.max_wait_ms, ServerConfig().max_wait_ms);

  auto error_of = [&](const std::string& yaml) -> std::string {
    std::ofstream(path) << yaml;
    try {
      ServerConfig::from_config(ConfigMap::load_file(path).child("daemon"));
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfigError);
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of("daemon: {max_queu: 3}\n").find("max_queu"), std::string::npos);
  EXPECT_NE(error_of("daemon: {max_queue: many}\n").find("max_queue"), std::string::npos);
  EXPECT_NE(error_of("daemon: {max_batch: 0}\n").find("max_batch"), std::string::npos);
  EXPECT_NE(error_of("daemon: {bind: \"tcp://0.0.0.0:5555\"}\n").find("curve"), std::string::npos);
  EXPECT_NE(error_of("daemon: {limits: {max_fames: 3}}\n").find("max_fames"), std::string::npos);
}

// ---------------------------------------------------------------- hardening

// A DEALER socket speaking the protocol frame by frame, for tests that need
// several connections, or that must see every reply (accepted, then done).
class RawPeer {
 public:
  explicit RawPeer(const std::string& endpoint) : socket_(context_, zmq::socket_type::dealer) {
    socket_.set(zmq::sockopt::linger, 0);
    socket_.connect(endpoint);
  }
  void send(const Message& message) {
    std::vector<Frame> frames = to_frames(message);
    for (size_t i = 0; i < frames.size(); ++i)
      socket_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
  // The next reply's header, or null after `timeout_ms`.
  json next(int timeout_ms) {
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    zmq::poll(&item, 1, std::chrono::milliseconds(timeout_ms));
    if (!(item.revents & ZMQ_POLLIN)) return nullptr;
    std::vector<zmq::message_t> parts;
    (void)zmq::recv_multipart(socket_, std::back_inserter(parts));
    return json::parse(parts.at(0).to_string());
  }
  // Skips `accepted` replies; the first other status's header, or null.
  json final_reply(int timeout_ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (std::chrono::steady_clock::now() < until) {
      json reply = next(50);
      if (!reply.is_null() && reply["status"] != status::kAccepted) return reply;
    }
    return nullptr;
  }

 private:
  zmq::context_t context_;
  zmq::socket_t socket_;
};

// Whether the kernel lets this process mount a tmpfs (root, as in CI).
bool mount_tmpfs(const std::string& dir, const std::string& size) {
  std::filesystem::create_directories(dir);
  return test::run_command("mount -t tmpfs -o size=" + size + " tmpfs '" + dir + "' 2>/dev/null") == 0;
}

TEST(Server, AResultThatCannotBeStoredIsNeverAnnouncedAndIsStoredOnRetry) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(300));
  ServerConfig config = config_in(dir);
  RunningServer server(config, backend);
  RawPeer submitter(server.endpoint());
  submitter.send(make_edit_request("unstorable", edit_of("unstorable")));
  ASSERT_EQ(submitter.next(5000)["status"], "accepted");
  // While it runs, the result store's directory stops being one: every write
  // into it fails (ENOTDIR), as with a full disk or no file descriptors.
  const std::string results = config.journal_dir + "/results";
  std::filesystem::rename(results, results + ".away");
  std::ofstream(results) << "not a directory";
  EXPECT_TRUE(submitter.final_reply(1500).is_null()) << "a result that was not stored must not be announced";
  Client client(client_for(server.endpoint()));
  json status = client.status().header;
  EXPECT_EQ(status["results"]["awaiting_storage"], 1) << status.dump();
  EXPECT_GE(status["counters"]["store_errors"].get<int>(), 1);
  EXPECT_EQ(client.result("unstorable").header["status"], "accepted");  // still unfinished, not not_found
  // Resending the id while it waits for storage does not run it again.
  EXPECT_EQ(submit(client, "unstorable", edit_of("unstorable")), "accepted");
  // The fault clears: the retry stores it, then the submitter hears `done`.
  std::filesystem::remove(results);
  std::filesystem::rename(results + ".away", results);
  json done = submitter.final_reply(10000);
  ASSERT_FALSE(done.is_null());
  EXPECT_EQ(done["status"], "done") << done.dump();
  EXPECT_EQ(client.result("unstorable").header["status"], "done");
  EXPECT_EQ(backend.executions("unstorable"), 1);
}

TEST(Server, OnAFullDiskNothingAcceptedIsLostOrRunTwice) {
  test::TempDir dir;
  const std::string state = dir.file("state");
  if (!mount_tmpfs(state, "2m")) GTEST_SKIP() << "cannot mount a tmpfs here (needs root; CI runs as root)";
  struct Unmount {
    std::string path;
    ~Unmount() { test::run_command("umount -l '" + path + "'"); }
  } unmount{state};
  FakeBackend backend(test::fake_options(400));
  ServerConfig config = config_in(dir);
  config.max_batch = 1;
  RunningServer server(config, backend);
  RawPeer submitter(server.endpoint());
  for (int i = 0; i < 3; ++i) submitter.send(make_edit_request("full-" + std::to_string(i), edit_of("full-" + std::to_string(i))));
  for (int i = 0; i < 3; ++i) ASSERT_EQ(submitter.next(5000)["status"], "accepted");
  // Fill the disk while the first job runs.
  const std::string filler = state + "/filler";
  test::run_command("dd if=/dev/zero of='" + filler + "' bs=64k 2>/dev/null");
  Client client(client_for(server.endpoint()));
  // A new job cannot be journaled: refused with io_error, not accepted. (Large,
  // so that its record needs pages the full tmpfs does not have.)
  edit::EditRequest late = edit_of("late");
  late.latent_kind = edit::LatentKind::kW;
  late.latent.assign(60000, 1.0f);
  Message refused = client.call(make_edit_request("late", late));
  EXPECT_EQ(refused.header["status"], "error");
  EXPECT_EQ(refused.header["error"]["code"], "io_error") << refused.header.dump();
  EXPECT_TRUE(submitter.final_reply(1500).is_null());
  std::filesystem::remove(filler);
  std::set<std::string> done;
  for (int i = 0; i < 3; ++i) {
    json reply = submitter.final_reply(15000);
    ASSERT_FALSE(reply.is_null()) << "a job accepted before the disk filled was lost";
    EXPECT_EQ(reply["status"], "done") << reply.dump();
    done.insert(reply["id"].get<std::string>());
  }
  EXPECT_EQ(done.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(backend.executions("full-" + std::to_string(i)), 1);
  EXPECT_EQ(backend.executions("late"), 0);
  // The journal took no damage: a new job is accepted and finishes.
  EXPECT_EQ(client.edit("after", edit_of("after")).header["status"], "done");
}

TEST(Server, ASecondServerOnTheSameStateDirectoryIsRefusedWithTheHoldersPid) {
  test::TempDir dir;
  FakeBackend backend({});
  auto first = std::make_unique<RunningServer>(config_in(dir), backend);
  try {
    Server second(config_in(dir), backend);
    FAIL() << "a second server opened the same journal";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIoError);
    EXPECT_NE(std::string(e.what()).find("pid " + std::to_string(getpid())), std::string::npos) << e.what();
  }
  // The first is untouched.
  Client client(client_for(first->endpoint()));
  EXPECT_EQ(client.edit("still-mine", edit_of("still-mine")).header["status"], "done");
  first.reset();
  // Once it is gone, the directory is free again.
  EXPECT_NO_THROW(Server(config_in(dir), backend));
}

TEST(Server, EveryClientWaitingOnAnIdGetsItsDone) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(400));
  RunningServer server(config_in(dir), backend);
  RawPeer submitter(server.endpoint()), poller(server.endpoint()), retry(server.endpoint());
  submitter.send(make_edit_request("shared", edit_of("shared")));
  ASSERT_EQ(submitter.next(5000)["status"], "accepted");
  poller.send(make_simple_request(RequestType::kResult, "shared"));
  ASSERT_EQ(poller.next(5000)["status"], "accepted");
  retry.send(make_edit_request("shared", edit_of("shared")));
  ASSERT_EQ(retry.next(5000)["duplicate"], true);
  for (RawPeer* peer : {&submitter, &poller, &retry}) {
    json reply = peer->final_reply(5000);
    ASSERT_FALSE(reply.is_null());
    EXPECT_EQ(reply["status"], "done");
    EXPECT_EQ(reply["id"], "shared");
    EXPECT_EQ(reply["pushed"], true) << "a done nobody asked for just now is marked as pushed";
  }
  poller.send(make_simple_request(RequestType::kResult, "shared"));
  json asked = poller.final_reply(5000);
  EXPECT_EQ(asked["status"], "done");
  EXPECT_FALSE(asked.contains("pushed")) << "the answer to a result request is not a push: " << asked.dump();
  EXPECT_EQ(backend.executions("shared"), 1);
}

TEST(Server, AClientThatPolledAResultGetsItsOwnAnswerToEachLaterRequest) {
  // The connection that polled while the job ran is owed its done; here it
  // arrives before the next poll's answer. Neither may be taken for the
  // answer to a later request on the connection (a cancel here).
  test::TempDir dir;
  FakeBackend backend(test::fake_options(200));
  RunningServer server(config_in(dir), backend);
  Client submitter(client_for(server.endpoint())), poller(client_for(server.endpoint()));
  ASSERT_EQ(submit(submitter, "job", edit_of("job")), "accepted");
  ASSERT_EQ(poller.result("job").header["status"], "accepted");
  ASSERT_EQ(wait_result(submitter, "job").header["status"], "done");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the push to `poller` has arrived
  EXPECT_EQ(poller.result("job").header["status"], "done");
  Message cancel = poller.cancel("job");
  EXPECT_EQ(cancel.header["type"], "cancel") << cancel.header.dump();
  EXPECT_EQ(cancel.header["state"], "finished") << cancel.header.dump();
  EXPECT_EQ(poller.ping().header["status"], "done");
}

TEST(Server, RequestsTheModelsWouldRefuseAreRejectedBeforeAcceptance) {
  test::TempDir dir;
  FakeBackend::Options options;
  options.latent_values = 512;  // a model with w_dim 512
  FakeBackend backend(options);
  ServerConfig config = config_in(dir);
  RunningServer server(config, backend);
  Client client(client_for(server.endpoint()));
  edit::EditRequest huge = edit_of("huge");
  huge.latent_kind = edit::LatentKind::kW;
  huge.latent.assign(1000000, 0.5f);  // 4 MB: within the frame limit, not the model's shape
  for (int i = 0; i < 20; ++i) {
    Message reply = client.call(make_edit_request("huge-" + std::to_string(i), huge));
    ASSERT_EQ(reply.header["status"], "error");
    EXPECT_EQ(reply.header["error"]["code"], "shape_mismatch");
  }
  EXPECT_EQ(backend.total_executions(), 0u);
  // Nothing was journaled: the journal holds no 4 MB records.
  EXPECT_LT(std::filesystem::file_size(config.journal_dir + "/journal.log"), 4096u);
  huge.latent.assign(512, 0.5f);
  EXPECT_EQ(client.edit("right-size", huge).header["status"], "done");
}

TEST(Server, TheQueueIsBoundedByBytesAsWellAsJobs) {
  test::TempDir dir;
  FakeBackend backend(test::fake_options(300));
  ServerConfig config = config_in(dir);
  config.max_batch = 1;
  config.limits.max_frames = 2;
  config.limits.max_payload_bytes = 64 << 10;
  config.limits.max_photo_bytes = 64 << 10;
  config.max_queue_bytes = 200 << 10;  // room for three 60 KiB requests
  RunningServer server(config, backend);
  RawPeer peer(server.endpoint());
  edit::EditRequest large = edit_of("large");
  large.latent_kind = edit::LatentKind::kW;
  large.latent.assign(15000, 0.25f);  // 60 KB
  for (int i = 0; i < 10; ++i) peer.send(make_edit_request("large-" + std::to_string(i), large));
  int accepted = 0, busy = 0, done = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(15);
  while ((accepted + busy < 10 || done < accepted) && std::chrono::steady_clock::now() < until) {
    json reply = peer.next(100);
    if (reply.is_null()) continue;
    if (reply["status"] == "accepted") accepted++;
    else if (reply["status"] == "busy") busy++;
    else if (reply["status"] == "done") done++;
  }
  EXPECT_EQ(accepted + busy, 10);
  EXPECT_GE(accepted, 1);
  EXPECT_LE(accepted, 4);  // the first may already run when the fourth arrives
  EXPECT_EQ(done, accepted);
  Client client(client_for(server.endpoint()));
  EXPECT_GE(client.status().header["counters"]["busy.bytes"].get<int>(), 6);
}


}  // namespace
}  // namespace feu::service
