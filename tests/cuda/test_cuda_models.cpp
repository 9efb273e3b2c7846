// The models on CUDA against the CPU: StyleGAN2 synthesis in fp32 (TF32 off: Generator turns it
// off on CUDA), the CLIP towers in fp32 and in OpenAI's fp16 layout, CLIP's preprocessing of
// generated images, and Δi (`directions`). Skipped without a GPU.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <vector>

#include "clip/model.h"
#include "clip/preprocess.h"
#include "cuda_support.h"
#include "image/codec.h"
#include "image/tensor_image.h"
#include "index/corpus.h"
#include "index/directions.h"
#include "index/pipeline.h"
#include "stylegan2/generator.h"
#include "stylegan2/graphed_synthesis.h"
#include "test_support.h"

namespace feu {
namespace {

using clip::ClipConfig;
using clip::ClipModel;
using stylegan2::Generator;
using stylegan2::GeneratorConfig;
using stylegan2::GraphedSynthesis;
using stylegan2::Modulation;
using stylegan2::ModulationTiming;
using stylegan2::Precision;

double max_abs_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kCPU).to(at::kDouble) - b.to(at::kCPU).to(at::kDouble)).abs().max().item<double>();
}

double min_row_cosine(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kCPU).to(at::kDouble), y = b.to(at::kCPU).to(at::kDouble);
  return at::cosine_similarity(x, y, 1).min().item<double>();
}

// A small config-f-shaped generator (every block kind up to 64², modulated convs, toRGB skips).
GeneratorConfig small_config() {
  GeneratorConfig c;
  c.z_dim = c.w_dim = 64;
  c.img_resolution = 64;
  c.mapping_layers = 4;
  c.channel_base = 2048;
  c.channel_max = 64;
  return c;
}

TEST(CudaSynthesis, Fp32MatchesTheCpu) {
  FEU_SKIP_WITHOUT_CUDA_GPU();
  const Generator cpu = Generator::random(small_config(), 3, at::kCPU);
  const Generator gpu = Generator::random(small_config(), 3, at::Device(at::kCUDA, 0));
  at::manual_seed(5);
  const at::Tensor z = at::randn({4, 64});
  const at::Tensor ws_cpu = cpu.mapping(z, 0.7);
  const at::Tensor ws_gpu = gpu.mapping(z.to(gpu.device()), 0.7);
  EXPECT_TRUE(ws_gpu.device().is_cuda());
  EXPECT_LE(max_abs_diff(ws_gpu, ws_cpu), 1e-4);
  const at::Tensor img_cpu = cpu.synthesize_ws(ws_cpu);
  const at::Tensor img_gpu = gpu.synthesize_ws(ws_cpu.to(gpu.device()));
  ASSERT_EQ(img_gpu.sizes(), img_cpu.sizes());
  // The tolerance of the parity tests against the Python reference.
  EXPECT_LE(max_abs_diff(img_gpu, img_cpu), 1e-4);
  // Styles in, one layer's style changed: the partial synthesis agrees too.
  std::vector<at::Tensor> styles = gpu.styles_from_ws(ws_cpu.to(gpu.device()));
  const auto state = gpu.run_until(styles, 3);
  EXPECT_LE(max_abs_diff(gpu.run_from(state, styles, 3), img_cpu), 1e-4);
  // Grouped modulation (NVlabs' fused_modconv) on CUDA, and the measurement the engine's
  // models.modulation: auto makes at load.
  const Generator grouped = gpu.with_modulation(Modulation::kGrouped);
  EXPECT_LE(max_abs_diff(grouped.synthesize_ws(ws_cpu.to(gpu.device())), img_cpu), 1e-4);
  const ModulationTiming timing = stylegan2::measure_modulation(gpu, 4, 2);
  std::cout << "modulation at batch 4 (small model): non_fused " << timing.non_fused_ms << " ms, grouped "
            << timing.grouped_ms << " ms" << std::endl;
  EXPECT_GT(timing.non_fused_ms, 0);
  EXPECT_GT(timing.grouped_ms, 0);
}

// PSNR of `image` against `reference` over the reference's value range.
double psnr(const at::Tensor& image, const at::Tensor& reference) {
  const at::Tensor a = image.to(at::kCPU).to(at::kDouble), b = reference.to(at::kCPU).to(at::kDouble);
  const double range = (b.max() - b.min()).item<double>();
  return 10 * std::log10(range * range / (a - b).square().mean().item<double>());
}

std::vector<at::Tensor> rows(const std::vector<at::Tensor>& styles, int64_t begin, int64_t count) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& s : styles) out.push_back(s.narrow(0, begin, count));
  return out;
}

