// Fleet scaling benchmark: jobs/s through the redis queue (a real
// redis-server with AOF and `appendfsync always`, as in production), with
// in-process fronts and workers around the test double backend.
//
//   build/bin/bench_fleet
//     zero-cost:  1 front, 2 workers, a backend that costs nothing, max_batch 32:
//                 the queue's own ceiling (submit + read + finish + result poll).
//     fixed-cost: 1 front, 1/2/4 workers, 50 ms per job (max_batch 1): scaling.
// Load: client threads over loopback ZeroMQ, each keeping a window of edits
// in flight (a DEALER socket, no waiting between requests), counting `done`s.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>
#include <vector>

#include "../service/fake_backend.h"
#include "../service/redis_test_helpers.h"
#include "../service/running_server.h"
#include "service/server.h"

namespace {
using namespace feu;
using namespace feu::service;
namespace fs = std::filesystem;

using Running = test::RunningServer;

// Sends `jobs` edits keeping `window` in flight; returns when all are done.
void load(const std::string& endpoint, const std::string& prefix, int jobs, int window, std::atomic<int>* done) {
  zmq::context_t context(1);
  zmq::socket_t socket(context, zmq::socket_type::dealer);
  socket.set(zmq::sockopt::linger, 0);
  socket.connect(endpoint);
  int sent = 0, finished = 0;
  auto send_one = [&] {
    edit::EditRequest request;
    request.instruction = prefix + std::to_string(sent);
    request.seed = sent;
    std::vector<Frame> frames = to_frames(make_edit_request(prefix + std::to_string(sent), request));
    for (size_t i = 0; i < frames.size(); ++i)
      socket.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
    ++sent;
  };
  while (sent < std::min(window, jobs)) send_one();
  while (finished < jobs) {
    std::vector<zmq::message_t> parts;
    (void)zmq::recv_multipart(socket, std::back_inserter(parts));
    std::vector<Frame> frames;
    for (auto& part : parts) frames.push_back(part.to_string());
    Message reply = from_frames(frames);
    std::string status = reply.header.value("status", std::string());
    if (status == status::kAccepted) continue;
    if (status == status::kBusy) {
      std::fprintf(stderr, "busy: %s\n", reply.header.dump().c_str());
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      // Resend the same id: it was not accepted.
      std::string id = reply.header.value("id", std::string());
      edit::EditRequest request;
      request.instruction = id;
      request.seed = std::stoll(id.substr(prefix.size()));
      std::vector<Frame> again = to_frames(make_edit_request(id, request));
      for (size_t i = 0; i < again.size(); ++i)
        socket.send(zmq::buffer(again[i]), i + 1 < again.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
      continue;
    }
    if (status != status::kDone) std::fprintf(stderr, "unexpected reply: %s\n", reply.header.dump().c_str());
    ++finished;
    ++*done;
    if (sent < jobs) send_one();
  }
}

double run_case(const std::string& redis_url, const std::string& stream, int workers, int batch_ms, size_t max_batch,
                int clients, int jobs_per_client, int window) {
  ServerConfig base;
  base.bind = "tcp://127.0.0.1:*";
  base.max_queue = 100000;
  base.max_batch = max_batch;
  base.max_wait_ms = 0;
  base.queue.backend = "redis";
  base.queue.redis.url = redis_url;
  base.queue.redis.stream = stream;
  test::FakeBackend front_backend({});
  ServerConfig front_config = base;
  front_config.role = Role::kFront;
  Running front(front_config, front_backend);
  std::vector<std::unique_ptr<test::FakeBackend>> backends;
  std::vector<std::unique_ptr<Running>> running;
  for (int i = 0; i < workers; ++i) {
    backends.push_back(std::make_unique<test::FakeBackend>(test::fake_options(batch_ms)));
    ServerConfig worker_config = base;
    worker_config.role = Role::kWorker;
    running.push_back(std::make_unique<Running>(worker_config, *backends.back()));
  }
  std::atomic<int> done{0};
  auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c)
    threads.emplace_back(load, front.endpoint(), stream + "-c" + std::to_string(c) + "-", jobs_per_client, window,
                         &done);
  for (auto& t : threads) t.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return done.load() / seconds;
}

}  // namespace

int main() {
  spdlog::set_level(spdlog::level::warn);
  std::string dir = (fs::temp_directory_path() / ("bench_fleet-" + std::to_string(getpid()))).string();
  fs::create_directories(dir);
  {
    test::RedisServerProcess redis(dir);
    unsigned cores = std::thread::hardware_concurrency();
    std::printf("bench_fleet: redis-server with appendfsync always on loopback, %u cores\n", cores);
    double zero = run_case(redis.url(), "zero", 2, 0, 32, 4, 2000, 256);
    std::printf("zero-cost backend, 1 front, 2 workers, max_batch 32, 4 clients x 2000 jobs: %.0f jobs/s\n", zero);
    double one = 0;
    for (int workers : {1, 2, 4}) {
      double rate = run_case(redis.url(), "fixed" + std::to_string(workers), workers, 50, 1, 4, 25 * workers, 16);
      if (workers == 1) one = rate;
      std::printf("50 ms/job backend, 1 front, %d worker(s): %.1f jobs/s (%.0f%% of linear)\n", workers, rate,
                  100.0 * rate / (one * workers));
    }
  }
  fs::remove_all(dir);
  return 0;
}
