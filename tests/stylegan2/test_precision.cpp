// Reduced-precision synthesis (NVlabs' num_fp16_res with conv clamping) and the bucketed
// CUDA-graph wrapper, on the CPU: the layer plan, the clamp where NVlabs applies it, bf16 against
// fp32, and GraphedSynthesis's padding and chunking (run eagerly here; tests/cuda replays graphs).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <iostream>

#include "core/error.h"
#include "stylegan2/generator.h"
#include "stylegan2/graphed_synthesis.h"
#include "test_support.h"

namespace feu::stylegan2 {
namespace {

// The embedded default's architecture (index/demo_assets.cpp): 64², every S layer kind.
GeneratorConfig demo_config() {
  GeneratorConfig c;
  c.z_dim = c.w_dim = 32;
  c.img_resolution = 64;
  c.mapping_layers = 2;
  c.channel_base = 512;
  c.channel_max = 32;
  return c;
}

// Nonzero biases and noise strengths, so every path of a layer matters.
Generator demo_generator(uint64_t seed = 4) {
  Generator g = Generator::random(demo_config(), seed);
  at::manual_seed(static_cast<int64_t>(seed));
  for (const auto& [key, shape] : expected_weight_shapes(g.config())) {
    const bool bias = key.size() > 5 && key.compare(key.size() - 5, 5, ".bias") == 0 &&
                      key.find("affine") == std::string::npos;
    if (bias || key.find("noise_strength") != std::string::npos)
      g.set_weight(key, at::randn(shape) * 0.3);
  }
  return g;
}

// PSNR of `image` against `reference` over the reference's value range.
double psnr(const at::Tensor& image, const at::Tensor& reference) {
  const at::Tensor a = image.to(at::kDouble), b = reference.to(at::kDouble);
  const double range = (b.max() - b.min()).item<double>();
  const double mse = (a - b).square().mean().item<double>();
  return 10 * std::log10(range * range / mse);
}

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).abs().max().item<double>();
}

TEST(SynthesisPrecision, NamesParseAndBadOnesAreTypedErrors) {
  for (Precision p : {Precision::kFp32, Precision::kFp16, Precision::kBf16})
    EXPECT_EQ(parse_precision(precision_name(p)), p);
  test::expect_error([] { parse_precision("fp8"); }, ErrorCode::kInvalidArgument, {"fp8", "bf16"});
  const Generator g = Generator::random(demo_config(), 1);
  test::expect_error([&] { g.with_precision(Precision::kFp16); }, ErrorCode::kUnsupported,
                     {"fp16", "CUDA", "bf16"});
  test::expect_error([&] { g.with_precision(Precision::kBf16, -1); }, ErrorCode::kInvalidArgument,
                     {"num_fp16_res"});
}

TEST(SynthesisPrecision, ReducedBlocksFollowNumFp16ResWithTheirClamp) {
  const Generator g = Generator::random(demo_config(), 1);
  const StyleSpace& space = g.style_space();
  // 64²: fp16_resolution = max(2^(6 + 1 - n), 8); reduced blocks get ±256 (the model has none).
  for (int n : {0, 1, 2, 4, 9}) {
    const Generator reduced = g.with_precision(Precision::kBf16, n);
    const int from = std::max(1 << std::max(7 - n, 0), 8);
    for (int i = 0; i < space.num_layers(); ++i) {
      const LayerPrecision p = reduced.layer_precision(i);
      const bool expect_reduced = space.layers()[i].resolution >= from;
      EXPECT_EQ(p.dtype, expect_reduced ? at::kBFloat16 : at::kFloat) << n << " " << space.layers()[i].name;
      EXPECT_EQ(p.clamp, expect_reduced ? 256 : -1) << n << " " << space.layers()[i].name;
    }
  }
  // fp32 is the model as it is; a model's own conv_clamp holds on every layer, reduced or not.
  for (int i = 0; i < space.num_layers(); ++i) EXPECT_EQ(g.layer_precision(i).dtype, at::kFloat);
  GeneratorConfig clamped = demo_config();
  clamped.conv_clamp = 100;
  const Generator c = Generator::random(clamped, 1).with_precision(Precision::kBf16, 2);
  for (int i = 0; i < space.num_layers(); ++i) EXPECT_EQ(c.layer_precision(i).clamp, 100);
  EXPECT_EQ(c.layer_precision(space.index_of("b64.conv1")).dtype, at::kBFloat16);
  EXPECT_EQ(c.layer_precision(space.index_of("b16.conv1")).dtype, at::kFloat);
}

