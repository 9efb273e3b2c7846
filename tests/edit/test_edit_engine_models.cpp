// Engine::create with real StyleGAN2 + CLIP code on the embedded default's
// small random models and published artifacts (built once, small options).
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <thread>

#include "core/error.h"
#include "core/files.h"
#include "edit/engine.h"
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include "image/tensor_image.h"
#include "stylegan2/generator.h"
#include "image/codec.h"
#include "index/artifacts.h"
#include "index/pipeline.h"
#include "test_support.h"

namespace feu::edit {
namespace {

namespace fs = std::filesystem;

struct Demo {
  test::TempDir dir;
  std::string version_dir;
  std::string config;

  Demo() {
    index::DemoOptions options;
    options.out_dir = dir.file("demo");
    options.images = 40;
    options.stats_samples = 500;
    options.direction_images = 2;
    options.progress = false;
    version_dir = index::build_demo_assets(options);
    config = write_config("small k", "k_pos: 10, k_neg: 10, beta: auto, min_channels: 5, alphas: [-2, 0, 2]");
  }

  std::string write_config(const std::string& name, const std::string& edit,
                           const std::string& generator = "demo/models/generator.h5",
                           const std::string& more_models = "") {
    const std::string path = dir.file(name + ".yaml");
    std::ofstream out(path);
    out << "device: cpu\n"
        << "models: {generator: " << generator << ", clip: demo/models/clip.h5, vocab: demo/models/vocab.txt.gz"
        << more_models << "}\n"
        << "artifacts: {root: demo/artifacts}\n"
        << "edit: {" << edit << "}\n";
    return path;
  }
};

Demo& demo() {
  static Demo shared;
  return shared;
}

std::unique_ptr<Engine> engine() { return Engine::create(EngineConfig::load_file(demo().config)); }

ErrorCode code_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.code();
  }
  ADD_FAILURE() << "no error";
  return ErrorCode::kInternal;
}

TEST(EngineModels, EditsASeedWithEveryStage) {
  auto e = engine();
  EXPECT_EQ(e->artifact_version(), index::ArtifactSet::open(demo().version_dir, false).manifest().version);
  EditRequest request;
  request.instruction = "blond hair";
  request.seed = 42;
  request.return_original = true;
  request.return_styles = true;
  const EditResult result = e->edit(request);
  ASSERT_EQ(result.images.size(), 3u);
  ASSERT_TRUE(result.original);
  const int resolution = e->generator().resolution();
  const image::Image original = image::decode_bytes(result.original->bytes.data(), result.original->bytes.size(), "o");
  const image::Image zero = image::decode_bytes(result.images[1].bytes.data(), result.images[1].bytes.size(), "z");
  const image::Image plus = image::decode_bytes(result.images[2].bytes.data(), result.images[2].bytes.size(), "p");
  EXPECT_EQ(original.width, resolution);
  // α = 0 renders the original code (same batch): identical up to a quantization level.
  int worst = 0;
  for (size_t i = 0; i < original.rgb.size(); ++i) worst = std::max(worst, std::abs(original.rgb[i] - zero.rgb[i]));
  EXPECT_LE(worst, 1);
  EXPECT_NE(original.rgb, plus.rgb);
  const auto& d = result.diagnostics;
  EXPECT_EQ(d["retrieval"]["positives"].size(), 10u);
  EXPECT_GT(d["channels_changed"].get<int64_t>(), 0);
  for (const char* stage : {"text", "retrieval", "svm", "mapping", "synthesis", "encoding"}) {
    EXPECT_GE(d["timings_ms"][stage].get<double>(), 0.0) << stage;
  }
  // Edited codes differ from the original only on conv channels.
  const int64_t total = result.total_channels;
  ASSERT_EQ(result.edited_styles.size(), static_cast<size_t>(3 * total));
  const std::vector<float> base = e->generator().styles_from_seed(42, 0.7);
  const StyleLayout& layout = e->generator().layout();
  for (size_t l = 0; l < layout.layer_names.size(); ++l) {
    if (layout.layer_names[l].find("torgb") == std::string::npos) continue;
    for (int64_t c = layout.layer_offsets[l]; c < layout.layer_offsets[l] + layout.layer_channels[l]; ++c) {
      EXPECT_EQ(result.edited_styles[2 * total + c], base[c]);
    }
  }
}