TEST(CudaSynthesis, GraphReplayEqualsEagerAndTheCpu) {
  FEU_SKIP_WITHOUT_CUDA_GPU();
  const Generator cpu = Generator::random(small_config(), 3, at::kCPU);
  const Generator gpu = Generator::random(small_config(), 3, at::Device(at::kCUDA, 0));
  ASSERT_TRUE(GraphedSynthesis::supported(gpu));
  GraphedSynthesis graphed(gpu, {1, 4});
  ASSERT_TRUE(graphed.graphed());
  at::manual_seed(6);
  const at::Tensor ws = cpu.mapping(at::randn({6, 64}), 0.7);
  const std::vector<at::Tensor> styles = gpu.styles_from_ws(ws.to(gpu.device()));
  const at::Tensor reference = cpu.synthesize_ws(ws);
  // Eager references at the batch sizes the graphs run (cuDNN may choose its kernels by shape).
  const at::Tensor eager_one = gpu.synthesize(rows(styles, 2, 1));
  const at::Tensor eager_head = gpu.synthesize(rows(styles, 0, 4));
  const at::Tensor eager_tail = gpu.synthesize(rows(styles, 2, 4)).narrow(0, 2, 2);  // rows 4, 5 in a batch of 4
  // Batch 1, twice (the second a pure replay), then 6 = a chunk of 4 and 2 padded to 4.
  for (int pass = 0; pass < 2; ++pass) {
    const at::Tensor one = graphed.synthesize(rows(styles, 2, 1));
    EXPECT_LE(max_abs_diff(one, eager_one), 1e-6) << pass;
  }
  const at::Tensor all = graphed.synthesize(styles);
  ASSERT_EQ(all.sizes(), reference.sizes());
  EXPECT_TRUE(all.device().is_cuda());
  EXPECT_LE(max_abs_diff(all.narrow(0, 0, 4), eager_head), 1e-6);
  EXPECT_LE(max_abs_diff(all.narrow(0, 4, 2), eager_tail), 1e-6);
  EXPECT_LE(max_abs_diff(all, reference), 1e-4);
  EXPECT_EQ(graphed.captured(), 2);
  // The output is the caller's: a later replay does not overwrite it.
  const at::Tensor kept = graphed.synthesize(rows(styles, 0, 1)).clone();
  const at::Tensor first = graphed.synthesize(rows(styles, 0, 1));
  graphed.synthesize(rows(styles, 5, 1));
  EXPECT_EQ(max_abs_diff(first, kept), 0.0);
}

TEST(CudaSynthesis, Fp16AndBf16AreWithin40DbOfFp32) {
  FEU_SKIP_WITHOUT_CUDA_GPU();
  const Generator gpu = Generator::random(small_config(), 3, at::Device(at::kCUDA, 0));
  at::manual_seed(7);
  const at::Tensor ws = gpu.mapping(at::randn({4, 64}).to(gpu.device()), 0.7);
  const std::vector<at::Tensor> styles = gpu.styles_from_ws(ws);
  const at::Tensor fp32 = gpu.synthesize(styles);
  for (Precision p : {Precision::kFp16, Precision::kBf16}) {
    const Generator reduced = gpu.with_precision(p, 4);
    EXPECT_EQ(reduced.layer_precision(gpu.style_space().index_of("b64.conv1")).dtype,
              p == Precision::kFp16 ? at::kHalf : at::kBFloat16);
    const at::Tensor img = reduced.synthesize(styles);
    EXPECT_EQ(img.scalar_type(), at::kFloat);
    const double db = psnr(img, fp32);
    std::cout << stylegan2::precision_name(p) << " against fp32 on CUDA at 64²: PSNR " << db << " dB" << std::endl;
    EXPECT_GE(db, 40) << stylegan2::precision_name(p);
    // Reduced precision under a graph replays the same kernels.
    GraphedSynthesis graphed(reduced, {4});
    EXPECT_LE(max_abs_diff(graphed.synthesize(styles), img), 1e-6);
  }
}

