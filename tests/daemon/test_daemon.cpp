// Process-level tests: the daemon program on a free loopback port, driven by
// the `feu` client program and in-process clients. The production feu-daemon
// with the real engine on a freshly built embedded default covers the round
// trip, 8 clients x 25 edits, kill -9 recovery and malformed input
// (ProductionDaemon). feu-daemon-fake (the same daemon program around a test
// double backend with controllable timing and an execution log) covers what
// needs exact control: busy, reload, SIGTERM drain, CURVE, exactly-once counts.
#include <gtest/gtest.h>
#include <signal.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "../service/fake_backend.h"
#include "../service/redis_test_helpers.h"
#include "../service/service_test_helpers.h"
#include "core/h5.h"
#include "core/npy.h"
#include "image/codec.h"
#include "service/client.h"
#include "test_support.h"

namespace feu::service {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string fake_daemon() { return std::string(FEU_TEST_BINARY_DIR) + "/feu-daemon-fake"; }

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A daemon child process; killed on destruction if still running.
class DaemonProcess {
 public:
  DaemonProcess(const std::string& program, std::vector<std::string> args, const test::TempDir& dir,
                const std::string& name = "daemon")
      : endpoint_file_(dir.file(name + ".endpoint")), log_file_(dir.file(name + ".log")) {
    fs::remove(endpoint_file_);
    args.insert(args.begin(), program);
    args.push_back("--endpoint-file");
    args.push_back(endpoint_file_);
    pid_ = test::spawn(std::move(args), log_file_);
  }
  ~DaemonProcess() { test::stop(pid_); }

  // The bound endpoint, once the daemon listens. Empty if it died first.
  std::string endpoint(int timeout_ms = 20000) {
    for (int waited = 0; waited < timeout_ms; waited += 20) {
      std::string text = slurp(endpoint_file_);
      if (!text.empty() && text.back() == '\n') return text.substr(0, text.size() - 1);
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "daemon exited early:\n" << log();
        return "";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << "daemon did not start:\n" << log();
    return "";
  }
  // Sends `sig` and waits for the exit; returns the exit code (128+signal if killed).
  int stop(int sig = SIGTERM, int timeout_ms = 20000) {
    kill(pid_, sig);
    for (int waited = 0; waited < timeout_ms; waited += 10) {
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }
  void signal(int sig) { kill(pid_, sig); }
  pid_t pid() const { return pid_; }
  std::string log() const { return slurp(log_file_); }

 private:
  std::string endpoint_file_, log_file_;
  pid_t pid_ = -1;
};

std::string write_config(const test::TempDir& dir, const std::string& daemon_section,
                         const std::string& extra = "") {
  std::string path = dir.file("config.yaml");
  std::ofstream(path) << extra << "daemon:\n  bind: \"tcp://127.0.0.1:*\"\n  journal_dir: state\n"
                      << daemon_section;
  return path;
}

using test::client_for;
using test::edit_of;
using test::image_text;
using test::submit;
using test::wait_result;

TEST(Daemon, ClientRoundTripAndGracefulSigterm) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(dir, "")}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  std::string feu = test::program("feu") + " --server " + endpoint + " --timeout 10 ";
  std::string out;
  ASSERT_EQ(test::run_command(feu + "ping", &out), 0) << out;
  EXPECT_NE(out.find("pong"), std::string::npos) << out;

  ASSERT_EQ(test::run_command(feu + "edit 'blond hair' --seed 42 -o " + dir.file("out.png"), &out), 0) << out;
  EXPECT_NE(out.find("wrote " + dir.file("out.png")), std::string::npos) << out;
  edit::EditRequest e = edit_of("blond hair", 42);
  EXPECT_EQ(slurp(dir.file("out.png")), test::fake_image_bytes(e, 4.1, "v1"));

  ASSERT_EQ(test::run_command(feu + "edit smile --seed 7 --alphas -3,0,3 -o " + dir.file("multi.png"), &out), 0)
      << out;
  EXPECT_EQ(slurp(dir.file("multi_alpha-3.png")), test::fake_image_bytes(edit_of("smile", 7), -3, "v1"));
  EXPECT_EQ(slurp(dir.file("multi_alpha3.png")), test::fake_image_bytes(edit_of("smile", 7), 3, "v1"));

  EXPECT_EQ(test::run_command(feu + "edit 'fail:no_channels' -o " + dir.file("x.png"), &out), 2);
  EXPECT_NE(out.find("error [no_channels]"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir.file("x.png")));

  ASSERT_EQ(test::run_command(feu + "status", &out), 0) << out;
  json status = json::parse(out);
  EXPECT_EQ(status["counters"]["jobs.done"], 2);
  EXPECT_EQ(status["counters"]["jobs.error.no_channels"], 1);

