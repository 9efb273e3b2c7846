// feu-indexer generate / init-generator, run as a program.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/h5.h"
#include "image/codec.h"
#include "image/tensor_image.h"
#include "stylegan2/generator.h"
#include "stylegan2/seed.h"
#include "tensor/tensor_h5.h"
#include "test_support.h"

namespace feu::stylegan2 {
namespace {

std::string indexer() { return test::program("feu-indexer"); }

double max_diff(const at::Tensor& a, const at::Tensor& b) {
  EXPECT_EQ(a.sizes(), b.sizes());
  if (a.sizes() != b.sizes()) return 1e30;
  return (a - b).abs().max().item<double>();
}

int run(const std::string& args, std::string* output = nullptr) {
  std::string out;
  int status = test::run_command(indexer() + " " + args, &out);
  if (output) *output = out;
  return status;
}

// Copies datasets/groups of the fixture under new names into a latents file.
void write_latents(const std::string& path, const h5::File& fixture, const std::string& from,
                   const std::string& to, const StyleSpace& space) {
  h5::File f = h5::File::create(path);
  if (fixture.is_group(from)) {
    for (const auto& layer : space.layers())
      write_tensor(f, to + "/" + layer.name, read_tensor(fixture, from + "/" + layer.name));
  } else {
    write_tensor(f, to, read_tensor(fixture, from));
  }
}

// `full`: also the untruncated, ws and W+ inputs (each run costs a program
// start).
void check_cli_parity(const std::string& fixture_path, bool full) {
  test::TempDir dir;
  Generator g = Generator::load(fixture_path);
  const StyleSpace& space = g.style_space();
  h5::File fx = h5::File::open_read(fixture_path);
  const std::string G = " --generator " + fixture_path;
  std::string log;

  // z with truncation: ws, every style layer, the const-noise image.
  write_latents(dir.file("z.h5"), fx, "z", "z", space);
  char psi[32];
  std::snprintf(psi, sizeof(psi), "%.17g", fx.attr_double("/", "psi"));
  ASSERT_EQ(run("generate" + G + " --latents " + dir.file("z.h5") + " --out " +
                    dir.file("z_out.h5") + " --psi " + psi + " --device cpu",
                &log),
            0)
      << log;
  {
    h5::File out = h5::File::open_read(dir.file("z_out.h5"));
    EXPECT_LE(max_diff(read_tensor(out, "ws"), read_tensor(fx, "ws")), 1e-4);
    for (const auto& layer : space.layers())
      EXPECT_LE(max_diff(read_tensor(out, "styles/" + layer.name),
                         read_tensor(fx, "styles/" + layer.name)),
                1e-4)
          << layer.name;
    EXPECT_LE(max_diff(read_tensor(out, "img"), read_tensor(fx, "img_const")), 1e-3);
  }
  if (full) {
    // z without truncation reproduces ws_psi1.
    ASSERT_EQ(run("generate" + G + " --latents " + dir.file("z.h5") + " --out " + dir.file("z1.h5"),
                  &log),
              0)
        << log;
    EXPECT_LE(max_diff(read_tensor(h5::File::open_read(dir.file("z1.h5")), "ws"),
                       read_tensor(fx, "ws_psi1")),
              1e-4);

    // ws, noise none.
    write_latents(dir.file("ws.h5"), fx, "ws", "ws", space);
    ASSERT_EQ(run("generate" + G + " --latents " + dir.file("ws.h5") + " --out " +
                      dir.file("ws_out.h5") + " --noise-mode none --batch 2",
                  &log),
              0)
        << log;
    EXPECT_LE(max_diff(read_tensor(h5::File::open_read(dir.file("ws_out.h5")), "img"),
                       read_tensor(fx, "img_none")),
              1e-3);

    // W+.
    write_latents(dir.file("wplus.h5"), fx, "wplus", "ws", space);
    ASSERT_EQ(run("generate" + G + " --latents " + dir.file("wplus.h5") + " --out " +
                      dir.file("wplus_out.h5"),
                  &log),
              0)
        << log;
    {
      h5::File out = h5::File::open_read(dir.file("wplus_out.h5"));
      for (const auto& layer : space.layers())
        EXPECT_LE(max_diff(read_tensor(out, "styles/" + layer.name),
                           read_tensor(fx, "styles_wplus/" + layer.name)),
                  1e-4);
      EXPECT_LE(max_diff(read_tensor(out, "img"), read_tensor(fx, "img_wplus")), 1e-3);
    }
  }
  // S input.
  write_latents(dir.file("s.h5"), fx, "styles_edit", "styles", space);
  ASSERT_EQ(
      run("generate" + G + " --latents " + dir.file("s.h5") + " --out " + dir.file("s_out.h5"),
          &log),
      0)
      << log;
  {
    h5::File out = h5::File::open_read(dir.file("s_out.h5"));
    EXPECT_FALSE(out.has("ws"));
    EXPECT_LE(max_diff(read_tensor(out, "img"), read_tensor(fx, "img_sedit")), 1e-3);
  }
}

TEST(GenerateCli, ReproducesParityFixture64) {
  FEU_SHARED_FILE_OR_SKIP(path, "parity/stylegan2_64.h5");
  check_cli_parity(path, true);
}

TEST(GenerateCli, ReproducesParityFixture256) {
  FEU_SHARED_FILE_OR_SKIP(path, "parity/stylegan2_256.h5");
  check_cli_parity(path, false);
}

TEST(GenerateCli, InitGeneratorAndSeedsToPng) {
  test::TempDir dir;
  std::string log;
  ASSERT_EQ(run("init-generator --out " + dir.file("g.h5") +
                    " --resolution 16 --z-dim 16 --w-dim 16 --mapping-layers 2 "
                    "--channel-base 128 --channel-max 16 --seed 3",
                &log),
            0)
      << log;
  Generator g = Generator::load(dir.file("g.h5"));
  EXPECT_EQ(g.config().img_resolution, 16);
  EXPECT_EQ(g.config().z_dim, 16);
  EXPECT_EQ(g.config().mapping_layers, 2);
  EXPECT_EQ(g.config().channels_at(16), 8);
  // Same seed, same weights as the library.
  EXPECT_EQ(max_diff(g.weight("synthesis.b8.conv1.weight"),
                     Generator::random(g.config(), 3).weight("synthesis.b8.conv1.weight")),
            0.0);

  ASSERT_EQ(run("generate --generator " + dir.file("g.h5") + " --seeds 1,2,5-7 --psi 0.7 --out " +
                    dir.file("png"),
                &log),
            0)
      << log;
  for (int seed : {1, 2, 5, 6, 7}) {
    char name[32];
    std::snprintf(name, sizeof(name), "seed%04d.png", seed);
    image::Image decoded = image::decode_file(dir.file("png") + "/" + name);
    at::Tensor img = g.synthesize_ws(g.mapping(z_from_seed(seed, 16), 0.7));
    image::Image expected = image::images_from_tensor(img, image::Quantize::kNvlabs)[0];
    EXPECT_EQ(decoded.width, 16);
    EXPECT_EQ(decoded.rgb, expected.rgb) << name;
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("png") + "/seed0003.png"));

