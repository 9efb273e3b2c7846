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
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--batch") == 0) batch = std::atoll(argv[i + 1]);
    else if (std::strcmp(argv[i], "--threads") == 0) threads = std::atoi(argv[i + 1]);
    else {
      std::fprintf(stderr, "usage: e4e_forwards [--batch N] [--threads T]\n");
      return 2;
    }
  }
  feu::tensor::set_cpu_allocation_cache(feu::tensor::kDefaultCpuAllocationCacheBytes);
  at::set_num_threads(threads);
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
