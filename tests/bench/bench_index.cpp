// Indexer cost at real sizes on this machine, random weights:
//   embed: 1024x1024 PNG decode, CLIP preprocessing (Pillow bicubic to 224),
//          ViT-B/32 image encoding, and the whole embed pipeline (img/s);
//   directions: one Δi channel for FFHQ config-f = 100 images x 2 signs, each a
//          synthesis from the perturbed layer on (prefix shared) + CLIP, and
//          the projected hours for StyleCLIP's 5,376 channels.
// Counters: per_image_ms / per_channel_s / projected_hours_5376.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#include <filesystem>
#include <random>

#include "clip/model.h"
#include "clip/preprocess.h"
#include "core/files.h"
#include "image/codec.h"
#include "index/pipeline.h"
#include "stylegan2/generator.h"

namespace {
using namespace feu;
namespace fs = std::filesystem;

// A 1024² image with face-like smooth structure plus sensor-like noise, so the
// PNG compresses like a photo (about 1-2 MB) rather than like noise or a flat field.
image::Image photo_like(int size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> noise(0.0f, 6.0f);
  image::Image img;
  img.width = img.height = size;
  img.rgb.resize(size_t(size) * size * 3);
  for (int y = 0; y < size; ++y)
    for (int x = 0; x < size; ++x)
      for (int c = 0; c < 3; ++c) {
        const float dx = (x - size / 2) / float(size), dy = (y - size / 2) / float(size);
        const float base = 128 + 90 * std::cos(6 * (dx * dx + dy * dy) + c) + 30 * std::sin(x * 0.02f + y * 0.013f * c);
        img.rgb[(size_t(y) * size + x) * 3 + c] = uint8_t(std::clamp(base + noise(rng), 0.0f, 255.0f));
      }
  return img;
}

const std::vector<uint8_t>& png_1024() {
  static const std::vector<uint8_t> bytes = image::encode_png(photo_like(1024, 1), 6);
  return bytes;
}

const clip::ClipModel& vit_b32() {
  static const clip::ClipModel model = clip::ClipModel::random(clip::ClipConfig::vit_b_32(), 1, at::kCPU);
  return model;
}

void BM_DecodePng1024(benchmark::State& state) {
  const auto& bytes = png_1024();
  for (auto _ : state) benchmark::DoNotOptimize(image::decode_bytes(bytes.data(), bytes.size(), "bench.png"));
  state.counters["png_MB"] = bytes.size() / 1e6;
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodePng1024)->Unit(benchmark::kMillisecond);

void BM_ClipPreprocess1024(benchmark::State& state) {
  const image::Image img = photo_like(1024, 2);
  c10::InferenceMode guard;
  for (auto _ : state) benchmark::DoNotOptimize(clip::preprocess_image(img, 224));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ClipPreprocess1024)->Unit(benchmark::kMillisecond);

void BM_ClipEncodeViTB32(benchmark::State& state) {
  const int64_t batch = state.range(0);
  c10::InferenceMode guard;
  at::Tensor pixels = at::randn({batch, 3, 224, 224});
  const auto& model = vit_b32();
  for (auto _ : state) benchmark::DoNotOptimize(model.encode_image(pixels));
  state.SetItemsProcessed(state.iterations() * batch);
  state.counters["per_image_ms"] =
      benchmark::Counter(double(batch) * 1e-3, benchmark::Counter::kIsIterationInvariantRate |
                                                   benchmark::Counter::kInvert);
}
BENCHMARK(BM_ClipEncodeViTB32)->Arg(16)->Unit(benchmark::kMillisecond)->MinTime(3);

// The real `embed` code path on 48 1024² PNGs with ViT-B/32 (random weights).
void BM_EmbedPipeline(benchmark::State& state) {
  const std::string dir = (fs::temp_directory_path() / "feu-bench-embed").string();
  fs::remove_all(dir);
  fs::create_directories(dir + "/images/00000");
  const int64_t n = 48;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<uint8_t> bytes = image::encode_png(photo_like(1024, uint32_t(10 + i)), 6);
    write_file_atomic(dir + "/images/00000/" + std::to_string(i) + ".png", bytes.data(), bytes.size());
  }
  vit_b32().save_h5(dir + "/clip.h5");
  index::EmbedReport report;
  for (auto _ : state) {
    index::EmbedOptions o;
    o.images_dir = dir + "/images";
    o.out_dir = dir + "/out";
    o.clip_path = dir + "/clip.h5";
    o.device = "cpu";
    o.batch_size = 16;
    o.progress = false;
    report = index::embed_corpus(o);
  }
  state.counters["img_per_s"] = report.embedded / report.total_seconds;
  state.counters["decode_s_per_img"] = report.decode_seconds / report.embedded;
  state.counters["preprocess_s_per_img"] = report.preprocess_seconds / report.embedded;
  state.counters["clip_s_per_img"] = report.clip_seconds / report.embedded;
  state.counters["ffhq_70k_hours"] = 70000 / (report.embedded / report.total_seconds) / 3600;
  fs::remove_all(dir);
}
BENCHMARK(BM_EmbedPipeline)->Unit(benchmark::kSecond)->Iterations(1);

