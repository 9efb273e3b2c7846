#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/h5.h"
#include "stylegan2/generator.h"
#include "tensor/tensor_h5.h"
#include "test_support.h"

namespace feu::stylegan2 {
namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  return (a.to(at::kCPU) - b.to(at::kCPU)).abs().max().item<double>();
}

std::vector<at::Tensor> read_styles(const h5::File& f, const std::string& group,
                                    const StyleSpace& space) {
  std::vector<at::Tensor> out;
  for (const auto& layer : space.layers()) out.push_back(read_tensor(f, group + "/" + layer.name));
  return out;
}

// Every output of a parity fixture made with NVlabs networks.py.
// Largest differences seen, printed for the record.
struct WorstDiff {
  double latent_max = 0, image_max = 0;
  double latent(double d) { return latent_max = std::max(latent_max, d), d; }
  double image(double d) { return image_max = std::max(image_max, d), d; }
};

void check_parity(const std::string& path) {
  Generator g = Generator::load(path);
  WorstDiff worst;
  h5::File f = h5::File::open_read(path);
  const GeneratorConfig& c = g.config();
  EXPECT_EQ(c.num_ws(), f.attr_int("/", "num_ws"));
  nlohmann::json layers = nlohmann::json::parse(f.attr_string("/", "layers"));
  ASSERT_EQ(layers.size(), g.style_space().layers().size());
  for (size_t i = 0; i < layers.size(); ++i)
    EXPECT_EQ(layers[i].get<std::string>(), g.style_space().layers()[i].name);

  const double psi = f.attr_double("/", "psi");
  at::Tensor z = read_tensor(f, "z");
  at::Tensor ws = g.mapping(z, psi);
  EXPECT_LE(worst.latent(max_diff(ws, read_tensor(f, "ws"))), 1e-4);
  EXPECT_LE(worst.latent(max_diff(g.mapping(z), read_tensor(f, "ws_psi1"))), 1e-4);

  // From the fixture's ws, so each stage is checked on its own.
  at::Tensor ref_ws = read_tensor(f, "ws");
  std::vector<at::Tensor> styles = g.styles_from_ws(ref_ws);
  std::vector<at::Tensor> ref_styles = read_styles(f, "styles", g.style_space());
  for (size_t i = 0; i < styles.size(); ++i)
    EXPECT_LE(worst.latent(max_diff(styles[i], ref_styles[i])), 1e-4)
        << g.style_space().layers()[i].name;
  EXPECT_LE(
      worst.image(max_diff(g.synthesize(styles, NoiseMode::kConst), read_tensor(f, "img_const"))),
      1e-3);
  EXPECT_LE(
      worst.image(max_diff(g.synthesize(styles, NoiseMode::kNone), read_tensor(f, "img_none"))),
      1e-3);

  // Batch 1 takes the CPU path that modulates weights instead of activations.
  for (int64_t n = 0; n < ref_ws.size(0); ++n) {
    std::vector<at::Tensor> one;
    for (const at::Tensor& st : styles) one.push_back(st.narrow(0, n, 1));
    EXPECT_LE(worst.image(max_diff(g.synthesize(one), read_tensor(f, "img_const").narrow(0, n, 1))),
              1e-3);
  }

  at::Tensor wplus = read_tensor(f, "wplus");
  std::vector<at::Tensor> styles_wplus = g.styles_from_ws(wplus);
  std::vector<at::Tensor> ref_wplus = read_styles(f, "styles_wplus", g.style_space());
  for (size_t i = 0; i < styles.size(); ++i)
    EXPECT_LE(worst.latent(max_diff(styles_wplus[i], ref_wplus[i])), 1e-4)
        << g.style_space().layers()[i].name;
  EXPECT_LE(worst.image(max_diff(g.synthesize_ws(wplus), read_tensor(f, "img_wplus"))), 1e-3);

  std::vector<at::Tensor> edited = read_styles(f, "styles_edit", g.style_space());
  EXPECT_LE(worst.image(max_diff(g.synthesize(edited), read_tensor(f, "img_sedit"))), 1e-3);

  // Grouped modulation (one grouped convolution per layer, NVlabs' fused_modconv) computes the same.
  const Generator grouped = g.with_modulation(Modulation::kGrouped);
  EXPECT_EQ(grouped.modulation(), Modulation::kGrouped);
  EXPECT_LE(worst.image(max_diff(grouped.synthesize(styles, NoiseMode::kConst), read_tensor(f, "img_const"))), 1e-3);
  EXPECT_LE(worst.image(max_diff(grouped.synthesize(edited), read_tensor(f, "img_sedit"))), 1e-3);
  EXPECT_LE(worst.image(max_diff(grouped.synthesize_ws(wplus), read_tensor(f, "img_wplus"))), 1e-3);
  std::cout << path << ": max |diff| ws/styles " << worst.latent_max << ", images "
            << worst.image_max << std::endl;
}