  EXPECT_EQ(daemon.stop(SIGTERM), 0);
  EXPECT_NE(daemon.log().find("job id="), std::string::npos);
  // Nothing answers any more: the client gives up with a clear error.
  EXPECT_EQ(test::run_command(test::program("feu") + " --server " + endpoint + " --timeout 0.3 --retries 1 ping",
                              &out),
            2);
  EXPECT_NE(out.find("nothing answers at " + endpoint), std::string::npos) << out;
}

TEST(Daemon, EightConcurrentClientsTimes25AllAnsweredOnce) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(),
                       {"--config", write_config(dir, "  max_wait_ms: 2\n"), "--fake-batch-ms", "2",
                        "--fake-exec-log", dir.file("exec.log")},
                       dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  std::atomic<int> correct{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < 8; ++c)
    threads.emplace_back([&, c] {
      Client client(client_for(endpoint));
      for (int i = 0; i < 25; ++i) {
        std::string name = "c" + std::to_string(c) + "-" + std::to_string(i);
        Message reply = client.edit(name, edit_of(name, i));
        if (reply.header["status"] == "done" &&
            image_text(decode_edit_result(reply).images.at(0)) == test::fake_image_bytes(edit_of(name, i), 4.1, "v1"))
          correct++;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(correct.load(), 200);
  std::map<std::string, int> runs;
  std::ifstream log(dir.file("exec.log"));
  for (std::string line; std::getline(log, line);) runs[line]++;
  EXPECT_EQ(runs.size(), 200u);
  for (const auto& [name, n] : runs) EXPECT_EQ(n, 1) << name;
  EXPECT_EQ(daemon.stop(SIGINT), 0);
}

TEST(Daemon, FullQueueAnswersBusy) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(),
                       {"--config", write_config(dir, "  max_queue: 2\n  max_batch: 1\n"), "--fake-batch-ms", "200"},
                       dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  Client client(client_for(endpoint));
  int busy = 0;
  for (int i = 0; i < 6; ++i) {
    auto reply = client.call_raw(to_frames(make_edit_request("q" + std::to_string(i), edit_of("q"))));
    ASSERT_TRUE(reply.has_value());
    if (reply->header["status"] == "busy") {
      busy++;
      EXPECT_GT(reply->header["retry_after_ms"].get<int64_t>(), 0);
    }
  }
  EXPECT_GE(busy, 3);
  EXPECT_EQ(daemon.stop(), 0);
}

TEST(Daemon, Kill9WithQueuedJobsThenRestartCompletesEveryAcceptedJobOnce) {
  test::TempDir dir;
  std::string config = write_config(dir, "  max_batch: 1\n");
  constexpr int kJobs = 20;
  std::vector<std::string> ids;
  {
    DaemonProcess daemon(fake_daemon(),
                         {"--config", config, "--fake-batch-ms", "100", "--fake-exec-log", dir.file("exec.log")}, dir,
                         "first");
    std::string endpoint = daemon.endpoint();
    ASSERT_FALSE(endpoint.empty());
    Client client(client_for(endpoint));
    for (int i = 0; i < kJobs; ++i) {
      std::string id = "k" + std::to_string(i);
      auto reply = client.call_raw(to_frames(make_edit_request(id, edit_of(id, i))));
      ASSERT_TRUE(reply && reply->header["status"] == "accepted") << (reply ? reply->header.dump() : "none");
      ids.push_back(id);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(250));  // a few run, most wait
    EXPECT_EQ(daemon.stop(SIGKILL), 128 + SIGKILL);
  }
  std::map<std::string, int> runs_before;
  {
    std::ifstream log(dir.file("exec.log"));
    for (std::string line; std::getline(log, line);) runs_before[line]++;
  }
  EXPECT_LT(runs_before.size(), size_t(kJobs)) << "the kill should leave queued jobs";

  DaemonProcess daemon(fake_daemon(), {"--config", config, "--fake-exec-log", dir.file("exec.log")}, dir, "second");
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  EXPECT_NE(daemon.log().find("recovered"), std::string::npos) << daemon.log();
  Client client(client_for(endpoint));
  for (int i = 0; i < kJobs; ++i) {
    Message reply = wait_result(client, ids[i]);
    ASSERT_EQ(reply.header["status"], "done") << ids[i] << ": " << reply.header.dump();
    EXPECT_EQ(image_text(decode_edit_result(reply).images.at(0)),
              test::fake_image_bytes(edit_of(ids[i], i), 4.1, "v1"));
  }
  std::map<std::string, int> runs;
  std::ifstream log(dir.file("exec.log"));
  for (std::string line; std::getline(log, line);) runs[line]++;
  int reruns = 0;
  for (const auto& id : ids) {
    EXPECT_GE(runs[id], 1) << id;
    EXPECT_LE(runs[id], 2) << id;
    reruns += runs[id] - 1;
  }
  // Only a job whose batch was running at the kill (result not yet stored) may run again.
  EXPECT_LE(reruns, 1);
  // Resubmitting after the restart returns the stored result without running.
  Message again = client.edit(ids[0], edit_of(ids[0], 0));
  EXPECT_EQ(again.header["duplicate"], true);
  EXPECT_EQ(daemon.stop(), 0);
  std::ifstream final_log(dir.file("exec.log"));
  int lines = 0;
  for (std::string line; std::getline(final_log, line);) lines++;
  EXPECT_EQ(lines, kJobs + reruns);
}

void point_current(const std::string& root, const std::string& version) {
  std::string tmp = root + "/current.tmp";
  fs::remove(tmp);
  fs::create_symlink(version, tmp);
  fs::rename(tmp, root + "/current");  // atomic switch, as a publisher does
}

TEST(Daemon, ReloadUnderLoadAndAFailedLoadKeepsServing) {
  test::TempDir dir;
  std::string root = dir.file("artifacts");
  for (const char* v : {"v1", "v2", "v3-bad"}) fs::create_directories(root + "/" + v);
  point_current(root, "v1");
  std::string config =
      write_config(dir, "  reload_poll_ms: 50\n", "artifacts:\n  root: " + root + "\n");
  DaemonProcess daemon(fake_daemon(), {"--config", config, "--fake-batch-ms", "5", "--fake-reload-ms", "300"}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());

  std::atomic<bool> stop{false};
  std::atomic<int> done{0}, failed{0};
  std::vector<std::thread> load;
  for (int c = 0; c < 4; ++c)
    load.emplace_back([&, c] {
      Client client(client_for(endpoint));
      for (int i = 0; !stop; ++i) {
        std::string id = "l" + std::to_string(c) + "-" + std::to_string(i);
        (client.edit(id, edit_of(id)).header["status"] == "done" ? done : failed)++;
      }
    });
  Client client(client_for(endpoint));
  auto wait_status = [&](const std::function<bool(const json&)>& ok) {
    json status;
    for (int i = 0; i < 500; ++i) {
      status = client.status().header;
      if (ok(status)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return status;
  };
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  point_current(root, "v2");
  // The version switches first, then the reload reports ok: wait for both.
  json status = wait_status([](const json& s) { return s["artifact_version"] == "v2" && s["reload"]["state"] == "ok"; });
  EXPECT_EQ(status["artifact_version"], "v2");
  EXPECT_EQ(status["reload"]["state"], "ok");
  Message after = client.edit("after-v2", edit_of("after-v2"));
  EXPECT_EQ(decode_edit_result(after).diagnostics["artifact_version"], "v2");

  point_current(root, "v3-bad");
  status = wait_status([](const json& s) { return s["reload"]["state"] == "failed"; });
  EXPECT_EQ(status["reload"]["state"], "failed");
  EXPECT_NE(status["reload"]["error"].get<std::string>().find("checksum_mismatch"), std::string::npos);
  EXPECT_EQ(status["artifact_version"], "v2");
  stop = true;
  for (auto& t : load) t.join();
  EXPECT_GT(done.load(), 20);
  EXPECT_EQ(failed.load(), 0);

  point_current(root, "v1");
  daemon.signal(SIGHUP);  // also reloads on demand
  status = wait_status([](const json& s) { return s["artifact_version"] == "v1"; });
  EXPECT_EQ(status["artifact_version"], "v1");
  EXPECT_NE(daemon.log().find("failed, still serving 'v2'"), std::string::npos);
  EXPECT_EQ(daemon.stop(), 0);
}

TEST(Daemon, MalformedInputSuiteThenStillAnswersPing) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(dir, "")}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  Client client(client_for(endpoint, 3000));
  auto code_of = [&](const std::vector<Frame>& frames) -> std::string {
    auto reply = client.call_raw(frames);
    if (!reply) return "no reply";
    return reply->header["error"].value("code", std::string("?"));
  };
  float nan_latent[3] = {0.f, NAN, 1.f};
  std::string nan_frame(reinterpret_cast<const char*>(nan_latent), sizeof nan_latent);
  std::string truncated = to_frames(make_edit_request("t1", edit_of("x")))[0];
  truncated.resize(truncated.size() / 2);
  EXPECT_EQ(code_of({truncated}), "bad_request");
  EXPECT_EQ(code_of({std::string("\x00\x01\x02\xff", 4), std::string(100, '\x7f')}), "bad_request");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t2","instruction":"x","seed":"forty-two"})"}), "bad_request");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t3","instruction":"x","alphas":{"a":1}})"}), "bad_request");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t4","instruction":"x","latent":"s"})", nan_frame}), "invalid_argument");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t5","instruction":"x","latent":"w"})", std::string(7, 'a')}),
            "bad_request");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t6","instruction":"x","mystery":true})"}), "unknown_field");
  EXPECT_EQ(code_of({R"({"type":"teleport","id":"t7"})"}), "unknown_type");
  // Frames over the largest legal frame (a 12 MiB photo) drop the connection
  // before libzmq buffers them: no reply; the client reconnects for the next.
  EXPECT_EQ(code_of({std::string(13 << 20, '{')}), "no reply");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t8","instruction":"x","latent":"w"})", std::string(13 << 20, '\0')}),
            "no reply");
  // Within it, each frame meets its own limit: a 5 MiB latent is over the 4 MiB for latents.
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t8","instruction":"x","latent":"w"})", std::string(5 << 20, '\0')}),
            "payload_too_large");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"t9","instruction":")" + std::string(5000, 'a') + "\"}"}),
            "payload_too_large");
  EXPECT_EQ(code_of({"null"}), "bad_request");
  EXPECT_EQ(code_of({R"({"type":"ping","v":99})"}), "unsupported_version");
  // A REQ-style envelope (empty delimiter) is understood too.
  auto reply = client.call_raw({"", R"({"type":"ping","id":"req"})"});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->header["status"], "done");

  EXPECT_EQ(client.ping().header["status"], "done");
  EXPECT_EQ(daemon.stop(), 0);
}

// Peak resident set of a process (VmHWM), in bytes; 0 when unreadable.
int64_t peak_rss_bytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  return 0;
}

// Sends one multipart message whose frames all point at `payload` (zero-copy:
// the test itself stays small however large the flood).
void send_shared_frames(zmq::socket_t& socket, const std::string& header, const std::string& payload, int frames) {
  socket.send(zmq::buffer(header), frames > 0 ? zmq::send_flags::sndmore : zmq::send_flags::none);
  for (int i = 0; i < frames; ++i) {
    zmq::message_t part(const_cast<char*>(payload.data()), payload.size(), nullptr, nullptr);
    socket.send(part, i + 1 < frames ? zmq::send_flags::sndmore : zmq::send_flags::none);
  }
}