TEST(SynthesisPrecision, TheClampActsOnReducedBlocksOnly) {
  // Biases of 1000 push b32.conv1 (fp32 under num_fp16_res 1) and b64.conv1 (bf16) far past 256.
  Generator g = Generator::random(demo_config(), 2);
  for (const char* layer : {"synthesis.b32.conv1.bias", "synthesis.b64.conv1.bias"})
    g.set_weight(layer, at::full(g.weight(layer).sizes(), 1000.0));
  const Generator reduced = g.with_precision(Precision::kBf16, 1);
  const StyleSpace& space = g.style_space();
  const auto styles = g.styles_from_ws(g.mapping(at::randn({2, 32})));
  // Just before b64.conv0 runs, x is b32.conv1's output: fp32 and not clamped.
  const at::Tensor b32 = reduced.run_until(styles, space.index_of("b64.conv0")).x;
  EXPECT_EQ(b32.scalar_type(), at::kFloat);
  EXPECT_GT(b32.max().item<double>(), 1000);
  // Just before b64.torgb, x is b64.conv1's output: bf16, clamped to 256 (NVlabs' bias_act).
  const at::Tensor b64 = reduced.run_until(styles, space.index_of("b64.torgb")).x;
  EXPECT_EQ(b64.scalar_type(), at::kBFloat16);
  EXPECT_EQ(b64.to(at::kFloat).max().item<double>(), 256);
  EXPECT_GT(g.run_until(styles, space.index_of("b64.torgb")).x.max().item<double>(), 1000);
  // toRGB is clamped too: a bias of 1000 on b64.torgb adds at most 256 (plus its conv) in bf16.
  Generator rgb = Generator::random(demo_config(), 2);
  const at::Tensor plain = rgb.with_precision(Precision::kBf16, 1).synthesize(styles);
  rgb.set_weight("synthesis.b64.torgb.bias", at::full({3}, 1000.0));
  const at::Tensor shifted = rgb.with_precision(Precision::kBf16, 1).synthesize(styles);
  EXPECT_LT((shifted - plain).mean().item<double>(), 300);
  EXPECT_GT((rgb.synthesize(styles) - plain).mean().item<double>(), 900);
}

TEST(SynthesisPrecision, Bf16OnTheCpuIsCloseToFp32) {
  const Generator g = demo_generator();
  at::manual_seed(7);
  const auto styles = g.styles_from_ws(g.mapping(at::randn({4, 32}), 0.7));
  const at::Tensor fp32 = g.synthesize(styles);
  // b32 and b64; NVlabs' num_fp16_res = 4 (every block but b4 at 64²). Measured: 50.6 dB (4).
  for (int n : {2, 4}) {
    const at::Tensor bf16 = g.with_precision(Precision::kBf16, n).synthesize(styles);
    EXPECT_EQ(bf16.scalar_type(), at::kFloat);
    ASSERT_EQ(bf16.sizes(), fp32.sizes());
    const double db = psnr(bf16, fp32);
    std::cout << "bf16 (num_fp16_res " << n << ") against fp32 at 64²: PSNR " << db << " dB, max |diff| "
              << max_diff(bf16, fp32) << std::endl;
    EXPECT_GE(db, 40);
  }
}