TEST(GeneratorParity, Reproduces64) {
  FEU_SHARED_FILE_OR_SKIP(path, "parity/stylegan2_64.h5");
  check_parity(path);
}

TEST(GeneratorParity, Reproduces256) {
  FEU_SHARED_FILE_OR_SKIP(path, "parity/stylegan2_256.h5");
  check_parity(path);
}

TEST(GeneratorParity, NoiseModesDifferWhereNoiseIsNonzero) {
  FEU_SHARED_FILE_OR_SKIP(path, "parity/stylegan2_64.h5");
  Generator g = Generator::load(path);
  at::Tensor ws = g.mapping(at::randn({2, g.config().z_dim}));
  at::Tensor a = g.synthesize_ws(ws, NoiseMode::kRandom);
  at::Tensor b = g.synthesize_ws(ws, NoiseMode::kRandom);
  EXPECT_GT(max_diff(a, b), 1e-3);  // fresh noise each call
  EXPECT_EQ(max_diff(g.synthesize_ws(ws), g.synthesize_ws(ws)),
            0.0);  // const is deterministic
}

TEST(StyleSpace, ConfigFKeysShapesAndChannelCounts) {
  FEU_SHARED_FILE_OR_SKIP(path, "parity/stylegan2_config_f_1024_keys.json");
  std::ifstream in(path);
  nlohmann::ordered_json reference = nlohmann::ordered_json::parse(in);
  GeneratorConfig c = GeneratorConfig::config_f();
  auto expected = expected_weight_shapes(c);
  ASSERT_EQ(expected.size(), reference.size());
  size_t i = 0;
  for (auto it = reference.begin(); it != reference.end(); ++it, ++i) {
    EXPECT_EQ(expected[i].first, it.key());
    EXPECT_EQ(expected[i].second, it.value().get<std::vector<int64_t>>()) << it.key();
  }
  StyleSpace space(c);
  EXPECT_EQ(space.num_layers(), 26);
  EXPECT_EQ(space.conv_channels(), 6048);
  EXPECT_EQ(space.total_channels() - space.conv_channels(), 3040);
  EXPECT_EQ(c.num_ws(), 18);
  // The spec's table: toRGB shares its w with the next block's conv0.
  const auto& L = space.layers();
  EXPECT_EQ(L[space.index_of("b4.torgb")].w_index, 1);
  EXPECT_EQ(L[space.index_of("b8.conv0")].w_index, 1);
  EXPECT_EQ(L[space.index_of("b128.conv1")].offset, 7680);
  EXPECT_EQ(L[space.index_of("b128.conv1")].channels, 256);
  EXPECT_EQ(L[space.index_of("b1024.torgb")].w_index, 17);
  EXPECT_EQ(L[space.index_of("b1024.torgb")].offset, 9056);
  // Each style layer's channel count is its affine's output size.
  for (const auto& layer : L) {
    auto found = std::find_if(expected.begin(), expected.end(), [&](const auto& e) {
      return e.first == "synthesis." + layer.name + ".affine.weight";
    });
    ASSERT_NE(found, expected.end()) << layer.name;
    EXPECT_EQ(found->second[0], layer.channels) << layer.name;
  }
}

TEST(StyleSpace, UnknownLayerIsANamedError) {
  StyleSpace space(GeneratorConfig::config_f());
  try {
    space.index_of("b8.conv2");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("b8.conv2"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("b1024.torgb"), std::string::npos);
  }
}

GeneratorConfig tiny_config() {
  GeneratorConfig c;
  c.z_dim = c.w_dim = 32;
  c.img_resolution = 32;
  c.mapping_layers = 2;
  c.channel_base = 256;
  c.channel_max = 32;
  return c;
}

// Random weights have zero biases and noise strengths; give them values so
// every path matters.
Generator tiny_generator(uint64_t seed = 1) {
  Generator g = Generator::random(tiny_config(), seed);
  at::manual_seed(seed);
  for (const auto& [key, shape] : expected_weight_shapes(g.config())) {
    const bool bias = key.size() > 5 && key.compare(key.size() - 5, 5, ".bias") == 0 &&
                      key.find("affine") == std::string::npos;
    if (bias || key.find("noise_strength") != std::string::npos || key == "mapping.w_avg")
      g.set_weight(key, at::randn(shape) * 0.3);
  }
  return g;
}