// Channels-last synthesis (models.memory_format) computes what NCHW does: fp32 against the CPU,
// with grouped modulation, from a paused and tiled state and under a graph; fp16 within 40 dB.
TEST(CudaSynthesis, ChannelsLastMatchesContiguousInEveryForm) {
  FEU_SKIP_WITHOUT_CUDA_GPU();
  using stylegan2::MemoryFormat;
  const Generator cpu = Generator::random(small_config(), 3, at::kCPU);
  const Generator gpu = Generator::random(small_config(), 3, at::Device(at::kCUDA, 0));
  const Generator nhwc = gpu.with_memory_format(MemoryFormat::kChannelsLast);
  EXPECT_EQ(nhwc.memory_format(), MemoryFormat::kChannelsLast);
  at::manual_seed(8);
  const at::Tensor ws = cpu.mapping(at::randn({4, 64}), 0.7);
  const std::vector<at::Tensor> styles = gpu.styles_from_ws(ws.to(gpu.device()));
  const at::Tensor reference = cpu.synthesize_ws(ws);
  const at::Tensor img = nhwc.synthesize(styles);
  EXPECT_TRUE(img.is_contiguous());
  EXPECT_LE(max_abs_diff(img, reference), 1e-4);
  EXPECT_LE(max_abs_diff(nhwc.with_modulation(Modulation::kGrouped).synthesize(styles), reference), 1e-4);
  const auto state = nhwc.run_until(styles, 4).tile(2);
  std::vector<at::Tensor> doubled;
  for (const at::Tensor& s : styles) doubled.push_back(s.repeat({2, 1}));
  EXPECT_LE(max_abs_diff(nhwc.run_from(state, doubled, 4), at::cat({reference, reference}, 0)), 1e-4);
  GraphedSynthesis graphed(nhwc, {4});
  EXPECT_LE(max_abs_diff(graphed.synthesize(styles), img), 1e-6);
  const at::Tensor fp16 = nhwc.with_precision(Precision::kFp16, 4).synthesize(styles);
  const double db = psnr(fp16, gpu.synthesize(styles));
  std::cout << "fp16 channels_last against fp32 on CUDA at 64²: PSNR " << db << " dB" << std::endl;
  EXPECT_GE(db, 40);
  const stylegan2::MemoryFormatTiming timing = stylegan2::measure_memory_format(gpu, 4, 2);
  std::cout << "memory format at batch 4 (small model): contiguous " << timing.contiguous_ms << " ms, channels_last "
            << timing.channels_last_ms << " ms" << std::endl;
  EXPECT_GT(timing.contiguous_ms, 0);
  EXPECT_GT(timing.channels_last_ms, 0);
  EXPECT_EQ(gpu.memory_format(), MemoryFormat::kContiguous);
}

TEST(CudaClip, Fp32AndFp16TowersMatchTheCpu) {
  FEU_SKIP_WITHOUT_CUDA_GPU();
  test::TempDir dir;
  const ClipConfig config = ClipConfig::small(/*vocab_size=*/1000);
  ClipModel::random(config, 11, at::kCPU).save_h5(dir.file("clip.h5"));
  const ClipModel cpu = ClipModel::load(dir.file("clip.h5"), at::kCPU);
  const ClipModel fp32 = ClipModel::load(dir.file("clip.h5"), at::Device(at::kCUDA, 0));
  const ClipModel fp16 = ClipModel::load(dir.file("clip.h5"), at::Device(at::kCUDA, 0), /*fp16=*/true);
  at::manual_seed(2);
  const at::Tensor pixels = at::randn({8, 3, 32, 32});
  at::Tensor tokens = at::zeros({3, 77}, at::kLong);
  tokens[0][0] = 998, tokens[0][1] = 5, tokens[0][2] = 999;
  tokens[1][0] = 998, tokens[1][1] = 17, tokens[1][2] = 300, tokens[1][3] = 999;
  tokens[2][0] = 998, tokens[2][1] = 999;
  const at::Tensor image = cpu.encode_image(pixels), text = cpu.encode_text(tokens);
  const at::Tensor image32 = fp32.encode_image(pixels), text32 = fp32.encode_text(tokens);
  EXPECT_TRUE(image32.device().is_cuda());
  EXPECT_LE(max_abs_diff(image32, image), 1e-4 * image.abs().max().item<double>());
  EXPECT_LE(max_abs_diff(text32, text), 1e-4 * text.abs().max().item<double>());
  // fp16 activations: the embeddings' directions (what retrieval and Δi use) agree.
  const at::Tensor image16 = fp16.encode_image(pixels), text16 = fp16.encode_text(tokens);
  EXPECT_EQ(image16.scalar_type(), at::kFloat);
  EXPECT_GE(min_row_cosine(image16, image), 0.999);
  EXPECT_GE(min_row_cosine(text16, text), 0.999);
}

TEST(CudaClip, PreprocessingGeneratedImagesOnTheGpuIsBitIdentical) {
  FEU_SKIP_WITHOUT_CUDA_GPU();
  // Generator output in [-1, 1], a little beyond (clamped), at two sizes: one resized down, one up.
  at::manual_seed(4);
  for (int64_t side : {int64_t{64}, int64_t{16}}) {
    const at::Tensor img = at::rand({3, 3, side, side}) * 2.2 - 1.1;
    const at::Tensor cpu = clip::preprocess_generated(img, 32);
    const at::Tensor gpu = clip::preprocess_generated(img.to(at::Device(at::kCUDA, 0)), 32);
    EXPECT_TRUE(gpu.device().is_cuda());
    ASSERT_EQ(gpu.sizes(), cpu.sizes());
    // Integer arithmetic in float64 on both devices: the same pixels.
    EXPECT_EQ(max_abs_diff(gpu, cpu), 0.0) << side;
  }
}