TEST(Daemon, FloodsOfHugeFramesAndDoomedLatentsStayWithinTheBounds) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(dir, ""), "--fake-latent-values", "512"}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  Client client(client_for(endpoint, 5000));
  ASSERT_EQ(client.ping().header["status"], "done");
  const int64_t baseline = peak_rss_bytes(daemon.pid());
  ASSERT_GT(baseline, 0);
  constexpr int64_t kMiB = 1 << 20;

  // 1. Frames far over the largest legal one (4 MiB payloads): 8 connections
  //    each sending 6 frames of 16 MiB. libzmq drops each at its first frame.
  const std::string frame16(16 * kMiB, 'x');
  {
    zmq::context_t context;
    std::vector<zmq::socket_t> peers;
    for (int c = 0; c < 8; ++c) {
      peers.emplace_back(context, zmq::socket_type::dealer);
      peers.back().set(zmq::sockopt::linger, 0);
      peers.back().connect(endpoint);
      send_shared_frames(peers.back(), R"({"type":"edit","id":"big","instruction":"x","latent":"w"})", frame16, 6);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  }
  ASSERT_EQ(client.ping().header["status"], "done");
  const int64_t after_huge = peak_rss_bytes(daemon.pid());

  // 2. 100 edits with 4 MB `w` latents for a model with w_dim 512: each is
  //    refused with shape_mismatch before it is accepted; nothing is journaled.
  const std::string latent(4000000, '\0');
  int refused = 0;
  double slowest_ping_ms = 0;
  {
    zmq::context_t context;
    zmq::socket_t peer(context, zmq::socket_type::dealer);
    peer.set(zmq::sockopt::linger, 0);
    peer.connect(endpoint);
    for (int i = 0; i < 100; ++i)
      send_shared_frames(peer,
                         R"({"type":"edit","id":"flood-)" + std::to_string(i) + R"(","instruction":"x","latent":"w"})",
                         latent, 1);
    auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (refused < 100 && std::chrono::steady_clock::now() < until) {
      auto t0 = std::chrono::steady_clock::now();
      ASSERT_EQ(client.ping().header["status"], "done");
      slowest_ping_ms = std::max(
          slowest_ping_ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      zmq::pollitem_t item{peer.handle(), 0, ZMQ_POLLIN, 0};
      while (zmq::poll(&item, 1, std::chrono::milliseconds(20)) > 0) {
        std::vector<zmq::message_t> parts;
        (void)zmq::recv_multipart(peer, std::back_inserter(parts));
        json header = json::parse(parts.at(0).to_string());
        ASSERT_EQ(header["error"]["code"], "shape_mismatch") << header.dump();
        refused++;
      }
    }
  }
  EXPECT_EQ(refused, 100);
  EXPECT_LT(fs::file_size(dir.file("state/journal.log")), 4096u);
  const int64_t after_latents = peak_rss_bytes(daemon.pid());

  // 3. The worst case libzmq leaves: one message of many legal-size frames is
  //    buffered whole before the daemon sees it (libzmq has no frame-count
  //    limit); the daemon then refuses it. 50 x 4 MiB.
  const std::string frame4(4 * kMiB, 'y');
  {
    zmq::context_t context;
    zmq::socket_t peer(context, zmq::socket_type::dealer);
    peer.set(zmq::sockopt::linger, 0);
    peer.connect(endpoint);
    send_shared_frames(peer, R"({"type":"edit","id":"many","instruction":"x","latent":"w"})", frame4, 50);
    zmq::pollitem_t item{peer.handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_GT(zmq::poll(&item, 1, std::chrono::milliseconds(20000)), 0);
    std::vector<zmq::message_t> parts;
    (void)zmq::recv_multipart(peer, std::back_inserter(parts));
    EXPECT_EQ(json::parse(parts.at(0).to_string())["error"]["code"], "payload_too_large");
  }
  const int64_t after_frames = peak_rss_bytes(daemon.pid());
  std::printf("[ bounds ] daemon peak RSS: baseline %.1f MiB; after 8 x 6 x 16 MiB frames %.1f MiB; after 100 x 4 MB "
              "latents %.1f MiB (slowest concurrent ping %.0f ms); after one 50 x 4 MiB message %.1f MiB\n",
              baseline / double(kMiB), after_huge / double(kMiB), after_latents / double(kMiB), slowest_ping_ms,
              after_frames / double(kMiB));
  // Before the bounds: 8 x 96 MiB buffered, then 400 MB of latents accepted and held.
  EXPECT_LT(after_huge - baseline, 32 * kMiB);
  EXPECT_LT(after_latents - baseline, 96 * kMiB);
  EXPECT_LT(after_frames - baseline, 50 * 4 * kMiB + 96 * kMiB);
  EXPECT_EQ(client.ping().header["status"], "done");
  EXPECT_EQ(daemon.stop(), 0);
}

TEST(Daemon, ASecondDaemonOnTheSameStateDirectoryExitsNamingTheFirst) {
  test::TempDir dir;
  std::string config = write_config(dir, "");
  DaemonProcess first(fake_daemon(), {"--config", config}, dir, "first");
  ASSERT_FALSE(first.endpoint().empty());
  std::string output;
  int code = test::run_command(fake_daemon() + " --config " + config + " 2>&1", &output);
  EXPECT_NE(code, 0);
  EXPECT_NE(output.find("pid " + std::to_string(first.pid())), std::string::npos) << output;
  Client client(client_for(first.endpoint()));
  EXPECT_EQ(client.edit("mine", edit_of("mine")).header["status"], "done");
  EXPECT_EQ(first.stop(), 0);
}

TEST(Daemon, SigtermFinishesTheRunningBatchJournalsTheRestAndExitsZero) {
  test::TempDir dir;
  std::string config = write_config(dir, "  max_batch: 1\n  drain_timeout_ms: 0\n");
  std::vector<std::string> ids;
  {
    DaemonProcess daemon(fake_daemon(), {"--config", config, "--fake-batch-ms", "100"}, dir, "first");
    std::string endpoint = daemon.endpoint();
    ASSERT_FALSE(endpoint.empty());
    Client client(client_for(endpoint));
    for (int i = 0; i < 8; ++i) {
      ids.push_back("s" + std::to_string(i));
      ASSERT_EQ(submit(client, ids.back(), edit_of(ids.back())), "accepted");
    }
    EXPECT_EQ(daemon.stop(SIGTERM), 0);
    EXPECT_NE(daemon.log().find("jobs left journaled"), std::string::npos) << daemon.log();
  }
  DaemonProcess daemon(fake_daemon(), {"--config", config}, dir, "second");
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  Client client(client_for(endpoint));
  for (const auto& id : ids) {
    Message reply = wait_result(client, id);
    EXPECT_EQ(reply.header["status"], "done") << id;
  }
  EXPECT_EQ(daemon.stop(), 0);
}

TEST(Daemon, CurveKeysFromFeuKeygenGateTheClient) {
  if (!zmq_has("curve")) GTEST_SKIP() << "libzmq without CURVE";
  test::TempDir dir;
  std::string feu = test::program("feu");
  std::string out;
  ASSERT_EQ(test::run_command(feu + " keygen --out " + dir.file("server"), &out), 0) << out;
  ASSERT_EQ(test::run_command(feu + " keygen --out " + dir.file("client"), &out), 0) << out;
  ASSERT_EQ(test::run_command(feu + " keygen --out " + dir.file("stranger"), &out), 0) << out;
  fs::copy_file(dir.file("client.pub"), dir.file("allowed.txt"));
  std::string config = write_config(dir, "  curve:\n    secret_key_file: server.key\n    allowed_clients_file: allowed.txt\n");
  DaemonProcess daemon(fake_daemon(), {"--config", config}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  std::string base = feu + " --server " + endpoint + " --timeout 1 --retries 0 --curve-server-key " +
                     dir.file("server.pub");
  EXPECT_EQ(test::run_command(base + " --curve-client-key " + dir.file("client.key") + " ping", &out), 0) << out;
  EXPECT_NE(test::run_command(base + " --curve-client-key " + dir.file("stranger.key") + " ping", &out), 0);
  EXPECT_NE(test::run_command(feu + " --server " + endpoint + " --timeout 1 --retries 0 ping", &out), 0);
  // Swapped key files are named, not left to time out.
  EXPECT_EQ(test::run_command(base + " --curve-client-key " + dir.file("client.pub") + " ping", &out), 2);
  EXPECT_NE(out.find("--curve-client-key " + dir.file("client.pub") + " is marked as a public key"),
            std::string::npos)
      << out;
  std::string swapped = feu + " --server " + endpoint + " --timeout 1 --retries 0 --curve-server-key " +
                        dir.file("server.key") + " --curve-client-key " + dir.file("client.key") + " ping";
  EXPECT_EQ(test::run_command(swapped, &out), 2);
  EXPECT_NE(out.find("is marked as a secret key"), std::string::npos) << out;
  EXPECT_EQ(daemon.stop(), 0);
  EXPECT_EQ(daemon.log().find("readable by group or others"), std::string::npos) << daemon.log();
}

TEST(Daemon, KeygenRefusesToReplaceAKeyWithoutForce) {
  if (!zmq_has("curve")) GTEST_SKIP() << "libzmq without CURVE";
  test::TempDir dir;
  std::string keygen = test::program("feu") + " keygen --out " + dir.file("server"), out;
  ASSERT_EQ(test::run_command(keygen, &out), 0) << out;
  std::string secret = slurp(dir.file("server.key")), public_key = slurp(dir.file("server.pub"));
  EXPECT_EQ(test::run_command(keygen, &out), 2);
  EXPECT_NE(out.find("error [invalid_argument]: " + dir.file("server.key") + " already exists"), std::string::npos)
      << out;
  EXPECT_NE(out.find("--force"), std::string::npos) << out;
  EXPECT_EQ(slurp(dir.file("server.key")), secret);
  EXPECT_EQ(slurp(dir.file("server.pub")), public_key);
  ASSERT_EQ(test::run_command(keygen + " --force", &out), 0) << out;
  EXPECT_NE(slurp(dir.file("server.key")), secret);
  EXPECT_NE(slurp(dir.file("server.pub")), public_key);
}

// Runs the daemon on a config that must be refused; returns its output.
std::string refused_start(const std::string& config, const std::string& more_args = "") {
  std::string out;
  EXPECT_EQ(test::run_command(fake_daemon() + " --config " + config + " " + more_args, &out), 2) << out;
  return out;
}

TEST(Daemon, ConfigMistakesAreRefusedAtStartWithTheirReason) {
  test::TempDir dir;
  std::string out = refused_start(write_config(dir, "  max_queue: -1\n"));
  EXPECT_NE(out.find("daemon.max_queue' must be a positive integer, got -1"), std::string::npos) << out;
  out = refused_start(write_config(dir, ""), "--bind 'tcp://localhost:*'");
  EXPECT_NE(out.find("use 'tcp://127.0.0.1:*'"), std::string::npos) << out;
  if (!zmq_has("curve")) return;
  std::string feu = test::program("feu");
  ASSERT_EQ(test::run_command(feu + " keygen --out " + dir.file("server"), &out), 0) << out;
  ASSERT_EQ(test::run_command(feu + " keygen --out " + dir.file("client"), &out), 0) << out;
  // The public key as the secret: a daemon nobody could reach.
  out = refused_start(
      write_config(dir, "  curve:\n    secret_key_file: server.pub\n    allowed_clients_file: client.pub\n"));
  EXPECT_NE(out.find("server.pub is marked as a public key"), std::string::npos) << out;
  std::ofstream(dir.file("nobody.txt")) << "# add client keys here\n";
  out = refused_start(
      write_config(dir, "  curve:\n    secret_key_file: server.key\n    allowed_clients_file: nobody.txt\n"));
  EXPECT_NE(out.find("lists no client key"), std::string::npos) << out;
}

TEST(Daemon, ASecretKeyOthersCanReadIsWarnedAtStart) {
  if (!zmq_has("curve")) GTEST_SKIP() << "libzmq without CURVE";
  test::TempDir dir;
  std::string out;
  ASSERT_EQ(test::run_command(test::program("feu") + " keygen --out " + dir.file("server"), &out), 0) << out;
  ASSERT_EQ(test::run_command(test::program("feu") + " keygen --out " + dir.file("client"), &out), 0) << out;
  fs::permissions(dir.file("server.key"), fs::perms::group_read | fs::perms::others_read, fs::perm_options::add);
  DaemonProcess daemon(
      fake_daemon(),
      {"--config",
       write_config(dir, "  curve:\n    secret_key_file: server.key\n    allowed_clients_file: client.pub\n")},
      dir);
  ASSERT_FALSE(daemon.endpoint().empty());
  EXPECT_EQ(daemon.stop(), 0);
  std::string warning = "is readable by group or others (mode 0644): run chmod 600 " + dir.file("server.key");
  EXPECT_NE(daemon.log().find(warning), std::string::npos) << daemon.log();
}

TEST(Daemon, EditIntoAMissingDirectoryFailsBeforeSendingAnyWork) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(dir, "")}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  std::string feu = test::program("feu") + " --server " + endpoint + " --timeout 10 ", out;
  std::string missing = dir.file("missing/sub");
  EXPECT_EQ(test::run_command(feu + "edit smile --seed 1 -o " + missing + "/x.png", &out), 2);
  EXPECT_NE(out.find("error [not_found]: -o " + missing + "/x.png: the directory " + missing + " does not exist"),
            std::string::npos)
      << out;
  EXPECT_FALSE(fs::exists(dir.file("missing")));
  ASSERT_EQ(test::run_command(feu + "status", &out), 0) << out;
  EXPECT_EQ(json::parse(out)["counters"].value("accepted", 0), 0) << out;
  EXPECT_EQ(daemon.stop(), 0);
}

TEST(Daemon, MisusedEditFlagsAreNamedBeforeAnyWorkIsSent) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(dir, "")}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  std::string feu = test::program("feu") + " --server " + endpoint + " --timeout 10 ", out;
  {
    std::ofstream latent(dir.file("w.bin"), std::ios::binary);
    latent << std::string(16, '\0');
  }
  const std::string o = " -o " + dir.file("x.png");
  struct Case {
    std::string args;
    std::string needle;
  };
  for (const Case& c : std::vector<Case>{
           {"edit smile --seed 1 --beta abc" + o, "--beta: \"abc\" is not a number"},
           {"edit smile --seed 1 --alphas 1,x" + o, "--alphas: \"x\" is not a number"},
           {"edit smile --seed 1 --k-pos 0" + o, "--k-pos 0 is out of range"},
           {"edit smile --seed 1 --k-neg -5" + o, "--k-neg -5 is out of range"},
           {"edit smile --seed 1 --latent-file " + dir.file("w.bin") + o, "not several"},
           {"edit smile --seed 1 -o " + dir.file("x.webp"), "unknown image extension \".webp\""},
           {"edit smile --seed 1 --format jpeg" + o, "--format jpeg disagrees with -o"},
           {"edit smile --seed 1 --paste" + o, "--face and --paste work on a photo"},
       }) {
    EXPECT_EQ(test::run_command(feu + c.args, &out), 2) << c.args;
    EXPECT_NE(out.find(c.needle), std::string::npos) << c.args << "\n" << out;
  }
  EXPECT_FALSE(fs::exists(dir.file("x.webp")));
  // No face given at all: said, not silent.
  EXPECT_EQ(test::run_command(feu + "edit smile" + o, &out), 0) << out;
  EXPECT_NE(out.find("editing seed 0"), std::string::npos) << out;
  EXPECT_NE(out.find("elapsed: "), std::string::npos) << out;
  ASSERT_EQ(test::run_command(feu + "status", &out), 0) << out;
  EXPECT_EQ(json::parse(out)["counters"].value("accepted", 0), 1) << "only the well-formed edit was sent: " << out;
  EXPECT_EQ(daemon.stop(), 0);
}