TEST(SynthesisPrecision, Bf16OnTheParityFixtureIsCloseToFp32) {
  FEU_SHARED_FILE_OR_SKIP(path, "parity/stylegan2_64.h5");
  const Generator g = Generator::load(path);
  at::manual_seed(8);
  const auto styles = g.styles_from_ws(g.mapping(at::randn({4, g.config().z_dim}), 0.7));
  const at::Tensor fp32 = g.synthesize(styles);
  const at::Tensor bf16 = g.with_precision(Precision::kBf16).synthesize(styles);
  const double db = psnr(bf16, fp32);
  std::cout << "bf16 against fp32 on " << path << ": PSNR " << db << " dB" << std::endl;
  EXPECT_GE(db, 40);
}

TEST(Modulation, NamesParseAndBadOnesAreTypedErrors) {
  for (Modulation m : {Modulation::kNonFused, Modulation::kGrouped}) EXPECT_EQ(parse_modulation(modulation_name(m)), m);
  test::expect_error([] { parse_modulation("fused"); }, ErrorCode::kInvalidArgument, {"fused", "non_fused", "grouped"});
  const Generator g = Generator::random(demo_config(), 1);
  EXPECT_EQ(g.modulation(), Modulation::kNonFused);
  test::expect_error([&] { measure_modulation(g, 0); }, ErrorCode::kInvalidArgument, {"batch >= 1", "batch 0"});
  test::expect_error([&] { measure_modulation(g, 2, 0); }, ErrorCode::kInvalidArgument, {"repeats >= 1"});
}

// Grouped modulation against the CPU's own forms (per-sample weight folding, polyphase up-sampling,
// batched activations), with noise, biases and clamping in play; it survives with_precision, and
// the reduced blocks keep their non-fused path.
TEST(Modulation, GroupedEqualsNonFusedAndSurvivesPrecision) {
  GeneratorConfig config = demo_config();
  config.conv_clamp = 0.5;
  Generator g = Generator::random(config, 5);
  at::manual_seed(9);
  for (const auto& [key, shape] : expected_weight_shapes(g.config()))
    if (key.find("noise_strength") != std::string::npos || key.find("conv1.bias") != std::string::npos)
      g.set_weight(key, at::randn(shape) * 0.3);
  const Generator grouped = g.with_modulation(Modulation::kGrouped);
  for (int64_t batch : {1, 3}) {
    const auto styles = g.styles_from_ws(g.mapping(at::randn({batch, 32}), 0.7));
    const at::Tensor reference = g.synthesize(styles);
    const at::Tensor image = grouped.synthesize(styles);
    EXPECT_LE(max_diff(image, reference), 1e-5) << batch;
    // A different computation (were the switch ignored, the bits would match): the CPU's own forms
    // modulate activations or per-sample weights and up-sample by phases.
    EXPECT_FALSE(at::equal(image, reference)) << batch;
    // Partial synthesis from a paused state runs the same layers.
    EXPECT_LE(max_diff(grouped.run_from(grouped.run_until(styles, 4), styles, 4), reference), 1e-5) << batch;
  }
  const Generator bf16 = grouped.with_precision(Precision::kBf16, 2);
  EXPECT_EQ(bf16.modulation(), Modulation::kGrouped);
  const auto styles = g.styles_from_ws(g.mapping(at::randn({2, 32}), 0.7));
  EXPECT_LE(max_diff(bf16.synthesize(styles), g.with_precision(Precision::kBf16, 2).synthesize(styles)), 1e-5);
}

TEST(MemoryFormat, NamesParseAndTheCpuKeepsNchw) {
  for (MemoryFormat f : {MemoryFormat::kContiguous, MemoryFormat::kChannelsLast})
    EXPECT_EQ(parse_memory_format(memory_format_name(f)), f);
  test::expect_error([] { parse_memory_format("nhwc"); }, ErrorCode::kInvalidArgument,
                     {"nhwc", "contiguous", "channels_last"});
  const Generator g = demo_generator();
  EXPECT_EQ(g.memory_format(), MemoryFormat::kContiguous);
  test::expect_error([&] { g.with_memory_format(MemoryFormat::kChannelsLast); }, ErrorCode::kUnsupported,
                     {"channels_last", "CUDA"});
  test::expect_error([&] { measure_memory_format(g, 2, 1); }, ErrorCode::kUnsupported, {"channels_last", "CUDA"});
  // Asking the CPU for what it has changes nothing, and the other switches keep the format.
  const auto styles = g.styles_from_ws(g.mapping(at::randn({2, 32}), 0.7));
  const Generator same = g.with_memory_format(MemoryFormat::kContiguous);
  EXPECT_TRUE(at::equal(same.synthesize(styles), g.synthesize(styles)));
  EXPECT_EQ(same.with_modulation(Modulation::kGrouped).memory_format(), MemoryFormat::kContiguous);
}