TEST(CudaDirections, RowsComputedOnTheGpuMatchTheCpus) {
  FEU_SKIP_WITHOUT_CUDA_GPU();
  test::TempDir dir;
  GeneratorConfig c = small_config();
  c.img_resolution = 32;
  Generator::random(c, 7, at::kCPU).save(dir.file("generator.h5"));
  ClipModel::random(ClipConfig::small(600), 3, at::kCPU).save_h5(dir.file("clip.h5"));
  index::StatsOptions stats;
  stats.generator_path = dir.file("generator.h5");
  stats.out_path = dir.file("stats.h5");
  stats.device = "cpu";
  stats.num_samples = 500;
  stats.batch_size = 250;
  index::compute_style_stats(stats);
  index::DirectionsOptions o;
  o.generator_path = stats.generator_path;
  o.clip_path = dir.file("clip.h5");
  o.stats_path = stats.out_path;
  o.images = 8;
  o.only_layer = 5;  // b16.conv0: renders from the shared activations below it
  o.max_channels = 6;
  o.progress = false;
  o.device = "cpu";
  o.out_path = dir.file("cpu.h5");
  EXPECT_EQ(index::compute_directions(o).computed, 6);
  o.device = "cuda";
  o.out_path = dir.file("cuda.h5");
  EXPECT_EQ(index::compute_directions(o).computed, 6);  // batched renders, as on CUDA by default
  const index::Directions cpu = index::Directions::load(dir.file("cpu.h5"));
  const index::Directions gpu = index::Directions::load(dir.file("cuda.h5"));
  ASSERT_EQ(gpu.covered_channels, cpu.covered_channels);
  EXPECT_EQ(gpu.dead, cpu.dead);
  ASSERT_EQ(gpu.fs3.size(), cpu.fs3.size());
  // Float reassociation, amplified where a pixel crosses a uint8 level (the
  // CPU's batched-synthesis test allows the same).
  for (size_t i = 0; i < cpu.fs3.size(); ++i) EXPECT_NEAR(gpu.fs3[i], cpu.fs3[i], 2e-3) << i;
}

TEST(CudaEmbed, ACorpusEmbeddedOnTheGpuMatchesTheCpus) {
  FEU_SKIP_WITHOUT_CUDA_GPU();
  test::TempDir dir;
  ClipModel::random(ClipConfig::small(600), 3, at::kCPU).save_h5(dir.file("clip.h5"));
  // 11 images in batches of 4: two full pinned buffers taking turns, and a short last batch.
  std::filesystem::create_directories(dir.file("images"));
  at::manual_seed(8);
  for (int i = 0; i < 11; ++i) {
    const at::Tensor img = at::rand({1, 3, 40, 48}) * 2 - 1;
    image::write_image(dir.file("images/" + std::to_string(i) + ".png"),
                       image::images_from_tensor(img, image::Quantize::kNvlabs).at(0));
  }
  index::EmbedOptions o;
  o.images_dir = dir.file("images");
  o.clip_path = dir.file("clip.h5");
  o.batch_size = 4;
  o.progress = false;
  o.device = "cpu";
  o.out_dir = dir.file("cpu");
  EXPECT_EQ(index::embed_corpus(o).embedded, 11);
  o.device = "cuda";
  o.out_dir = dir.file("cuda");
  EXPECT_EQ(index::embed_corpus(o).embedded, 11);
  const index::CorpusIndex cpu = index::CorpusIndex::load(dir.file("cpu"));
  const index::CorpusIndex gpu = index::CorpusIndex::load(dir.file("cuda"));
  ASSERT_EQ(gpu.size(), cpu.size());
  for (int64_t row = 0; row < cpu.size(); ++row) {
    EXPECT_EQ(gpu.entries()[row].path, cpu.entries()[row].path);
    double dot = 0;
    for (int64_t k = 0; k < cpu.dim(); ++k) dot += double(gpu.embedding(row)[k]) * cpu.embedding(row)[k];
    EXPECT_GE(dot, 0.9999) << cpu.entries()[row].path;  // unit rows
  }
}

TEST(CudaClip, Fp16OnTheCpuIsATypedError) {
  // fp16 is a CUDA layout: asking for it on the CPU is refused, GPU or not.
  test::TempDir dir;
  ClipModel::random(ClipConfig::small(1000), 11, at::kCPU).save_h5(dir.file("clip.h5"));
  test::expect_error([&] { ClipModel::load(dir.file("clip.h5"), at::kCPU, /*fp16=*/true); },
                     ErrorCode::kUnsupported, {"fp16"});
}

}  // namespace
}  // namespace feu