TEST(Daemon, BatchEditsEveryInstructionOnEverySeedAndSweepsAlphas) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(dir, "  max_wait_ms: 5\n")}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  std::string feu = test::program("feu") + " --server " + endpoint + " --timeout 10 ", out;
  {
    std::ofstream list(dir.file("instructions.txt"));
    list << "# what to try\nblond hair\n\n  smiling woman  \n";
  }
  ASSERT_EQ(test::run_command(feu + "edit --instructions " + dir.file("instructions.txt") + " --seeds 3-5,9 --outdir " +
                                  dir.file("batch") + " -o " + dir.file("batch/e.png"),
                              &out),
            0)
      << out;
  EXPECT_NE(out.find("8 edits, 0 failed"), std::string::npos) << out;
  for (const std::string text : {"blond hair", "smiling woman"}) {
    for (int seed : {3, 4, 5, 9}) {
      const std::string name = "batch/e_" + std::string(text == "blond hair" ? "blond_hair" : "smiling_woman") +
                               "_seed" + std::to_string(seed) + ".png";
      EXPECT_EQ(slurp(dir.file(name)), test::fake_image_bytes(edit_of(text, seed), 4.1, "v1")) << name;
    }
  }
  // An α sweep FROM:TO:COUNT: numpy's linspace, both ends included.
  ASSERT_EQ(test::run_command(feu + "edit smile --seed 7 --alphas=-4:4:5 -o " + dir.file("sweep.png"), &out), 0) << out;
  for (const char* alpha : {"-4", "-2", "0", "2", "4"})
    EXPECT_EQ(slurp(dir.file(std::string("sweep_alpha") + alpha + ".png")),
              test::fake_image_bytes(edit_of("smile", 7), std::stod(alpha), "v1"))
        << alpha;
  EXPECT_EQ(test::run_command(feu + "edit smile --seed 7 --alphas=-4:4 -o " + dir.file("x.png"), &out), 2);
  EXPECT_NE(out.find("FROM:TO:COUNT"), std::string::npos) << out;
  // One failing job of a batch is reported; the others are written.
  {
    std::ofstream list(dir.file("mixed.txt"));
    list << "fail:no_channels\nsmile\n";
  }
  EXPECT_EQ(test::run_command(feu + "edit --instructions " + dir.file("mixed.txt") + " --seed 1 -o " +
                                  dir.file("mixed.png"),
                              &out),
            2);
  EXPECT_NE(out.find("error [no_channels] in \"fail:no_channels\""), std::string::npos) << out;
  EXPECT_TRUE(fs::exists(dir.file("mixed_smile.png"))) << out;
  EXPECT_EQ(daemon.stop(), 0);
}