TEST(Generator, StyleRoundTripAndFlatS) {
  Generator g = tiny_generator();
  at::Tensor ws = g.mapping(at::randn({3, 32}), 0.7, 4);
  std::vector<at::Tensor> styles = g.styles_from_ws(ws);
  at::Tensor direct = g.synthesize_ws(ws);
  EXPECT_EQ(max_diff(g.synthesize(styles), direct), 0.0);
  const StyleSpace& space = g.style_space();
  at::Tensor flat = space.flatten(styles);
  EXPECT_EQ(flat.size(1), space.total_channels());
  EXPECT_EQ(max_diff(g.synthesize(space.split(flat)), direct), 0.0);
  EXPECT_EQ(direct.sizes(), (at::IntArrayRef{3, 3, 32, 32}));
  // A single w broadcasts like W+ with identical rows.
  at::Tensor w = g.mapping(at::randn({2, 32})).select(1, 0);
  EXPECT_EQ(max_diff(g.synthesize_ws(w),
                     g.synthesize_ws(w.unsqueeze(1).repeat({1, g.config().num_ws(), 1}))),
            0.0);
}

TEST(Generator, TruncationCutoffRows) {
  Generator g = tiny_generator();
  at::Tensor z = at::randn({2, 32});
  at::Tensor plain = g.mapping(z);
  at::Tensor cut = g.mapping(z, 0.5, 3);
  const at::Tensor& w_avg = g.weight("mapping.w_avg");
  EXPECT_LE(max_diff(cut.narrow(1, 0, 3), w_avg + (plain.narrow(1, 0, 3) - w_avg) * 0.5), 1e-6);
  EXPECT_EQ(max_diff(cut.narrow(1, 3, g.config().num_ws() - 3),
                     plain.narrow(1, 3, g.config().num_ws() - 3)),
            0.0);
}

TEST(Generator, RunUntilRunFromEqualsFullSynthesis) {
  Generator g = tiny_generator();
  std::vector<at::Tensor> styles = g.styles_from_ws(g.mapping(at::randn({2, 32})));
  at::Tensor full = g.synthesize(styles);
  for (int layer = 0; layer <= g.style_space().num_layers(); ++layer) {
    SynthesisState state = g.run_until(styles, layer);
    EXPECT_EQ(max_diff(g.run_from(state, styles, layer), full), 0.0) << layer;
  }
  // Tiled state: variants of one layer's style finish from one prefix.
  const int layer = g.style_space().index_of("b16.conv1");
  SynthesisState tiled = g.run_until(styles, layer).tile(3);
  std::vector<at::Tensor> variants(styles.size());
  for (size_t i = static_cast<size_t>(layer); i < styles.size(); ++i)
    variants[i] = styles[i].repeat({3, 1});
  variants[layer].select(0, 4).add_(1.0);  // variant 2 of sample 0
  at::Tensor out = g.run_from(tiled, variants, layer);
  // Not bit-exact: oneDNN may pick other kernels for another batch size.
  EXPECT_LE(max_diff(out.narrow(0, 0, 2), full), 1e-5);
  EXPECT_GT(max_diff(out.narrow(0, 4, 1), full.narrow(0, 0, 1)), 1e-4);
  EXPECT_LE(max_diff(out.narrow(0, 5, 1), full.narrow(0, 1, 1)), 1e-5);
}

TEST(Generator, SaveLoadRoundTrip) {
  test::TempDir dir;
  Generator g = tiny_generator(3);
  EXPECT_TRUE(g.fingerprint().empty());
  g.save(dir.file("g.h5"));
  EXPECT_EQ(g.fingerprint().size(), 64u);
  Generator h = Generator::load(dir.file("g.h5"));
  EXPECT_EQ(h.fingerprint(), g.fingerprint());
  for (const auto& [key, shape] : expected_weight_shapes(g.config()))
    EXPECT_EQ(max_diff(g.weight(key), h.weight(key)), 0.0) << key;
  at::Tensor ws = g.mapping(at::randn({1, 32}), 0.7);
  EXPECT_EQ(max_diff(g.synthesize_ws(ws), h.synthesize_ws(ws)), 0.0);
  // Same seed, same weights; another seed, other weights.
  EXPECT_EQ(max_diff(Generator::random(tiny_config(), 5).weight("synthesis.b8.conv0.weight"),
                     Generator::random(tiny_config(), 5).weight("synthesis.b8.conv0.weight")),
            0.0);
  EXPECT_GT(max_diff(Generator::random(tiny_config(), 5).weight("synthesis.b8.conv0.weight"),
                     Generator::random(tiny_config(), 6).weight("synthesis.b8.conv0.weight")),
            0.1);
}

