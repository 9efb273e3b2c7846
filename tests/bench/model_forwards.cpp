// One side of tests/bench/compare_forwards.py: e4e or CLIP's ViT-B/32 image
// tower at the released sizes (random weights, as BM_E4E and BM_ImageEncoder),
// CPU allocation cache on as in the programs. `clip_image_gemms` runs only the
// tower's GEMMs (patch embedding, 11 full blocks; the last block, which
// computes one row per image, has none of this size), on random matrices: the
// floor that no saving outside them can pass. Prints "ready" once built, then
// for every line read from stdin runs one forward of a fixed random batch and
// prints its wall time in ms. The reference side (tests/bench/reference_e4e.py
// or reference_clip_image.py with --serve) speaks the same protocol, so that
// the two can be run in alternation a forward at a time: a shared VM's speed
// drifts by ±20% between minutes, far more than between two adjacent forwards.
//
//     build/bin/model_forwards --model e4e|clip_image|clip_image_gemms [--batch N] [--threads T]
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <string>
#include <vector>

#include "clip/model.h"
#include "face/e4e.h"
#include "tensor/cpu_allocation_cache.h"
#include "tensor/gemm.h"

namespace {

int usage(const std::string& problem) {
  std::fprintf(stderr,
               "model_forwards: %s\nexpected: --model e4e|clip_image|clip_image_gemms [--batch N] [--threads T] with N, "
               "T >= 1\n",
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
  if (model != "e4e" && model != "clip_image" && model != "clip_image_gemms")
    return usage("--model '" + model + "' is not e4e, clip_image or clip_image_gemms");
  feu::tensor::set_cpu_allocation_cache(feu::tensor::kDefaultCpuAllocationCacheBytes);
  at::set_num_threads(static_cast<int>(threads));

  std::function<void()> forward;
  if (model == "e4e") {
    auto encoder = std::make_shared<feu::face::E4eEncoder>(
        feu::face::E4eEncoder::random(feu::face::E4eConfig::ffhq(), 0));
    const at::Tensor faces = at::randint(0, 256, {batch, 256, 256, 3}, at::kByte);
    forward = [encoder, faces] { encoder->encode_aligned(faces); };
  } else if (model == "clip_image_gemms") {
    // Every block its own weights, as in the model: 340 MB streamed per forward, not an L3-resident set.
    const feu::clip::ClipConfig c = feu::clip::ClipConfig::vit_b_32();
    const int64_t d = c.vision_width, grid = c.image_resolution / c.vision_patch_size, rows = batch * (grid * grid + 1);
    const at::Tensor patches = at::randn({batch * grid * grid, 3 * c.vision_patch_size * c.vision_patch_size});
    const at::Tensor patch_weight = at::randn({d, patches.size(1)}), x = at::randn({rows, d});
    const at::Tensor hidden = at::randn({rows, 4 * d});
    std::vector<std::vector<at::Tensor>> blocks;  // in_proj, out_proj, c_fc, c_proj
    for (int64_t block = 0; block < c.vision_layers; ++block)
      blocks.push_back({at::randn({3 * d, d}), at::randn({d, d}), at::randn({4 * d, d}), at::randn({d, 4 * d})});
    forward = [=] {
      feu::gemm(patches, patch_weight.t());
      for (int64_t block = 0; block + 1 < c.vision_layers; ++block) {
        feu::gemm(x, blocks[block][0].t());
        feu::gemm(x, blocks[block][1].t());
        feu::gemm(x, blocks[block][2].t());
        feu::gemm(hidden, blocks[block][3].t());
      }
    };
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
