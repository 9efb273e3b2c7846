// Daemon load benchmark: edits/s and per-edit latency p50/p95/p99 for 1 and
// 8 concurrent clients over loopback ZeroMQ, through the whole service path
// (protocol, journal fsync, queue, batching, result store).
//
//   FEU_BENCH_CONFIG=configs/demo.yaml build/bin/bench_daemon
//     DaemonEngine/*:  the production engine on that config (the embedded
//                      default after `feu-indexer demo-assets`), CPU here.
//                      Four instructions, embedded and retrieved at warm-up:
//                      a repeated instruction (the direction cache hits).
//     DaemonEngineNewInstruction/1: every edit a new instruction (text
//                      encoder, retrieval and SVM every time).
//   DaemonService/*:   the same path around a zero-cost test double backend:
//                      the daemon's own overhead per edit.
// Bounded: a fixed number of edits per run, one iteration each. For the
// engine, environment variables bound a slow configuration (real sizes on CPU:
// `feu-indexer demo-assets --out out/bench-real --real-size`, then
// FEU_BENCH_CONFIG=configs/bench-real-size.yaml):
//   FEU_BENCH_EDITS_1, FEU_BENCH_EDITS_8  edits per client (default 40 / 10)
//   FEU_BENCH_MAX_SECONDS  clients start no new edit after this long (default: none)
//   FEU_BENCH_TIMEOUT_S    client timeout per edit (default 600)
//   FEU_BENCH_DEVICE       the engine's device instead of the config's ("cuda": scripts/gpu-check.sh)
// Each run also prints the daemon's per-stage latency split (its `status`,
// warm-up edits included) to stderr.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>

#include "../service/fake_backend.h"
#include "core/error.h"
#include "service/client.h"
#include "service/server.h"
#ifdef FEU_BENCH_WITH_ENGINE
#include "engine_backend.h"
#endif

