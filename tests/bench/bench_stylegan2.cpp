// StyleGAN2 config-f 1024² (random weights: same cost as trained ones) on CPU:
// synthesis at batch 1, 2, 4 and 8, and mapping + affines. Second argument: ATen
// intra-op threads. BM_ServedRender times what the daemon runs (the engine's
// render: codes to 8-bit images, in CPU lanes) on FEU_BENCH_CONFIG's generator
// (configs/bench-real-size.yaml after `feu-indexer demo-assets --real-size`).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "edit/engine.h"
#include "stylegan2/generator.h"
#include "stylegan2/seed.h"

namespace {

using feu::stylegan2::Generator;
using feu::stylegan2::GeneratorConfig;

const Generator& config_f() {
  static const Generator g = Generator::random(GeneratorConfig::config_f(), 0, at::kCPU);
  return g;
}

at::Tensor latents(int64_t batch) {
  std::vector<at::Tensor> zs;
  for (int64_t i = 0; i < batch; ++i) zs.push_back(feu::stylegan2::z_from_seed(i, 512));
  return at::cat(zs, 0);
}

void BM_Synthesis1024(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(1)));
  const Generator& g = config_f();
  const int64_t batch = state.range(0);
  std::vector<at::Tensor> styles = g.styles_from_ws(g.mapping(latents(batch), 0.7));
  for (auto _ : state) {
    at::Tensor img = g.synthesize(styles);
    benchmark::DoNotOptimize(img.data_ptr<float>());
  }
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Synthesis1024)
    ->ArgNames({"batch", "threads"})
    ->Args({1, 1})
    ->Args({1, 2})
    ->Args({2, 2})
    ->Args({4, 2})
    ->Args({8, 2})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2)
    ->UseRealTime();

void BM_MappingAndAffines(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(1)));
  const Generator& g = config_f();
  at::Tensor z = latents(state.range(0));
  for (auto _ : state) {
    std::vector<at::Tensor> styles = g.styles_from_ws(g.mapping(z, 0.7, 8));
    benchmark::DoNotOptimize(styles.back().data_ptr<float>());
  }
}
BENCHMARK(BM_MappingAndAffines)
    ->ArgNames({"batch", "threads"})
    ->Args({1, 1})
    ->Args({4, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

void BM_ServedRender(benchmark::State& state) {
  const char* config_path = std::getenv("FEU_BENCH_CONFIG");
  if (config_path == nullptr) {
    state.SkipWithError("set FEU_BENCH_CONFIG (e.g. configs/bench-real-size.yaml)");
    return;
  }
  at::set_num_threads(2);
  feu::edit::EngineConfig config = feu::edit::EngineConfig::load_file(config_path);
  config.cpu_render_lanes = static_cast<int>(state.range(1));
  std::unique_ptr<feu::edit::Engine> engine = feu::edit::Engine::create(config);
  feu::edit::StyleGenerator& generator = engine->generator();
  const int64_t batch = state.range(0);
  std::vector<float> styles;
  for (int64_t seed = 0; seed < batch; ++seed) {
    const std::vector<float> one = generator.styles_from_seed(seed, 0.7);
    styles.insert(styles.end(), one.begin(), one.end());
  }
  // Untimed first render: the lanes' first touch of their 1024² buffers (page faults,
  // oneDNN primitive creation) is a start-up cost, not the serving cost.
  benchmark::DoNotOptimize(generator.render(styles, batch).data());
  for (auto _ : state) benchmark::DoNotOptimize(generator.render(styles, batch).data());
  state.counters["img/s"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ServedRender)
    ->ArgNames({"batch", "lanes"})
    ->Args({1, 1})
    ->Args({4, 2})
    ->Args({4, 1})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(2)
    ->UseRealTime();

}  // namespace