TEST(EngineModels, Bf16SynthesisRendersLikeFp32) {
  const std::string config = demo().write_config(
      "bf16", "k_pos: 10, k_neg: 10, beta: auto, min_channels: 5, alphas: [-2, 0, 2]", "demo/models/generator.h5",
      ", precision: bf16, num_fp16_res: 4, cuda_graphs: true");
  auto reduced = Engine::create(EngineConfig::load_file(config));
  auto full = engine();
  EXPECT_EQ(reduced->info()["retrieval"], "cpu_scan");  // a CPU engine scans the int8 codes
  const std::vector<float> styles = full->generator().styles_from_seed(42, 0.7);
  const image::Image a = full->generator().render(styles, 1)[0];
  const image::Image b = reduced->generator().render(styles, 1)[0];
  ASSERT_EQ(a.rgb.size(), b.rgb.size());
  double squared = 0;
  for (size_t i = 0; i < a.rgb.size(); ++i) squared += double(a.rgb[i] - b.rgb[i]) * (a.rgb[i] - b.rgb[i]);
  const double psnr = 10 * std::log10(255.0 * 255.0 / std::max(squared / double(a.rgb.size()), 1e-12));
  std::cout << "bf16 against fp32, 8-bit render of the embedded default: PSNR " << psnr << " dB" << std::endl;
  EXPECT_GE(psnr, 36);  // measured 42.0 dB (the float images: 50.6 dB, test_stylegan2; 8-bit rounding adds)
}

TEST(EngineModels, GroupedModulationRendersLikeNonFused) {
  const std::string config = demo().write_config(
      "grouped", "k_pos: 10, k_neg: 10, beta: auto, min_channels: 5, alphas: [-2, 0, 2]", "demo/models/generator.h5",
      ", modulation: grouped");
  auto grouped = Engine::create(EngineConfig::load_file(config));
  auto full = engine();
  const std::vector<float> styles = full->generator().styles_from_seed(42, 0.7);
  for (int64_t count : {1, 3}) {
    std::vector<float> batch;
    for (int64_t i = 0; i < count; ++i) batch.insert(batch.end(), styles.begin(), styles.end());
    const std::vector<image::Image> a = full->generator().render(batch, count);
    const std::vector<image::Image> b = grouped->generator().render(batch, count);
    ASSERT_EQ(a.size(), b.size());
    for (size_t k = 0; k < a.size(); ++k) {
      ASSERT_EQ(a[k].rgb.size(), b[k].rgb.size());
      int worst = 0;
      for (size_t i = 0; i < a[k].rgb.size(); ++i) worst = std::max(worst, std::abs(int(a[k].rgb[i]) - int(b[k].rgb[i])));
      EXPECT_LE(worst, 1) << "image " << k << " of " << count;  // the same sums; 8-bit rounding may differ by one
    }
  }
}

TEST(EngineModels, GlobalMethodAndLatentKinds) {
  auto e = engine();
  EditRequest request;
  request.instruction = "smiling face";
  request.method = Method::kGlobal;
  request.neutral = "face";
  request.latent_kind = LatentKind::kWPlus;
  request.latent.assign(e->generator().num_ws() * e->generator().w_dim(), 0.1f);
  request.alphas = {3};
  request.format = ImageFormat::kJpeg;
  EXPECT_EQ(e->edit(request).images.size(), 1u);
  request.latent_kind = LatentKind::kW;
  request.latent.assign(e->generator().w_dim(), 0.1f);
  EXPECT_EQ(e->edit(request).images.size(), 1u);
  request.latent_kind = LatentKind::kS;
  request.latent = e->generator().styles_from_seed(1, 0.7);
  request.grid = true;
  const EditResult grid = e->edit(request);
  ASSERT_EQ(grid.images.size(), 1u);
  EXPECT_EQ(grid.images[0].width, 2 * e->generator().resolution());
}