// One Δi channel of FFHQ config-f at 1024² (random weights), as `directions`
// runs it: the prefix up to the perturbed layer is computed once per layer
// (amortized over its 512 channels, not timed here), then per channel 2·M
// samples are synthesized from the layer on, quantized, preprocessed and
// CLIP-encoded. M is scaled down (state.range(1)) and extrapolated to 100.
void BM_DirectionsChannelFfhq(benchmark::State& state) {
  const int layer = static_cast<int>(state.range(0));
  const int64_t m = state.range(1);
  c10::InferenceMode guard;
  static const stylegan2::Generator generator =
      stylegan2::Generator::random(stylegan2::GeneratorConfig::config_f(), 1, at::kCPU);
  at::Tensor z = at::randn({m, 512});
  std::vector<at::Tensor> styles = generator.styles_from_ws(generator.mapping(z, 0.7));
  stylegan2::SynthesisState prefix = generator.run_until(styles, layer);
  const auto& model = vit_b32();
  double synth = 0, clip_time = 0;
  for (auto _ : state) {
    for (int sign = 0; sign < 2; ++sign) {
      std::vector<at::Tensor> perturbed(styles.size());
      for (size_t l = layer; l < styles.size(); ++l) perturbed[l] = styles[l];
      perturbed[layer] = styles[layer].clone();
      perturbed[layer].select(1, 0).fill_(sign ? 3.0 : -3.0);
      // Batch 2 samples at a time at 1024² on CPU (activation memory).
      for (int64_t b = 0; b < m; b += 2) {
        const int64_t nb = std::min<int64_t>(2, m - b);
        stylegan2::SynthesisState sub;
        sub.layer_index = prefix.layer_index;
        sub.x = prefix.x.narrow(0, b, nb);
        if (prefix.img.defined()) sub.img = prefix.img.narrow(0, b, nb);
        std::vector<at::Tensor> st(styles.size());
        for (size_t l = layer; l < styles.size(); ++l) st[l] = perturbed[l].narrow(0, b, nb);
        auto t0 = std::chrono::steady_clock::now();
        at::Tensor img = generator.run_from(sub, st, layer);
        auto t1 = std::chrono::steady_clock::now();
        benchmark::DoNotOptimize(model.encode_image(clip::preprocess_generated(img, 224)));
        auto t2 = std::chrono::steady_clock::now();
        synth += std::chrono::duration<double>(t1 - t0).count();
        clip_time += std::chrono::duration<double>(t2 - t1).count();
      }
    }
  }
  const double per_sample = (synth + clip_time) / double(state.iterations() * 2 * m);
  state.counters["synth_s_per_sample"] = synth / double(state.iterations() * 2 * m);
  state.counters["clip_s_per_sample"] = clip_time / double(state.iterations() * 2 * m);
  state.counters["per_channel_s_M100"] = per_sample * 200;
  state.counters["projected_hours_5376"] = per_sample * 200 * 5376 / 3600;
  state.SetLabel(generator.style_space().layers()[layer].name);
}
// b4.conv1 (all layers after it) and b128.conv0 (the deepest covered layer with 512 channels).
BENCHMARK(BM_DirectionsChannelFfhq)->Args({0, 2})->Args({14, 2})->Unit(benchmark::kSecond)->Iterations(1);

}  // namespace
