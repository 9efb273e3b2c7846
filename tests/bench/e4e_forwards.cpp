// One side of tests/bench/compare_e4e.py: e4e at the released widths (random
// weights, as BM_E4E), CPU allocation cache on as in the programs. Prints
// "ready" once built, then for every line read from stdin runs one forward of
// a fixed random batch and prints its wall time in ms. The reference side is
// tests/bench/reference_e4e.py --serve, the same protocol, so that the two can
// be run in alternation a forward at a time: a shared VM's speed drifts by
// ±20% between minutes, far more than between two adjacent forwards.
//
//     build/bin/e4e_forwards [--batch N] [--threads T]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "face/e4e.h"
#include "tensor/cpu_allocation_cache.h"

int main(int argc, char** argv) {
  int64_t batch = 1;
  int64_t threads = 2;
  for (int i = 1; i < argc; i += 2) {
    const bool known = std::strcmp(argv[i], "--batch") == 0 || std::strcmp(argv[i], "--threads") == 0;
    char* end = nullptr;
    const long long value = i + 1 < argc ? std::strtoll(argv[i + 1], &end, 10) : 0;
    if (!known || end == nullptr || *end != '\0' || value < 1) {
      std::fprintf(stderr, "e4e_forwards: expected --batch N and --threads T with N, T >= 1; got '%s'%s%s\n",
                   argv[i], i + 1 < argc ? " " : "", i + 1 < argc ? argv[i + 1] : " (no value)");
      return 2;
    }
    (std::strcmp(argv[i], "--batch") == 0 ? batch : threads) = value;
  }
  feu::tensor::set_cpu_allocation_cache(feu::tensor::kDefaultCpuAllocationCacheBytes);
  at::set_num_threads(static_cast<int>(threads));
  const feu::face::E4eEncoder encoder = feu::face::E4eEncoder::random(feu::face::E4eConfig::ffhq(), 0);
  const at::Tensor faces = at::randint(0, 256, {batch, 256, 256, 3}, at::kByte);
  encoder.encode_aligned(faces);  // warm-up
  std::printf("ready\n");
  std::fflush(stdout);
  for (std::string line; std::getline(std::cin, line);) {
    const auto start = std::chrono::steady_clock::now();
    const at::Tensor wplus = encoder.encode_aligned(faces);
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("%.1f\n", ms);
    std::fflush(stdout);
  }
  return 0;
}
