// e4e at the released widths (IR-SE50 64/128/256/512, w_dim 512, 18 styles;
// random weights cost what trained ones do) on CPU, at batch 1 and 8: part of
// bench_face. The reference side is tests/bench/reference_e4e.py (e4e's
// PyTorch modules, same widths); tests/bench/compare_forwards.py runs both on
// the same machine a forward at a time (build/bin/model_forwards is this side).
// The target is at most 0.8x the reference. One image is 145 GFLOP as direct
// convolutions, ~104 G as feu computes it (Winograd, tensor/winograd.h).
// Second argument: ATen intra-op threads.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include "face/e4e.h"

namespace {

const feu::face::E4eEncoder& released_size() {
  static const feu::face::E4eEncoder encoder = feu::face::E4eEncoder::random(feu::face::E4eConfig::ffhq(), 0);
  return encoder;
}

void BM_E4E(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(1)));
  const feu::face::E4eEncoder& encoder = released_size();
  const int64_t batch = state.range(0);
  at::Tensor faces = at::randint(0, 256, {batch, 256, 256, 3}, at::kByte);
  for (auto _ : state) {
    at::Tensor wplus = encoder.encode_aligned(faces);
    benchmark::DoNotOptimize(wplus.data_ptr<float>());
  }
  // Images per second, inverted: printed as a time per image with its unit ("1.3s").
  state.counters["time/img"] = benchmark::Counter(static_cast<double>(batch * state.iterations()),
                                                  benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["Mparams"] = static_cast<double>(encoder.parameter_count()) / 1e6;
}
BENCHMARK(BM_E4E)
    ->ArgNames({"batch", "threads"})
    ->Args({1, 1})
    ->Args({1, 2})
    ->Args({8, 2})
    ->Unit(benchmark::kMillisecond)
    ->MeasureProcessCPUTime()  // the CPU column: all threads, as the reference's "CPU" figure
    ->UseRealTime();

}  // namespace
