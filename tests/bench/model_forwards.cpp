// One side of tests/bench/compare_forwards.py: e4e or CLIP's ViT-B/32 image
// tower at the released sizes (random weights, as BM_E4E and BM_ImageEncoder),
// CPU allocation cache on as in the programs. Prints "ready" once built, then
// for every line read from stdin runs one forward of a fixed random batch and
// prints its wall time in ms. The reference side (tests/bench/reference_e4e.py
// or reference_clip_image.py with --serve) speaks the same protocol, so that
// the two can be run in alternation a forward at a time: a shared VM's speed
// drifts by ±20% between minutes, far more than between two adjacent forwards.
//
//     build/bin/model_forwards --model e4e|clip_image [--batch N] [--threads T]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>

#include "clip/model.h"
#include "face/e4e.h"
#include "tensor/cpu_allocation_cache.h"

namespace {

int usage(const std::string& problem) {
  std::fprintf(stderr,
               "model_forwards: %s\nexpected: --model e4e|clip_image [--batch N] [--threads T] with N, T >= 1\n",
               problem.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model;
  int64_t batch = 1;
  int64_t threads = 2;
  for (int i = 1; i < argc; i += 2) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return usage("'" + flag + "' has no value");
    const std::string value = argv[i + 1];
    if (flag == "--model") {
      model = value;
      continue;
    }
    if (flag != "--batch" && flag != "--threads") return usage("unknown argument '" + flag + "'");
    char* end = nullptr;
    const long long number = std::strtoll(value.c_str(), &end, 10);
    if (value.empty() || *end != '\0' || number < 1) return usage(flag + " '" + value + "' is not a positive integer");
    (flag == "--batch" ? batch : threads) = number;
  }
  if (model != "e4e" && model != "clip_image") return usage("--model '" + model + "' is not e4e or clip_image");
  feu::tensor::set_cpu_allocation_cache(feu::tensor::kDefaultCpuAllocationCacheBytes);
  at::set_num_threads(static_cast<int>(threads));

  std::function<void()> forward;
  if (model == "e4e") {
    auto encoder = std::make_shared<feu::face::E4eEncoder>(
        feu::face::E4eEncoder::random(feu::face::E4eConfig::ffhq(), 0));
    const at::Tensor faces = at::randint(0, 256, {batch, 256, 256, 3}, at::kByte);
    forward = [encoder, faces] { encoder->encode_aligned(faces); };
  } else {
    auto clip = std::make_shared<feu::clip::ClipModel>(
        feu::clip::ClipModel::random(feu::clip::ClipConfig::vit_b_32(), 1, at::kCPU));
    const at::Tensor pixels = at::randn({batch, 3, 224, 224});
    forward = [clip, pixels] { clip->encode_image(pixels); };
  }
  forward();  // warm-up
  std::printf("ready\n");
  std::fflush(stdout);
  for (std::string line; std::getline(std::cin, line);) {
    const auto start = std::chrono::steady_clock::now();
    forward();
    const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    std::printf("%.1f\n", ms);
    std::fflush(stdout);
  }
  return 0;
}