TEST(Daemon, JsonLogLinesAreOneObjectEachWhateverTheRequestSays) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(dir, ""), "--log-format", "json"}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  Client client(client_for(endpoint));
  EXPECT_EQ(client.edit("quote\"d", edit_of("say \"hi\"\n\x1b[31m")).header["status"], "done");
  EXPECT_EQ(daemon.stop(), 0);
  std::istringstream lines(daemon.log());
  int parsed = 0, jobs = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.empty()) continue;
    const json entry = json::parse(line, nullptr, false);
    ASSERT_TRUE(entry.is_object()) << "not one JSON object: " << line;
    EXPECT_TRUE(entry["time"].is_string() && entry["level"].is_string() && entry["message"].is_string()) << line;
    jobs += entry["message"].get<std::string>().find("job id=") != std::string::npos;
    ++parsed;
  }
  EXPECT_GE(parsed, 3);
  EXPECT_EQ(jobs, 1);
}

// A port nobody listens on: the one a daemon in `dir` used before it stopped ("" if it never started).
std::string stopped_daemon_endpoint(const test::TempDir& dir) {
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(dir, "")}, dir);
  const std::string endpoint = daemon.endpoint();
  EXPECT_EQ(daemon.stop(), 0);
  return endpoint;
}

TEST(Daemon, ACallToAStoppedDaemonFailsAtOnceNamingTheAddress) {
  test::TempDir dir;
  const std::string endpoint = stopped_daemon_endpoint(dir);
  ASSERT_FALSE(endpoint.empty());
  // Long timeouts and retries: only the probe can end these calls early.
  std::string feu = test::program("feu") + " --server " + endpoint + " --timeout 600 --retries 5 ", out;
  for (const std::string& call : {std::string("ping"), std::string("status"),
                                  "edit smile --seed 1 -o " + dir.file("x.png")}) {
    EXPECT_EQ(test::run_command(feu + call, &out), 2) << call;
    EXPECT_NE(out.find("nothing answers at " + endpoint), std::string::npos) << call << "\n" << out;
    EXPECT_NE(out.find("is feu-daemon running"), std::string::npos) << out;
  }
}

TEST(Daemon, AFrontListWithAStoppedFrontGoesToTheOneThatListens) {
  test::TempDir dir;
  const std::string stopped = stopped_daemon_endpoint(dir);
  ASSERT_FALSE(stopped.empty());
  test::TempDir live_dir;
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(live_dir, "")}, live_dir);
  const std::string live = daemon.endpoint();
  ASSERT_FALSE(live.empty());
  // Timeouts of 600 s: only skipping the stopped front (whichever the client starts on) ends this early.
  std::string out;
  for (int attempt = 0; attempt < 4; ++attempt) {
    ASSERT_EQ(test::run_command(test::program("feu") + " --server " + stopped + "," + live +
                                    " --timeout 600 edit smile --seed 1 -o " + dir.file("x.png"),
                                &out),
              0)
        << out;
  }
  // FEU_SERVER stands for --server; when no front listens, the error names each.
  EXPECT_EQ(test::run_command("FEU_SERVER=" + stopped + "," + stopped + " " + test::program("feu") + " ping", &out), 2);
  EXPECT_NE(out.find("nothing answers at " + stopped), std::string::npos) << out;
}

TEST(Daemon, RequestTextCannotForgeLogLines) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(dir, "")}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  Client client(client_for(endpoint, 3000));
  const std::string forged = "2026-01-01T00:00:00.000 info job id=forged type=edit outcome=done";
  for (const std::string& header :
       {R"({"type":"ping\n)" + forged + R"("})", R"({"type":"ping","x\n)" + forged + R"(":1})",
        "{\"type\":\"ping\",\"\xff\n" + forged + "\"}"}) {
    auto reply = client.call_raw({header});
    ASSERT_TRUE(reply.has_value());
    std::string message = reply->header["error"].value("message", std::string());
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
  EXPECT_EQ(daemon.stop(), 0);
  std::istringstream lines(daemon.log());
  int rejected = 0;
  for (std::string line; std::getline(lines, line);) {
    EXPECT_NE(line.rfind(forged.substr(0, 40), 0), 0u) << "forged log line: " << line;
    if (line.find("rejected request") != std::string::npos) ++rejected;
    for (unsigned char c : line) EXPECT_LT(c, 0x80u) << "raw non-ASCII byte in: " << line;
  }
  EXPECT_EQ(rejected, 3) << daemon.log();
}

TEST(Daemon, AResendSpelledDifferentlyIsADuplicateNotAnIdConflict) {
  test::TempDir dir;
  DaemonProcess daemon(fake_daemon(), {"--config", write_config(dir, "")}, dir);
  std::string endpoint = daemon.endpoint();
  ASSERT_FALSE(endpoint.empty());
  Client client(client_for(endpoint));
  auto reply = client.call_raw({R"({"type":"edit","id":"same","instruction":"smile","alphas":[3]})"});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->header["status"], "accepted");
  EXPECT_EQ(wait_result(client, "same").header["status"], "done");
  // Fresh connections: the first one also receives the job's own `done`.
  reply = Client(client_for(endpoint))
              .call_raw({R"({"v":1,"type":"edit","id":"same","instruction":"smile","alphas":[3.0],)"
                         R"("method":"feu","format":"png","latent":"seed","seed":0})"});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->header["status"], "done") << reply->header.dump();
  EXPECT_EQ(reply->header.value("duplicate", false), true) << reply->header.dump();
  reply = Client(client_for(endpoint))
              .call_raw({R"({"type":"edit","id":"same","instruction":"smile","alphas":[4]})"});
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->header["error"]["code"], "id_conflict");
  EXPECT_EQ(daemon.stop(), 0);
}

// The production daemon and engine on a freshly built embedded default
// (small random models, synthetic corpus): the real thing, end to end. ctest
// runs every test in its own process, so the assets are built once per build
// of feu-indexer into the build tree (under a lock: tests run in parallel) and
// shared by every ProductionDaemon test; none of them writes to them.
class ProductionDaemon : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string indexer = test::program("feu-indexer"), out;
    if (!fs::exists(test::program("feu-daemon")) || !fs::exists(indexer)) return;
    if (test::run_command(indexer + " demo-assets --help", &out) != 0) return;
    const fs::path cache = fs::path(test::program("feu-indexer")).parent_path().parent_path() / "test-cache";
    fs::create_directories(cache);
    const int lock = ::open((cache / "production-demo.lock").c_str(), O_CREAT | O_RDWR | O_CLOEXEC, 0644);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) {
      build_log_ = "cannot lock " + (cache / "production-demo.lock").string();
      build_status_ = 1;
      demo_ = "unusable";
      return;
    }
    // The indexer that built them: a rebuilt feu-indexer rebuilds the assets.
    const auto stamp = std::to_string(fs::file_size(indexer)) + " " +
                       std::to_string(fs::last_write_time(indexer).time_since_epoch().count());
    demo_ = (cache / "production-demo").string();
    if (fs::exists(demo_ + ".stamp") && slurp(demo_ + ".stamp") == stamp && fs::exists(demo_ + "/artifacts/current")) {
      build_status_ = 0;
    } else {
      fs::remove_all(demo_);
      fs::remove(demo_ + ".stamp");
      build_status_ = test::run_command(indexer + " demo-assets --quiet --out " + demo_ +
                                            " --images 40 --stats-samples 500 --direction-images 2",
                                        &build_log_);
      if (build_status_ == 0) std::ofstream(demo_ + ".stamp") << stamp;
    }
    ::close(lock);  // releases the lock
  }
  void SetUp() override {
    if (demo_.empty()) GTEST_SKIP() << "feu-daemon or feu-indexer (with demo-assets) not built";
    ASSERT_EQ(build_status_, 0) << build_log_;
  }
  // A config in `dir` serving the suite's embedded default.
  std::string config(const test::TempDir& dir, const std::string& daemon_section = "") const {
    const std::string& demo = demo_;
    return write_config(dir, daemon_section,
                        "device: cpu\nmodels:\n  generator: " + demo + "/models/generator.h5\n  clip: " + demo +
                            "/models/clip.h5\n  vocab: " + demo + "/models/vocab.txt.gz\n  e4e: " + demo +
                            "/models/e4e.h5\nartifacts:\n  root: " +
                            demo + "/artifacts\nedit:\n  beta: auto\n  k_pos: 10\n  k_neg: 10\n");
  }
  // How many times the daemon's per-job log lines say each id finished.
  static std::map<std::string, int> finished_jobs(const std::string& log) {
    std::map<std::string, int> runs;
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);) {
      size_t at = line.find("job id=");
      if (at == std::string::npos || line.find("type=edit") == std::string::npos) continue;
      std::string id = line.substr(at + 7, line.find(' ', at + 7) - at - 7);
      runs[id]++;
    }
    return runs;
  }

  static std::string demo_;  // the shared assets' directory; "" when the programs are missing
  static int build_status_;
  static std::string build_log_;
};
std::string ProductionDaemon::demo_;
int ProductionDaemon::build_status_ = -1;
std::string ProductionDaemon::build_log_;