TEST(Modulation, MeasurementTimesBothAndNamesTheFaster) {
  const Generator g = demo_generator();
  const ModulationTiming timing = measure_modulation(g, 2, 1);
  EXPECT_GT(timing.non_fused_ms, 0);
  EXPECT_GT(timing.grouped_ms, 0);
  EXPECT_EQ(timing.faster, timing.grouped_ms < timing.non_fused_ms ? Modulation::kGrouped : Modulation::kNonFused);
  EXPECT_EQ(g.modulation(), Modulation::kNonFused);  // measuring leaves the generator as it was
}

TEST(GraphedSynthesis, PadsToBucketsAndChunksEqualEager) {
  const Generator g = demo_generator();
  GraphedSynthesis graphed(g, {4, 1, 2, 2});
  EXPECT_EQ(graphed.buckets(), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_FALSE(graphed.graphed());  // a CPU generator runs the buckets eagerly
  EXPECT_EQ(graphed.bucket_for(1), 1);
  EXPECT_EQ(graphed.bucket_for(3), 4);
  EXPECT_EQ(graphed.bucket_for(4), 4);
  EXPECT_EQ(graphed.bucket_for(9), 4);
  at::manual_seed(3);
  const auto styles = g.styles_from_ws(g.mapping(at::randn({7, 32})));
  const at::Tensor eager = g.synthesize(styles);
  // 7 = a chunk of 4, then 3 padded to 4: one bucket used.
  const at::Tensor out = graphed.synthesize(styles);
  ASSERT_EQ(out.sizes(), eager.sizes());
  EXPECT_LE(max_diff(out, eager), 1e-5);
  EXPECT_EQ(graphed.captured(), 1);
  // One sample, padded rows left from the last call do not leak into it.
  std::vector<at::Tensor> one;
  for (const at::Tensor& s : styles) one.push_back(s.narrow(0, 5, 1));
  EXPECT_LE(max_diff(graphed.synthesize(one), eager.narrow(0, 5, 1)), 1e-5);
  std::vector<at::Tensor> three;
  for (const at::Tensor& s : styles) three.push_back(s.narrow(0, 1, 3));
  EXPECT_LE(max_diff(graphed.synthesize(three), eager.narrow(0, 1, 3)), 1e-5);
  EXPECT_EQ(graphed.captured(), 2);
}

TEST(GraphedSynthesis, BadBucketsAndRandomNoiseAreTypedErrors) {
  const Generator g = Generator::random(demo_config(), 1);
  test::expect_error([&] { GraphedSynthesis(g, {}); }, ErrorCode::kInvalidArgument, {"bucket"});
  test::expect_error([&] { GraphedSynthesis(g, {2, 0}); }, ErrorCode::kInvalidArgument, {"bucket 0"});
  test::expect_error([&] { GraphedSynthesis(g, {1}, NoiseMode::kRandom); }, ErrorCode::kInvalidArgument,
                     {"random"});
  GraphedSynthesis graphed(g, {1});
  test::expect_error([&] { graphed.synthesize(std::vector<at::Tensor>(2)); }, ErrorCode::kShapeMismatch, {});
  std::vector<at::Tensor> empty;
  for (const StyleLayer& layer : g.style_space().layers()) empty.push_back(at::zeros({0, layer.channels}));
  test::expect_error([&] { graphed.synthesize(empty); }, ErrorCode::kShapeMismatch, {"empty"});
}

}  // namespace
}  // namespace feu::stylegan2
