// main() of the benchmarks that run libtorch models: the CPU allocation cache
// is on, as in feu-daemon and feu-indexer, so that the figures are the
// programs'. FEU_BENCH_CPU_CACHE_MB sets its size (0: off, for a comparison).
#include <benchmark/benchmark.h>

#include <cstdlib>

#include "tensor/cpu_allocation_cache.h"

int main(int argc, char** argv) {
  size_t cache_bytes = feu::tensor::kDefaultCpuAllocationCacheBytes;
  if (const char* mb = std::getenv("FEU_BENCH_CPU_CACHE_MB")) cache_bytes = std::strtoull(mb, nullptr, 10) << 20;
  feu::tensor::set_cpu_allocation_cache(cache_bytes);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