TEST_F(ProductionDaemon, ServesTheEmbeddedDefaultThroughTheClient) {
  test::TempDir dir;
  DaemonProcess daemon(test::program("feu-daemon"), {"--config", config(dir)}, dir);
  std::string endpoint = daemon.endpoint(120000);
  ASSERT_FALSE(endpoint.empty());
  std::string out;
  std::string feu = test::program("feu") + " --server " + endpoint + " --timeout 60 ";
  ASSERT_EQ(test::run_command(feu + "edit 'blond hair' --seed 42 --alphas=-3,3 -o " + dir.file("real.png"), &out), 0)
      << out << daemon.log();
  for (const char* name : {"real_alpha-3.png", "real_alpha3.png"}) {
    std::string png = slurp(dir.file(name));
    ASSERT_GT(png.size(), 8u) << name;
    EXPECT_EQ(png.substr(1, 3), "PNG") << name;
  }
  // Two edits of the same face in opposite directions differ.
  EXPECT_NE(slurp(dir.file("real_alpha-3.png")), slurp(dir.file("real_alpha3.png")));
  // A typed engine error crosses the wire intact.
  EXPECT_EQ(test::run_command(feu + "edit 'blond hair' --method global -o " + dir.file("bad.png"), &out), 2);
  EXPECT_NE(out.find("error [invalid_argument]"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(feu + "retrieve smiling -k 3", &out), 0) << out;
  EXPECT_NE(out.find("hits"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(feu + "status", &out), 0) << out;
  json status = json::parse(out);
  EXPECT_EQ(status["counters"]["jobs.done"], 1);
  EXPECT_FALSE(status["artifact_version"].get<std::string>().empty());
  EXPECT_EQ(daemon.stop(), 0);
}

// Width and height from a PNG's IHDR (bytes 16-23, big-endian).
std::pair<int, int> png_size(const std::string& png) {
  if (png.size() < 24 || png.substr(1, 3) != "PNG") return {0, 0};
  auto be32 = [&](size_t at) {
    return (uint32_t(uint8_t(png[at])) << 24) | (uint32_t(uint8_t(png[at + 1])) << 16) |
           (uint32_t(uint8_t(png[at + 2])) << 8) | uint32_t(uint8_t(png[at + 3]));
  };
  return {int(be32(16)), int(be32(20))};
}

// The largest per-channel difference of two same-sized images (256 when they are not).
int max_pixel_difference(const std::string& a_path, const std::string& b_path) {
  const image::Image a = image::decode_file(a_path), b = image::decode_file(b_path);
  if (a.width != b.width || a.height != b.height || a.rgb.size() != b.rgb.size()) return 256;
  int most = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) most = std::max(most, std::abs(int(a.rgb[i]) - int(b.rgb[i])));
  return most;
}

// One default ψ: `generate --seeds K` shows the face `feu edit --seed K` edits
// (its original), up to the half level by which NVlabs' and StyleCLIP's
// quantizations differ; --trunc 1 is NVlabs' untruncated face, and --config's
// edit.psi rules generate as it rules edit.
TEST_F(ProductionDaemon, GenerateAndEditShowTheSameFaceForASeed) {
  test::TempDir dir;
  const std::string cfg = config(dir);
  const std::string indexer = test::program("feu-indexer");
  std::string out;
  ASSERT_EQ(test::run_command(indexer + " generate --config " + cfg + " --seeds 42 --outdir " + dir.file("gen"), &out),
            0)
      << out;
  ASSERT_EQ(test::run_command(test::program("feu") + " edit 'blond hair' --seed 42 --local --config " + cfg +
                                  " --alphas 3 --original -o " + dir.file("edit.png"),
                              &out),
            0)
      << out;
  EXPECT_LE(max_pixel_difference(dir.file("gen/seed0042.png"), dir.file("edit_original.png")), 1);
  const std::string generator = demo_ + "/models/generator.h5";
  ASSERT_EQ(test::run_command(indexer + " generate --network " + generator + " --seeds 42 --trunc 1 --outdir " +
                                  dir.file("nvlabs"),
                              &out),
            0)
      << out;
  EXPECT_GT(max_pixel_difference(dir.file("nvlabs/seed0042.png"), dir.file("edit_original.png")), 1);
  std::string text = slurp(cfg);
  text.replace(text.find("  k_neg: 10\n"), 12, "  k_neg: 10\n  psi: 1\n");
  std::ofstream(dir.file("psi1.yaml")) << text;
  ASSERT_EQ(test::run_command(indexer + " generate --config " + dir.file("psi1.yaml") + " --seeds 42 --outdir " +
                                  dir.file("config_psi1"),
                              &out),
            0)
      << out;
  EXPECT_EQ(slurp(dir.file("config_psi1/seed0042.png")), slurp(dir.file("nvlabs/seed0042.png")));
}

// --latent-file: .h5, .npy (ours and numpy's) and e4e's latents.pt give the
// same edits, through the daemon and in-process; one job per latent; the
// ambiguous [N, w_dim] needs --latent-kind.
TEST_F(ProductionDaemon, EditsLatentFilesOfEveryFormat) {
  test::TempDir dir;
  const std::string cfg = config(dir);
  DaemonProcess daemon(test::program("feu-daemon"), {"--config", cfg}, dir);
  const std::string endpoint = daemon.endpoint(120000);
  ASSERT_FALSE(endpoint.empty());
  std::string out;
  ASSERT_EQ(test::run_command(test::program("feu") + " --server " + endpoint + " status", &out), 0) << out;
  const json generator = json::parse(out)["engine"]["generator"];
  const int64_t num_ws = generator["num_ws"].get<int64_t>(), w_dim = generator["w_dim"].get<int64_t>();
  // Values exact in float32, the same as the Python writers make.
  std::vector<float> wplus(static_cast<size_t>(2 * num_ws * w_dim));
  for (size_t i = 0; i < wplus.size(); ++i) wplus[i] = static_cast<float>(static_cast<int>(i % 17) - 8) / 16;
  {
    h5::File file = h5::File::create(dir.file("wplus.h5"));
    file.write_float("wplus", wplus.data(), {2, num_ws, w_dim});
  }
  npy::write_float(dir.file("wplus.npy"), wplus.data(), {2, num_ws, w_dim});
  npy::write_float(dir.file("w.npy"), wplus.data(), {2, w_dim});
  std::vector<std::string> inputs = {dir.file("wplus.h5"), dir.file("wplus.npy")};
  const std::string n = std::to_string(2 * num_ws * w_dim), shape = "(2, " + std::to_string(num_ws) + ", " +
                                                                      std::to_string(w_dim) + ")";
  if (test::run_command("/usr/bin/python3 -c \"import numpy as np, torch; x = ((np.arange(" + n +
                            ") % 17 - 8) / 16).reshape" + shape + "; np.save('" + dir.file("py.npy") +
                            "', x); torch.save(torch.from_numpy(x.astype(np.float32)), '" + dir.file("latents.pt") +
                            "')\"",
                        &out) == 0) {
    inputs.push_back(dir.file("py.npy"));
    inputs.push_back(dir.file("latents.pt"));
  } else {
    std::cout << "[ SKIPPED  ] numpy/torch.save writers: /usr/bin/python3 lacks numpy or torch: " << out << "\n";
  }
  const std::string feu = test::program("feu") + " --server " + endpoint + " --timeout 60 ";
  const std::string local = test::program("feu") + " edit 'blond hair' --local --config " + cfg + " --alphas 3";
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string name = "daemon" + std::to_string(i) + ".png";
    ASSERT_EQ(test::run_command(feu + "edit 'blond hair' --alphas 3 --latent-file " + inputs[i] + " -o " +
                                    dir.file(name),
                                &out),
              0)
        << inputs[i] << ": " << out << daemon.log();
    for (const char* latent : {"_latent0", "_latent1"}) {
      const std::string png = slurp(dir.file("daemon" + std::to_string(i) + latent + ".png"));
      EXPECT_EQ(png.substr(1, 3), "PNG") << inputs[i];
      EXPECT_EQ(png, slurp(dir.file(std::string("daemon0") + latent + ".png"))) << inputs[i];
    }
  }
  EXPECT_NE(slurp(dir.file("daemon0_latent0.png")), slurp(dir.file("daemon0_latent1.png")));
  ASSERT_EQ(test::run_command(local + " --latent-file " + inputs.back() + " -o " + dir.file("local.png"), &out), 0)
      << out;
  ASSERT_EQ(
      test::run_command(local + " --latent-file " + dir.file("wplus.h5") + " -o " + dir.file("local_h5.png"), &out), 0)
      << out;
  EXPECT_EQ(slurp(dir.file("local_latent1.png")), slurp(dir.file("local_h5_latent1.png")));
  EXPECT_LE(max_pixel_difference(dir.file("local_latent1.png"), dir.file("daemon0_latent1.png")), 1);

  // [N, w_dim]: z or w, which the flag says; this engine maps no z.
  EXPECT_EQ(test::run_command(feu + "edit smile --latent-file " + dir.file("w.npy") + " -o " + dir.file("x.png"), &out),
            2);
  EXPECT_NE(out.find("--latent-kind z|w"), std::string::npos) << out;
  EXPECT_EQ(test::run_command(feu + "edit smile --latent-kind z --latent-file " + dir.file("w.npy") + " -o " +
                                  dir.file("x.png"),
                              &out),
            2);
  EXPECT_NE(out.find("z latents need the generator's mapping network"), std::string::npos) << out;
  ASSERT_EQ(test::run_command(feu + "edit smile --latent-kind w --latent-file " + dir.file("w.npy") + " -o " +
                                  dir.file("w.png"),
                              &out),
            0)
      << out;
  // A shape of another generator, named with the file.
  npy::write_float(dir.file("wide.npy"), wplus.data(), {2, num_ws, w_dim / 2});
  EXPECT_EQ(test::run_command(feu + "edit smile --latent-file " + dir.file("wide.npy") + " -o " + dir.file("x.png"),
                              &out),
            2);
  EXPECT_NE(out.find(dir.file("wide.npy")), std::string::npos) << out;
  EXPECT_NE(out.find("shape_mismatch"), std::string::npos) << out;
  EXPECT_EQ(daemon.stop(), 0);
}