TEST(Generator, ConvClampIsHonoured) {
  test::TempDir dir;
  GeneratorConfig c = tiny_config();
  c.conv_clamp = 0.05;
  Generator clamped = Generator::random(c, 2);
  clamped.save(dir.file("c.h5"));
  Generator loaded = Generator::load(dir.file("c.h5"));
  EXPECT_DOUBLE_EQ(loaded.config().conv_clamp, 0.05);
  at::Tensor img = loaded.synthesize_ws(loaded.mapping(at::randn({1, 32})));
  // The final image is a sum of clamped toRGB outputs (each upsampled with gain
  // ≤ 1 per tap sum).
  EXPECT_LE(img.abs().max().item<double>(), 0.05 * 4 + 1e-6);
  Generator free = Generator::random(tiny_config(), 2);
  EXPECT_GT(max_diff(img, free.synthesize_ws(free.mapping(at::randn({1, 32})))), 1e-3);
}

// --- bad input ---------------------------------------------------------------

ErrorCode load_error(const std::string& path, std::string* message = nullptr) {
  try {
    Generator::load(path);
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.code();
  }
  ADD_FAILURE() << "loading " << path << " did not fail";
  return ErrorCode::kInternal;
}

TEST(GeneratorErrors, MissingAndCorruptFiles) {
  test::TempDir dir;
  EXPECT_EQ(load_error(dir.file("absent.h5")), ErrorCode::kNotFound);
  std::ofstream(dir.file("junk.h5")) << "this is not HDF5";
  EXPECT_EQ(load_error(dir.file("junk.h5")), ErrorCode::kCorruptFile);
  // Truncated copy of a real file.
  tiny_generator().save(dir.file("g.h5"));
  std::filesystem::copy_file(dir.file("g.h5"), dir.file("cut.h5"));
  std::filesystem::resize_file(dir.file("cut.h5"),
                               std::filesystem::file_size(dir.file("g.h5")) / 3);
  EXPECT_THROW(Generator::load(dir.file("cut.h5")), Error);
}

TEST(GeneratorErrors, MissingOrMisShapedWeightIsNamed) {
  test::TempDir dir;
  tiny_generator().save(dir.file("g.h5"));
  std::filesystem::copy_file(dir.file("g.h5"), dir.file("shape.h5"));
  {
    h5::File f = h5::File::open_rw(dir.file("shape.h5"));
    std::vector<float> wrong(7, 0.f);
    f.write_float("weights/synthesis.b8.conv1.bias", wrong.data(), {7});
  }
  std::string message;
  EXPECT_EQ(load_error(dir.file("shape.h5"), &message), ErrorCode::kShapeMismatch);
  EXPECT_NE(message.find("synthesis.b8.conv1.bias"), std::string::npos) << message;
  EXPECT_NE(message.find("[7]"), std::string::npos) << message;

  // A file whose architecture says 64x64 lacks the b64 weights.
  std::filesystem::copy_file(dir.file("g.h5"), dir.file("arch.h5"));
  {
    h5::File f = h5::File::open_rw(dir.file("arch.h5"));
    f.set_attr("/", "img_resolution", int64_t{64});
  }
  EXPECT_EQ(load_error(dir.file("arch.h5"), &message), ErrorCode::kNotFound);
  EXPECT_NE(message.find("synthesis.b64"), std::string::npos) << message;
}

TEST(GeneratorErrors, WrongLatentShapes) {
  Generator g = tiny_generator();
  EXPECT_THROW(g.mapping(at::randn({2, 31})), Error);
  EXPECT_THROW(g.styles_from_ws(at::randn({2, 5, 32})), Error);
  EXPECT_THROW(g.styles_from_ws(at::randn({2, 33})), Error);
  std::vector<at::Tensor> styles = g.styles_from_ws(at::randn({2, 32}));
  styles[3] = styles[3].narrow(1, 0, 4);
  try {
    g.synthesize(styles);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kShapeMismatch);
    EXPECT_NE(std::string(e.what()).find(g.style_space().layers()[3].name), std::string::npos);
  }
  styles.pop_back();
  EXPECT_THROW(g.synthesize(styles), Error);
}

}  // namespace
}  // namespace feu::stylegan2