TEST(EngineModels, APreviewIsTheSkipImageOfTheSmallerBlock) {
  auto e = engine();
  EditRequest request;
  request.instruction = "smiling face";
  request.seed = 5;
  request.alphas = {2};
  request.return_original = true;
  request.size = 32;  // the demo generator renders 64²
  const EditResult preview = e->edit(request);
  ASSERT_EQ(preview.images.size(), 1u);
  EXPECT_EQ(preview.images[0].width, 32);
  EXPECT_EQ(preview.diagnostics["size"], 32);
  // The original's preview is StyleGAN2's image after the 32² block, exactly.
  const stylegan2::Generator g = stylegan2::Generator::load(demo().dir.file("demo/models/generator.h5"), at::kCPU);
  const std::vector<float> s = e->generator().styles_from_seed(5, e->defaults().psi);
  const at::Tensor flat = at::from_blob(const_cast<float*>(s.data()), {1, static_cast<int64_t>(s.size())}).clone();
  int stop = 0;
  while (g.style_space().layers()[stop].resolution != 64) ++stop;
  const at::Tensor skip = g.run_until(g.style_space().split(flat), stop).img;
  const image::Image expected = image::images_from_tensor(skip, image::Quantize::kStyleClip).at(0);
  const image::Image got = image::decode_bytes(preview.original->bytes.data(), preview.original->bytes.size(), "p");
  EXPECT_EQ(got.width, 32);
  EXPECT_EQ(got.rgb, expected.rgb);
  // Sizes that are no block of this generator are refused.
  for (int64_t bad : {48, 128, 2}) {
    request.size = bad;
    EXPECT_EQ(code_of([&] { e->edit(request); }), ErrorCode::kInvalidArgument) << bad;
  }
  request.size = 64;  // the full size is allowed
  EXPECT_EQ(e->edit(request).images[0].width, 64);
}