TEST_F(ProductionDaemon, EditsARealPhotoThroughTheDaemonAndInProcess) {
  FEU_SHARED_FILE_OR_SKIP(photo, "faces/Tom_Cruise_avp_2014_4.jpg");
  test::TempDir dir;
  DaemonProcess daemon(test::program("feu-daemon"), {"--config", config(dir)}, dir);
  std::string endpoint = daemon.endpoint(120000);
  ASSERT_FALSE(endpoint.empty());
  std::string out;
  std::string feu = test::program("feu") + " --server " + endpoint + " --timeout 60 ";
  ASSERT_EQ(test::run_command(feu + "edit 'blond hair' --image " + photo + " --alphas=-3,3 --save-latents " +
                                  dir.file("latents.h5") + " -o " + dir.file("face.png"),
                              &out),
            0)
      << out << daemon.log();
  EXPECT_NE(out.find("face: 0 of 1 found (inversion miss)"), std::string::npos) << out;
  // The edits and the reconstruction at the generator's size (the demo's 64²).
  for (const char* name : {"face_alpha-3.png", "face_alpha3.png", "face_reconstruction.png"})
    EXPECT_EQ(png_size(slurp(dir.file(name))), std::make_pair(64, 64)) << name;
  EXPECT_NE(slurp(dir.file("face_alpha-3.png")), slurp(dir.file("face_alpha3.png")));
  EXPECT_TRUE(fs::exists(dir.file("latents.h5")));

  // --paste: the edits at the photo's own (upright) size, which the reply states.
  ASSERT_EQ(test::run_command(feu + "--json edit 'blond hair' --image " + photo + " --paste --alphas=3 -o " +
                                  dir.file("pasted.png"),
                              &out),
            0)
      << out << daemon.log();
  const json header = json::parse(out.substr(0, out.find('\n')));
  const json photo_size = header["diagnostics"]["face"]["photo_size"];
  EXPECT_EQ(header["diagnostics"]["face"]["inversion_cache"], "hit") << "the second edit of a photo reuses its inversion";
  EXPECT_EQ(header["wplus"]["shape"], json::array({10, 32}));
  EXPECT_EQ(png_size(slurp(dir.file("pasted.png"))),
            std::make_pair(photo_size[0].get<int>(), photo_size[1].get<int>()));
  EXPECT_EQ(png_size(slurp(dir.file("pasted_reconstruction.png"))), png_size(slurp(dir.file("pasted.png"))));

  // A photo without a face is a typed error naming what is missing.
  {
    std::ofstream grey(dir.file("grey.png"), std::ios::binary);
    grey << slurp(dir.file("face_alpha3.png"));  // a 64x64 random render: no face dlib can find
  }
  EXPECT_EQ(test::run_command(feu + "edit 'blond hair' --image " + dir.file("grey.png") + " -o " + dir.file("x.png"),
                              &out),
            2);
  EXPECT_NE(out.find("error [no_face]"), std::string::npos) << out;
  EXPECT_EQ(daemon.stop(), 0);

  // The same photo in-process (--local): the same reconstruction.
  ASSERT_EQ(test::run_command(test::program("feu") + " edit --local --config " + config(dir) + " 'blond hair' --image " +
                                  photo + " --alphas=3 -o " + dir.file("local.png"),
                              &out),
            0)
      << out;
  EXPECT_EQ(slurp(dir.file("local_reconstruction.png")), slurp(dir.file("face_reconstruction.png")));
  // A batch in-process: the models load once, every seed gets its image.
  ASSERT_EQ(test::run_command(test::program("feu") + " edit --local --config " + config(dir) +
                                  " 'blond hair' --seeds 1-3 --alphas=2 -o " + dir.file("seeds.png"),
                              &out),
            0)
      << out;
  EXPECT_NE(out.find("3 edits, 0 failed"), std::string::npos) << out;
  for (const char* name : {"seeds_seed1.png", "seeds_seed2.png", "seeds_seed3.png"})
    EXPECT_EQ(png_size(slurp(dir.file(name))), std::make_pair(64, 64)) << name;
  EXPECT_NE(slurp(dir.file("seeds_seed1.png")), slurp(dir.file("seeds_seed2.png")));
}

TEST_F(ProductionDaemon, ContactSheetShowsThePositivesAndNegativesTheSvmSaw) {
  test::TempDir dir;
  std::string out;
  ASSERT_EQ(test::run_command(test::program("feu") + " retrieve 'blond hair' --local --config " + config(dir) +
                                  " --contact-sheet " + dir.file("sheet.png") + " --k-pos 5 --k-neg 7",
                              &out),
            0)
      << out;
  const json explained = json::parse(out.substr(out.find('{')));
  EXPECT_EQ(explained["retrieval"]["positives"].size(), 5u);
  EXPECT_EQ(explained["retrieval"]["negatives"].size(), 7u);
  EXPECT_EQ(explained["contact_sheet"]["images"], 12);
  EXPECT_EQ(explained["contact_sheet"]["missing"], 0) << "the demo corpus images are on disk";
  EXPECT_TRUE(explained["svm"].contains("accuracy"));
  // Positives on one row, negatives on the next: 10 cells of 96 + 2x3 frame + 4 gap, plus the outer gap.
  EXPECT_EQ(png_size(slurp(dir.file("sheet.png"))), std::make_pair(10 * 106 + 4, 2 * 106 + 4));
  EXPECT_EQ(test::run_command(test::program("feu") + " retrieve 'blond hair' --contact-sheet " + dir.file("x.png"), &out),
            2);
  EXPECT_NE(out.find("run it with --local"), std::string::npos) << out;
}