  // NVlabs' generate.py spellings give the same images.
  ASSERT_EQ(run("generate --network " + dir.file("g.h5") + " --seeds 1,2,5-7 --trunc 0.7 --outdir " +
                    dir.file("nvlabs"),
                &log),
            0)
      << log;
  for (const char* name : {"seed0001.png", "seed0007.png"})
    EXPECT_EQ(image::decode_file(dir.file("nvlabs") + "/" + name).rgb,
              image::decode_file(dir.file("png") + "/" + name).rgb)
        << name;
}

// Bad input: one error line naming the problem, non-zero exit, no output.
void expect_clean_failure(const std::string& args, const std::string& out_path,
                          const std::string& must_mention) {
  std::string log;
  int status = run(args, &log);
  EXPECT_NE(status, 0) << args;
  EXPECT_NE(log.find("error"), std::string::npos) << log;
  EXPECT_NE(log.find(must_mention), std::string::npos)
      << "expected '" << must_mention << "' in: " << log;
  // One line of output.
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  EXPECT_FALSE(std::filesystem::exists(out_path)) << out_path;
  const auto parent = std::filesystem::path(out_path).parent_path();
  for (const auto& entry : std::filesystem::directory_iterator(parent))
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
}

TEST(GenerateCli, BadInputFailsCleanly) {
  test::TempDir dir;
  const std::string out = dir.file("out.h5");
  std::string log;
  ASSERT_EQ(run("init-generator --out " + dir.file("g.h5") +
                    " --resolution 8 --z-dim 8 --w-dim 8 --mapping-layers 1 "
                    "--channel-base 64 --channel-max 8",
                &log),
            0)
      << log;
  Generator g = Generator::load(dir.file("g.h5"));
  const std::string G = "generate --generator " + dir.file("g.h5") + " --out " + out;

  // Missing and corrupt generator / latents files.
  expect_clean_failure(
      "generate --generator " + dir.file("absent.h5") + " --latents x.h5 --out " + out, out,
      "absent.h5");
  std::ofstream(dir.file("junk.h5")) << "not hdf5";
  expect_clean_failure(
      "generate --generator " + dir.file("junk.h5") + " --latents x.h5 --out " + out, out,
      "junk.h5");
  // An unconverted NVlabs snapshot: the error names the converter.
  std::ofstream(dir.file("stylegan2-ffhq-config-f.pkl")) << "\x80\x04pickled";
  expect_clean_failure("generate --generator " + dir.file("stylegan2-ffhq-config-f.pkl") + " --seeds 1 --out " + out,
                       out, "scripts/convert_stylegan2.py");
  expect_clean_failure(G + " --latents " + dir.file("absent_latents.h5"), out, "absent_latents.h5");

  // No known key; wrong latent dims.
  {
    h5::File f = h5::File::create(dir.file("empty.h5"));
    write_tensor(f, "other", at::zeros({2, 8}));
  }
  expect_clean_failure(G + " --latents " + dir.file("empty.h5"), out, "expected exactly one of");
  {
    h5::File f = h5::File::create(dir.file("z7.h5"));
    write_tensor(f, "z", at::zeros({2, 7}));
  }
  expect_clean_failure(G + " --latents " + dir.file("z7.h5"), out, "[2, 7]");

  // Styles: unknown layer, missing layer, mis-shaped layer.
  std::vector<at::Tensor> styles = g.styles_from_ws(at::zeros({2, 8}));
  auto write_styles = [&](const std::string& path, const std::string& skip,
                          const std::string& extra, const std::string& bad) {
    h5::File f = h5::File::create(path);
    for (size_t i = 0; i < styles.size(); ++i) {
      const std::string& name = g.style_space().layers()[i].name;
      if (name == skip) continue;
      write_tensor(f, "styles/" + name, name == bad ? styles[i].narrow(1, 0, 1) : styles[i]);
    }
    if (!extra.empty()) write_tensor(f, "styles/" + extra, at::zeros({2, 8}));
  };
  write_styles(dir.file("s_unknown.h5"), "", "b8.conv7", "");
  expect_clean_failure(G + " --latents " + dir.file("s_unknown.h5"), out, "b8.conv7");
  write_styles(dir.file("s_missing.h5"), "b8.torgb", "", "");
  expect_clean_failure(G + " --latents " + dir.file("s_missing.h5"), out, "styles/b8.torgb");
  write_styles(dir.file("s_shape.h5"), "", "", "b8.conv0");
  expect_clean_failure(G + " --latents " + dir.file("s_shape.h5"), out, "styles/b8.conv0");

  // Bad options.
  write_styles(dir.file("s_ok.h5"), "", "", "");
  expect_clean_failure(G + " --latents " + dir.file("s_ok.h5") + " --psi 0.5", out, "--psi");
  expect_clean_failure(
      "generate --generator " + dir.file("g.h5") + " --seeds 1,x --out " + dir.file("pngs"),
      dir.file("pngs"), "'x'");
  // The good file works.
  ASSERT_EQ(run(G + " --latents " + dir.file("s_ok.h5"), &log), 0) << log;
  EXPECT_TRUE(std::filesystem::exists(out));
}

}  // namespace
}  // namespace feu::stylegan2