TEST(EngineModels, BadRequestsAreTypedErrors) {
  auto e = engine();
  EditRequest ok;
  ok.instruction = "blond hair";
  EditRequest r = ok;
  r.instruction.clear();
  for (int i = 0; i < 70; ++i) r.instruction += "very ";
  // Fits alone but not inside "a photo of the hard to see {}." : CLIP's 75-token limit.
  EXPECT_EQ(code_of([&] { e->edit(r); }), ErrorCode::kInvalidArgument);
  // The message echoes the prompt escaped and cut: it cannot forge log lines.
  r.instruction.clear();
  for (int i = 0; i < 70; ++i) r.instruction += "very\n";
  try {
    e->edit(r);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("too long for CLIP"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_LT(message.size(), 250u) << message;
  }
  r = ok;
  r.latent_kind = LatentKind::kWPlus;
  r.latent.assign(5, 0.0f);
  EXPECT_EQ(code_of([&] { e->edit(r); }), ErrorCode::kShapeMismatch);
  r = ok;
  r.beta = 0.99;
  EXPECT_EQ(code_of([&] { e->edit(r); }), ErrorCode::kNoChannels);
  r = ok;
  r.method = Method::kGlobal;
  EXPECT_EQ(code_of([&] { e->edit(r); }), ErrorCode::kInvalidArgument);
}

TEST(EngineModels, ArtifactsFromAnotherGeneratorAreAMismatch) {
  // A generator file whose bytes differ from the one the artifacts were made with.
  const std::string other = demo().dir.file("other_generator.h5");
  fs::copy_file(demo().dir.file("demo/models/generator.h5"), other);
  {
    std::ofstream append(other, std::ios::app | std::ios::binary);
    append << "x";  // HDF5 ignores trailing bytes; the sha256 changes
  }
  const std::string config = demo().write_config("other", "k_pos: 10, k_neg: 10", other);
  EXPECT_EQ(code_of([&] { Engine::create(EngineConfig::load_file(config)); }), ErrorCode::kArtifactMismatch);
}

TEST(EngineModels, ReloadKeepsTheOldVersionOnError) {
  auto e = engine();
  const std::string before = e->artifact_version();
  EXPECT_THROW(e->reload(demo().dir.file("no-such-version")), Error);
  EXPECT_EQ(e->artifact_version(), before);
  e->reload(demo().version_dir);
  EXPECT_EQ(e->artifact_version(), before);
  const nlohmann::json hits = e->retrieve("a face", 3);
  EXPECT_EQ(hits["hits"].size(), 3u);
}

TEST(EngineModels, TheEngineSetsTheCpuAllocationCacheItIsConfiguredWith) {
  const auto cached_engine = [](int64_t mb) {
    return Engine::create(EngineConfig::load_file(demo().write_config(
        "cache" + std::to_string(mb), "alphas: [1]", "demo/models/generator.h5",
        ", cpu_allocation_cache_mb: " + std::to_string(mb))));
  };
  {
    // auto: 1 GB per render lane, at least the programs' 2 GB.
    auto three_lanes = Engine::create(EngineConfig::load_file(demo().write_config(
        "cacheauto3", "alphas: [1]", "demo/models/generator.h5", ", cpu_render_lanes: 3")));
    EXPECT_EQ(tensor::cpu_allocation_cache_stats().limit_bytes, size_t{3} << 30);
    auto one_lane = Engine::create(EngineConfig::load_file(demo().write_config(
        "cacheauto1", "alphas: [1]", "demo/models/generator.h5", ", cpu_render_lanes: 1")));
    EXPECT_EQ(tensor::cpu_allocation_cache_stats().limit_bytes, size_t{2} << 30);
  }
  auto small = cached_engine(64);
  EXPECT_EQ(tensor::cpu_allocation_cache_stats().limit_bytes, size_t{64} << 20);
  EXPECT_EQ(small->info()["cpu_allocation_cache"]["limit_bytes"], size_t{64} << 20);  // status shows it
  auto off = cached_engine(0);
  EXPECT_EQ(tensor::cpu_allocation_cache_stats().limit_bytes, 0u);
  EXPECT_EQ(tensor::cpu_allocation_cache_stats().cached_bytes, 0u);
  // Renders are the same with and without it.
  const std::vector<float> styles = small->generator().styles_from_seed(3, 0.7);
  tensor::set_cpu_allocation_cache(size_t{64} << 20);
  const std::vector<image::Image> cached = small->generator().render(styles, 1);
  const std::vector<image::Image> again = small->generator().render(styles, 1);
  tensor::set_cpu_allocation_cache(0);
  const std::vector<image::Image> plain = off->generator().render(styles, 1);
  EXPECT_EQ(cached.front().rgb, plain.front().rgb);
  EXPECT_EQ(again.front().rgb, plain.front().rgb);
}

TEST(EngineModels, CpuRenderLanesGiveTheSameImagesInOrder) {
  const auto lanes_engine = [](int lanes) {
    const std::string name = "lanes" + std::to_string(lanes);
    return Engine::create(EngineConfig::load_file(demo().write_config(
        name, "alphas: [1]", "demo/models/generator.h5", ", cpu_render_lanes: " + std::to_string(lanes))));
  };
  auto one = lanes_engine(1);
  auto three = lanes_engine(3);
  std::vector<float> styles;
  for (int64_t seed = 0; seed < 5; ++seed) {
    const std::vector<float> s = one->generator().styles_from_seed(seed, 0.7);
    styles.insert(styles.end(), s.begin(), s.end());
  }
  at::set_num_threads(2);
  const std::vector<image::Image> serial = one->generator().render(styles, 5);
  const std::vector<image::Image> laned = three->generator().render(styles, 5);
  ASSERT_EQ(laned.size(), 5u);
  for (size_t i = 0; i < 5; ++i) {
    ASSERT_EQ(laned[i].rgb.size(), serial[i].rgb.size());
    int worst = 0;  // other thread counts may sum in another order: a level at most
    for (size_t k = 0; k < serial[i].rgb.size(); ++k)
      worst = std::max(worst, std::abs(laned[i].rgb[k] - serial[i].rgb[k]));
    EXPECT_LE(worst, 1) << "image " << i;
    if (i > 0) {
      EXPECT_NE(laned[i].rgb, laned[i - 1].rgb);  // each seed in its place
    }
  }
  // The lanes narrow only their own threads: this thread and new ones keep ATen's setting.
  EXPECT_EQ(at::get_num_threads(), 2);
  int new_thread = 0;
  std::thread([&] { new_thread = at::get_num_threads(); }).join();
  EXPECT_EQ(new_thread, 2);
}

TEST(EngineConfig, SectionsAreValidated) {
  test::TempDir dir;
  auto load = [&](const std::string& text) {
    std::ofstream(dir.file("c.yaml")) << text;
    return EngineConfig::load_file(dir.file("c.yaml"));
  };
  const std::string models = "models: {generator: g.h5, clip: c.h5, vocab: v.gz}\n";
  const EngineConfig ok = load(models + "artifacts: {root: art}\nedit: {k_pos: 10}\n");
  EXPECT_EQ(ok.generator_path, dir.file("g.h5"));  // relative to the config file
  EXPECT_EQ(ok.edit.k_pos, 10);
  EXPECT_EQ(code_of([&] { load(models + "artifacts: {root: a}\nedit: {k_pos: 10, alpah: 3}\n"); }), ErrorCode::kConfigError);
  EXPECT_EQ(code_of([&] { load(models + "artifacts: {root: a, version: b}\n"); }), ErrorCode::kConfigError);
  EXPECT_EQ(code_of([&] { load(models + "artifacts: {}\n"); }), ErrorCode::kConfigError);
  EXPECT_EQ(code_of([&] { load("device: tpu\n" + models + "artifacts: {root: a}\n"); }), ErrorCode::kConfigError);
  EXPECT_EQ(code_of([&] { load("models: {generator: g.h5}\nartifacts: {root: a}\n"); }), ErrorCode::kConfigError);
  EXPECT_EQ(code_of([&] {
              load("models: {generator: g.h5, clip: c.h5, vocab: v.gz, cpu_render_lanes: -1}\nartifacts: {root: a}\n");
            }),
            ErrorCode::kConfigError);
  EXPECT_EQ(ok.cpu_render_lanes, 0);
  EXPECT_EQ(ok.cpu_allocation_cache_mb, EngineConfig::kAutoCpuAllocationCache);
  auto with_cache = [&](const std::string& value) {
    return load("models: {generator: g.h5, clip: c.h5, vocab: v.gz, cpu_allocation_cache_mb: " + value +
                "}\nartifacts: {root: a}\n");
  };
  EXPECT_EQ(with_cache("auto").cpu_allocation_cache_mb, EngineConfig::kAutoCpuAllocationCache);
  EXPECT_EQ(with_cache("0").cpu_allocation_cache_mb, 0);
  EXPECT_EQ(with_cache("512").cpu_allocation_cache_mb, 512);
  for (const char* bad : {"-1", "lots", "2GB", "1.5"}) {
    try {
      with_cache(bad);
      ADD_FAILURE() << "cpu_allocation_cache_mb: " << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kConfigError);
      EXPECT_NE(std::string(e.what()).find("cpu_allocation_cache_mb"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  }
}

TEST(EngineConfig, SynthesisPrecisionIsValidated) {
  test::TempDir dir;
  auto load = [&](const std::string& device, const std::string& extra) {
    std::ofstream(dir.file("c.yaml")) << "device: " << device << "\nmodels: {generator: g.h5, clip: c.h5, vocab: v.gz"
                                      << extra << "}\nartifacts: {root: art}\n";
    return EngineConfig::load_file(dir.file("c.yaml"));
  };
  const EngineConfig plain = load("auto", "");
  EXPECT_EQ(plain.precision, "fp32");
  EXPECT_EQ(plain.num_fp16_res, 4);
  EXPECT_TRUE(plain.cuda_graphs);
  const EngineConfig bf16 = load("cpu", ", precision: bf16, num_fp16_res: 2, cuda_graphs: false");
  EXPECT_EQ(bf16.precision, "bf16");
  EXPECT_EQ(bf16.num_fp16_res, 2);
  EXPECT_FALSE(bf16.cuda_graphs);
  EXPECT_EQ(load("cuda", ", precision: fp16").precision, "fp16");
  test::expect_error([&] { load("auto", ", precision: fp8"); }, ErrorCode::kConfigError, {"precision", "fp8", "bf16"});
  test::expect_error([&] { load("cpu", ", precision: fp16"); }, ErrorCode::kConfigError, {"precision", "fp16", "cuda"});
  test::expect_error([&] { load("auto", ", num_fp16_res: -1"); }, ErrorCode::kConfigError, {"num_fp16_res"});
  EXPECT_EQ(plain.modulation, "auto");
  EXPECT_EQ(load("cpu", ", modulation: grouped").modulation, "grouped");
  EXPECT_EQ(load("cuda", ", modulation: non_fused").modulation, "non_fused");
  test::expect_error([&] { load("auto", ", modulation: fused"); }, ErrorCode::kConfigError,
                     {"modulation", "fused", "auto, non_fused or grouped"});
  EXPECT_EQ(plain.memory_format, "auto");
  EXPECT_EQ(load("cpu", ", memory_format: contiguous").memory_format, "contiguous");
  EXPECT_EQ(load("cuda", ", memory_format: channels_last").memory_format, "channels_last");
  test::expect_error([&] { load("auto", ", memory_format: nhwc"); }, ErrorCode::kConfigError,
                     {"memory_format", "nhwc", "auto, contiguous or channels_last"});
  test::expect_error([&] { load("cpu", ", memory_format: channels_last"); }, ErrorCode::kConfigError,
                     {"memory_format", "channels_last", "cuda"});
}

}  // namespace
}  // namespace feu::edit