TEST_F(ProductionDaemon, EightConcurrentClientsTimes25AllAnsweredOnce) {
  test::TempDir dir;
  DaemonProcess daemon(test::program("feu-daemon"), {"--config", config(dir, "  max_wait_ms: 2\n")}, dir);
  std::string endpoint = daemon.endpoint(120000);
  ASSERT_FALSE(endpoint.empty());
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < 8; ++c)
    threads.emplace_back([&, c] {
      Client client(client_for(endpoint, 60000));
      for (int i = 0; i < 25; ++i) {
        // Four instructions shared by all clients: text, retrieval and SVM caches are exercised too.
        std::string id = "c" + std::to_string(c) + "-" + std::to_string(i);
        Message reply = client.edit(id, edit_of(i % 2 ? "blond hair" : "smiling woman", c * 25 + i));
        if (reply.header["status"] == "done" && !decode_edit_result(reply).images.at(0).bytes.empty()) done++;
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(done.load(), 200);
  EXPECT_EQ(daemon.stop(), 0);
  std::map<std::string, int> runs = finished_jobs(daemon.log());
  EXPECT_EQ(runs.size(), 200u);
  for (const auto& [id, n] : runs) EXPECT_EQ(n, 1) << id;
}

TEST_F(ProductionDaemon, Kill9WithQueuedJobsThenRestartCompletesEveryAcceptedJob) {
  test::TempDir dir;
  std::string cfg = config(dir, "  max_batch: 1\n");
  constexpr int kJobs = 20;
  std::vector<std::string> ids;
  std::string first_log;
  {
    DaemonProcess daemon(test::program("feu-daemon"), {"--config", cfg}, dir, "first");
    std::string endpoint = daemon.endpoint(120000);
    ASSERT_FALSE(endpoint.empty());
    Client client(client_for(endpoint, 60000));
    for (int i = 0; i < kJobs; ++i) {
      std::string id = "k" + std::to_string(i);
      ASSERT_EQ(test::submit(client, id, edit_of("blond hair", i, {-2.0, 2.0})), "accepted");
      ids.push_back(id);
    }
    EXPECT_EQ(daemon.stop(SIGKILL), 128 + SIGKILL);
    first_log = daemon.log();
  }
  std::map<std::string, int> before = finished_jobs(first_log);
  EXPECT_LT(before.size(), size_t(kJobs)) << "the kill should leave accepted jobs unfinished";

  DaemonProcess daemon(test::program("feu-daemon"), {"--config", cfg}, dir, "second");
  std::string endpoint = daemon.endpoint(120000);
  ASSERT_FALSE(endpoint.empty());
  Client client(client_for(endpoint, 60000));
  for (const std::string& id : ids) {
    Message reply = test::wait_result(client, id, 6000);
    ASSERT_EQ(reply.header["status"], "done") << id << ": " << reply.header.dump();
    EXPECT_EQ(decode_edit_result(reply).images.size(), 2u) << id;
  }
  EXPECT_EQ(daemon.stop(), 0);
  // Every job shows as finished in exactly one of the two logs, except at most
  // the one job (max_batch 1) that was in flight at the kill: it may have
  // stored its result and died before its log line (0 lines, answered from the
  // store), or died before storing and run again (still 1 line).
  std::map<std::string, int> after = finished_jobs(daemon.log());
  int unlike_once = 0;
  for (const std::string& id : ids) {
    int runs = before[id] + after[id];
    if (runs != 1) {
      ++unlike_once;
      EXPECT_LE(runs, 1) << id << " ran again although the first run logged it finished";
    }
  }
  EXPECT_LE(unlike_once, 1);
}

TEST_F(ProductionDaemon, MalformedInputThenStillAnswersPing) {
  test::TempDir dir;
  DaemonProcess daemon(test::program("feu-daemon"), {"--config", config(dir)}, dir);
  std::string endpoint = daemon.endpoint(120000);
  ASSERT_FALSE(endpoint.empty());
  Client client(client_for(endpoint, 10000));
  auto code_of = [&](const std::vector<Frame>& frames) -> std::string {
    auto reply = client.call_raw(frames);
    if (!reply) return "no reply";
    if (!reply->header.contains("error")) return reply->header.value("status", std::string("?"));
    return reply->header["error"].value("code", std::string("?"));
  };
  float nan_latent[3] = {0.f, NAN, 1.f};
  std::string nan_frame(reinterpret_cast<const char*>(nan_latent), sizeof nan_latent);
  EXPECT_EQ(code_of({std::string("\x00\x01\x02\xff", 4), std::string(100, '\x7f')}), "bad_request");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"m1","instruction":"x","seed":"forty-two"})"}), "bad_request");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"m2","instruction":"x","latent":"w"})", nan_frame}), "invalid_argument");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"m3","instruction":"x","mystery":true})"}), "unknown_field");
  // A frame over the largest legal one: libzmq drops the connection unread.
  EXPECT_EQ(code_of({std::string(20 << 20, '{')}), "no reply");
  // A well-formed request the loaded models cannot run: W of the wrong length
  // for this generator, and a prompt longer than CLIP reads. Refused with the
  // engine's typed error before it is accepted or journaled.
  std::string short_w(4 * 3, '\0');
  EXPECT_EQ(code_of({R"({"type":"edit","id":"m4","instruction":"x","latent":"w"})", short_w}), "shape_mismatch");
  EXPECT_EQ(client.result("m4").header["error"]["code"], "not_found");  // never accepted
  std::string long_prompt;
  for (int i = 0; i < 90; ++i) long_prompt += "word ";
  EXPECT_EQ(code_of({R"({"type":"edit","id":"m5","instruction":")" + long_prompt + R"("})"}), "invalid_argument");
  EXPECT_EQ(client.ping().header["status"], "done");
  EXPECT_EQ(daemon.stop(), 0);
}


// The fleet as processes: redis-server, 2 fronts and 3 workers of feu-daemon-fake,
// 8 clients x 25 edits spread over both fronts; a worker and a front are killed
// with -9 during the run. Every id is answered with its own result, every job
// runs at least once and at most twice (only one running at a worker's kill runs
// again), and nothing accepted is lost.
TEST(DaemonFleet, TwoFrontsThreeWorkersSurviveKill9OfAWorkerAndAFront) {
  test::TempDir dir;
  fs::create_directories(dir.file("redis"));
  test::RedisServerProcess redis(dir.file("redis"));
  std::string config = write_config(dir, "  max_batch: 4\n  queue: {backend: redis, url: '" + redis.url() +
                                             "', stream: 'feu:jobs', visibility_timeout_ms: 1000, "
                                             "worker_timeout_ms: 1000}\n");
  std::vector<std::unique_ptr<DaemonProcess>> fronts, workers;
  std::vector<std::string> front_endpoints;
  for (int i = 0; i < 2; ++i) {
    fronts.push_back(std::make_unique<DaemonProcess>(
        fake_daemon(), std::vector<std::string>{"--config", config, "--role", "front"}, dir,
        "front" + std::to_string(i)));
    front_endpoints.push_back(fronts.back()->endpoint());
    ASSERT_FALSE(front_endpoints.back().empty());
  }
  for (int i = 0; i < 3; ++i) {
    workers.push_back(std::make_unique<DaemonProcess>(
        fake_daemon(),
        std::vector<std::string>{"--config", config, "--role", "worker", "--fake-batch-ms", "150",
                                 "--fake-exec-log", dir.file("exec" + std::to_string(i) + ".log")},
        dir, "worker" + std::to_string(i)));
    EXPECT_EQ(workers.back()->endpoint(), "") << "a worker alone listens nowhere";
  }
  constexpr int kClients = 8, kEdits = 25;
  std::atomic<int> good{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c)
    clients.emplace_back([&, c] {
      // Each client lists both fronts, starting with either.
      ClientOptions options = client_for(front_endpoints[c % 2] + "," + front_endpoints[1 - c % 2], 2000);
      options.retries = 6;
      Client client(options);
      for (int j = 0; j < kEdits; ++j) {
        std::string instruction = "fleet c" + std::to_string(c) + " e" + std::to_string(j);
        edit::EditRequest e = edit_of(instruction, j);
        try {
          Message reply = client.edit(instruction, e);
          if (reply.header.value("status", std::string()) == "done" &&
              image_text(decode_edit_result(reply).images.at(0)) == test::fake_image_bytes(e, 4.1, "v1"))
            ++good;
          else
            ADD_FAILURE() << instruction << ": " << reply.header.dump();
        } catch (const std::exception& ex) {
          ADD_FAILURE() << instruction << ": " << ex.what();
        }
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  workers[0]->stop(SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  fronts[0]->stop(SIGKILL);
  for (auto& t : clients) t.join();
  EXPECT_EQ(good.load(), kClients * kEdits);

  std::map<std::string, int> runs;
  for (int i = 0; i < 3; ++i) {
    std::istringstream log(slurp(dir.file("exec" + std::to_string(i) + ".log")));
    for (std::string line; std::getline(log, line);) runs[line]++;
  }
  EXPECT_EQ(runs.size(), size_t(kClients * kEdits));
  int reruns = 0;
  for (const auto& [instruction, count] : runs) {
    EXPECT_LE(count, 2) << instruction;
    reruns += count - 1;
  }
  EXPECT_LE(reruns, 4) << "only the batch running at the worker's kill runs again";
  EXPECT_NE((workers[1]->log() + workers[2]->log()).find("claimed"), std::string::npos)
      << "the killed worker's jobs were claimed by the others";

  // The worker killed with -9 sent no goodbye: it drops out of `status` once
  // its heartbeat is older than worker_timeout_ms; the two alive are listed.
  Client status_client(client_for(front_endpoints[1]));
  std::set<int64_t> listed_pids;
  for (int waited = 0; waited < 5000; waited += 50) {
    json queue = status_client.status().header["queue"];
    listed_pids.clear();
    for (const json& worker : queue.value("worker_list", json::array())) listed_pids.insert(worker.value("pid", 0));
    if (listed_pids.size() == 2 && queue.value("workers", 0) == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(listed_pids, (std::set<int64_t>{workers[1]->pid(), workers[2]->pid()}));
}

}  // namespace
}  // namespace feu::service