namespace {
using namespace feu;
namespace fs = std::filesystem;

struct TempState {
  TempState() {
    std::string pattern = (fs::temp_directory_path() / "feu-bench-XXXXXX").string();
    path = mkdtemp(pattern.data());
  }
  ~TempState() { fs::remove_all(path); }
  std::string path;
};

// An integer environment variable, or `fallback` when unset.
int64_t env_int(const char* name, int64_t fallback) {
  const char* value = std::getenv(name);
  return value && *value ? std::atoll(value) : fallback;
}

service::ClientOptions options_for(const std::string& endpoint) {
  service::ClientOptions options;
  options.server = endpoint;
  // CPU edits at real sizes take seconds (a batch of 8 at 1024², a minute): never resend here.
  options.timeout_ms = static_cast<int>(env_int("FEU_BENCH_TIMEOUT_S", 600) * 1000);
  options.retries = 0;
  return options;
}

// Runs `edits_per_client` edits from each of `clients` threads against a
// server on `backend` (no new edit after `max_seconds` when positive);
// reports throughput and latency percentiles.
// new_instructions: each edit's instruction is new (no cache hit).
void run_load(benchmark::State& state, service::Backend& backend, int clients, int edits_per_client,
              double max_seconds = 0, bool new_instructions = false) {
  TempState dir;
  service::ServerConfig config;
  config.bind = "tcp://127.0.0.1:*";
  config.journal_dir = dir.path;
  config.max_batch = 8;
  config.max_wait_ms = 2;
  service::Server server(config, backend);
  std::thread loop([&] { server.run(); });
  static const char* kInstructions[] = {"blond hair", "smiling", "old", "eyeglasses"};

  // One warm-up edit per instruction: text embeddings get cached, as in production.
  {
    service::Client client(options_for(server.endpoint()));
    for (int i = 0; i < 4; ++i) {
      edit::EditRequest e;
      e.instruction = kInstructions[i];
      e.seed = 1000 + i;
      service::Client::throw_if_error(client.edit("warm" + std::to_string(i), e));
    }
  }
  std::vector<double> latencies;
  std::mutex mutex;
  int run = 0;
  for (auto _ : state) {
    std::vector<std::thread> threads;
    auto t0 = std::chrono::steady_clock::now();
    for (int c = 0; c < clients; ++c)
      threads.emplace_back([&, c] {
        service::Client client(options_for(server.endpoint()));
        for (int i = 0; i < edits_per_client; ++i) {
          if (max_seconds > 0 &&
              std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() > max_seconds)
            break;
          edit::EditRequest e;
          e.instruction = kInstructions[(c + i) % 4];
          if (new_instructions)
            e.instruction += " variant " + std::to_string(run) + "-" + std::to_string(c) + "-" + std::to_string(i);
          e.seed = c * 1000 + i;
          auto start = std::chrono::steady_clock::now();
          service::Message reply = client.edit(
              "r" + std::to_string(run) + "-c" + std::to_string(c) + "-" + std::to_string(i), e);
          double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
          service::Client::throw_if_error(reply);
          std::lock_guard<std::mutex> lock(mutex);
          latencies.push_back(ms);
        }
      });
    for (auto& t : threads) t.join();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    state.SetIterationTime(seconds);
    ++run;
  }
  {
    // The daemon's own per-stage split (p50/p95/p99 ms per stage, as `feu status`).
    service::Client client(options_for(server.endpoint()));
    service::Message status = client.status();
    std::cerr << clients << " client(s): daemon stages in ms (warm-up edits included):\n";
    const nlohmann::json stages = status.header.value("latency_ms", nlohmann::json::object());
    for (const auto& [stage, summary] : stages.items()) std::cerr << "  " << stage << " " << summary.dump() << "\n";
  }
  server.request_stop();
  loop.join();
  if (latencies.empty()) {
    state.SkipWithError("no edit finished within the time bound");
    return;
  }
  std::sort(latencies.begin(), latencies.end());
  auto pct = [&](double q) {
    size_t rank = static_cast<size_t>(std::ceil(q * latencies.size()));
    return latencies[std::clamp<size_t>(rank, 1, latencies.size()) - 1];
  };
  state.counters["edits_per_s"] =
      benchmark::Counter(static_cast<double>(latencies.size()), benchmark::Counter::kIsRate);
  state.counters["p50_ms"] = pct(0.50);
  state.counters["p95_ms"] = pct(0.95);
  state.counters["p99_ms"] = pct(0.99);
  state.counters["edits"] = static_cast<double>(latencies.size());
}

void DaemonService(benchmark::State& state) {
  test::FakeBackend backend({});
  int clients = static_cast<int>(state.range(0));
  run_load(state, backend, clients, clients == 1 ? 400 : 100);
}
BENCHMARK(DaemonService)->Arg(1)->Arg(8)->ArgName("clients")->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

#ifdef FEU_BENCH_WITH_ENGINE
// The engine of FEU_BENCH_CONFIG (on FEU_BENCH_DEVICE when set), loaded once;
// null (the benchmark skipped with the reason) without a config.
daemon::EngineBackend* engine_backend(benchmark::State& state) {
  static std::unique_ptr<daemon::EngineBackend> backend;
  if (backend) return backend.get();
  auto skip = [&](const std::string& why) -> daemon::EngineBackend* {
    state.SkipWithError(why.c_str());
    for (auto _ : state) {
    }
    return nullptr;
  };
  const char* config_path = std::getenv("FEU_BENCH_CONFIG");
  if (!config_path)
    return skip("set FEU_BENCH_CONFIG to a feu config (e.g. configs/demo.yaml after feu-indexer demo-assets)");
  // A config or device this machine cannot serve (no GPU for "cuda") is reported in the results,
  // as the other skips are, so that scripts/gpu-check.sh's summary names it.
  try {
    ConfigMap root = ConfigMap::load_file(config_path);
    edit::EngineConfig config = edit::EngineConfig::from_config(root);
    if (const char* device = std::getenv("FEU_BENCH_DEVICE"); device && *device) config.device = device;
    backend = std::make_unique<daemon::EngineBackend>(edit::Engine::create(config));
  } catch (const Error& e) {
    return skip(std::string("the engine did not load: ") + e.what());
  }
  return backend.get();
}

void DaemonEngine(benchmark::State& state) {
  daemon::EngineBackend* backend = engine_backend(state);
  if (!backend) return;
  int clients = static_cast<int>(state.range(0));
  const int edits = static_cast<int>(
      clients == 1 ? env_int("FEU_BENCH_EDITS_1", 40) : env_int("FEU_BENCH_EDITS_8", 10));
  run_load(state, *backend, clients, edits, static_cast<double>(env_int("FEU_BENCH_MAX_SECONDS", 0)));
}
BENCHMARK(DaemonEngine)->Arg(1)->Arg(8)->ArgName("clients")->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);

void DaemonEngineNewInstruction(benchmark::State& state) {
  daemon::EngineBackend* backend = engine_backend(state);
  if (!backend) return;
  run_load(state, *backend, 1, static_cast<int>(env_int("FEU_BENCH_EDITS_1", 40)),
           static_cast<double>(env_int("FEU_BENCH_MAX_SECONDS", 0)), true);
}
BENCHMARK(DaemonEngineNewInstruction)->Arg(1)->ArgName("clients")->Iterations(1)->UseManualTime()->Unit(benchmark::kMillisecond);
#endif

}  // namespace

BENCHMARK_MAIN();
