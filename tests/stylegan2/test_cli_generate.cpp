// feu-indexer generate / init-generator, run as a program.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/h5.h"
#include "core/npy.h"
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
    // z without truncation (--psi 1, NVlabs' default) reproduces ws_psi1.
    ASSERT_EQ(run("generate" + G + " --latents " + dir.file("z.h5") + " --psi 1 --out " + dir.file("z1.h5"),
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
  expect_clean_failure(G + " --latents " + dir.file("empty.h5"), out, "no latents");
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

// A random 16² generator with 16-wide z and w, written by the CLI.
void init_toy_generator(const std::string& path) {
  std::string log;
  ASSERT_EQ(run("init-generator --out " + path +
                    " --resolution 16 --z-dim 16 --w-dim 16 --mapping-layers 2 --channel-base 128 --channel-max 16",
                &log),
            0)
      << log;
}

// --psi's default is StyleCLIP's 0.7, as feu edit's (edit::kDefaultPsi);
// --trunc 1 gives NVlabs' untruncated images.
TEST(GenerateCli, DefaultPsiIsFeuEditsAndOneIsUntruncated) {
  test::TempDir dir;
  std::string log;
  ASSERT_NO_FATAL_FAILURE(init_toy_generator(dir.file("g.h5")));
  Generator g = Generator::load(dir.file("g.h5"));
  for (const char* psi : {"", " --trunc 1"}) {
    const std::string out = dir.file(*psi ? "untruncated" : "default");
    ASSERT_EQ(run("generate --network " + dir.file("g.h5") + " --seeds 3" + psi + " --outdir " + out, &log), 0) << log;
    const at::Tensor img = g.synthesize_ws(g.mapping(z_from_seed(3, 16), *psi ? 1.0 : 0.7));
    EXPECT_EQ(image::decode_file(out + "/seed0003.png").rgb,
              image::images_from_tensor(img, image::Quantize::kNvlabs)[0].rgb)
        << "psi" << psi;
  }
  EXPECT_NE(image::decode_file(dir.file("default/seed0003.png")).rgb,
            image::decode_file(dir.file("untruncated/seed0003.png")).rgb);
}

// Deterministic latents exact in float32, the same as the Python writers make.
at::Tensor toy_latents(std::vector<int64_t> shape) {
  return ((at::arange(c10::multiply_integers(shape), at::kFloat).remainder(17) - 8) / 16).view(shape);
}

// A W+ file in each format renders the same images; the output's flat s is in
// S order (not the alphabetical order HDF5 lists styles/ in) and reads back.
TEST(GenerateCli, EveryLatentFormatRendersTheSameImages) {
  test::TempDir dir;
  std::string log;
  ASSERT_NO_FATAL_FAILURE(init_toy_generator(dir.file("g.h5")));
  Generator g = Generator::load(dir.file("g.h5"));
  const StyleSpace& space = g.style_space();
  const std::string G = "generate --generator " + dir.file("g.h5");
  const int64_t num_ws = g.config().num_ws();
  const at::Tensor wplus = toy_latents({2, num_ws, 16});
  {
    h5::File f = h5::File::create(dir.file("wplus.h5"));
    write_tensor(f, "ws", wplus);
  }
  npy::write_float(dir.file("wplus.npy"), wplus.data_ptr<float>(), {2, num_ws, 16});
  std::vector<std::string> inputs = {dir.file("wplus.h5"), dir.file("wplus.npy")};
  // numpy.save and e4e's torch.save(latents), when Debian's python3 has them.
  const std::string python =
      "/usr/bin/python3 -c \"import numpy as np, torch; x = ((np.arange(2 * " + std::to_string(num_ws) +
      " * 16) % 17 - 8) / 16).reshape(2, " + std::to_string(num_ws) + ", 16); np.save('" + dir.file("py.npy") +
      "', x); torch.save(torch.from_numpy(x.astype(np.float32)), '" + dir.file("latents.pt") + "')\"";
  if (test::run_command(python, &log) == 0) {
    inputs.push_back(dir.file("py.npy"));
    inputs.push_back(dir.file("latents.pt"));
  } else {
    std::cout << "[ SKIPPED  ] numpy/torch.save writers: /usr/bin/python3 lacks numpy or torch: " << log << "\n";
  }
  at::Tensor reference;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string out = dir.file("out" + std::to_string(i) + ".h5");
    ASSERT_EQ(run(G + " --latents " + inputs[i] + " --out " + out, &log), 0) << log;
    EXPECT_NE(log.find("from wplus latents"), std::string::npos) << log;
    const at::Tensor img = read_tensor(h5::File::open_read(out), "img");
    if (i == 0) reference = img;
    else EXPECT_EQ(max_diff(img, reference), 0.0) << inputs[i];
  }

  // The output: ws and s with their kinds, s in S order, styles/ listed alphabetically.
  h5::File out = h5::File::open_read(dir.file("out0.h5"));
  EXPECT_EQ(out.attr_string("/", "kind"), "wplus");
  EXPECT_EQ(out.attr_string("ws", "kind"), "wplus");
  EXPECT_EQ(out.attr_string("s", "kind"), "s");
  std::string order;
  for (const auto& layer : space.layers()) order += (order.empty() ? "" : ",") + layer.name;
  EXPECT_EQ(out.attr_string("s", "layer_names"), order);
  EXPECT_EQ(out.shape("s"), (h5::Shape{2, space.total_channels()}));
  const at::Tensor styles = space.flatten(g.styles_from_ws(wplus));
  EXPECT_LE(max_diff(read_tensor(out, "s"), styles), 1e-6);
  std::vector<std::string> listed = out.list("styles");
  EXPECT_EQ(listed.front(), "b16.conv0") << "HDF5 lists styles/ alphabetically, not in S order";
  // Read back as S it renders the same images.
  ASSERT_EQ(run(G + " --latents " + dir.file("out0.h5") + " --latent-kind s --out " + dir.file("again.h5"), &log),
            0)
      << log;
  EXPECT_LE(max_diff(read_tensor(h5::File::open_read(dir.file("again.h5")), "img"), reference), 1e-5);

  // The trap refused: s concatenated from styles/ in the listed order.
  {
    h5::File f = h5::File::create(dir.file("alphabetical.h5"));
    std::vector<at::Tensor> layers;
    for (const std::string& name : listed) {
      layers.push_back(read_tensor(out, "styles/" + name));
      write_tensor(f, "styles/" + name, layers.back());
    }
    write_tensor(f, "s", at::cat(layers, 1));
  }
  ASSERT_EQ(run(G + " --latents " + dir.file("alphabetical.h5") + " --out " + dir.file("x.h5"), &log), 2);
  EXPECT_NE(log.find("styles/ and s disagree"), std::string::npos) << log;

  // [N, w_dim] is z or w: the flag decides, and z maps like a z dataset.
  const at::Tensor z = toy_latents({2, 16});
  npy::write_float(dir.file("z.npy"), z.data_ptr<float>(), {2, 16});
  ASSERT_EQ(run(G + " --latents " + dir.file("z.npy") + " --out " + dir.file("x.h5"), &log), 2);
  EXPECT_NE(log.find("--latent-kind z|w"), std::string::npos) << log;
  {
    h5::File f = h5::File::create(dir.file("z.h5"));
    write_tensor(f, "z", z);
  }
  ASSERT_EQ(run(G + " --latents " + dir.file("z.npy") + " --latent-kind z --out " + dir.file("z_npy.h5"), &log), 0)
      << log;
  ASSERT_EQ(run(G + " --latents " + dir.file("z.h5") + " --out " + dir.file("z_h5.h5"), &log), 0) << log;
  EXPECT_EQ(max_diff(read_tensor(h5::File::open_read(dir.file("z_npy.h5")), "img"),
                     read_tensor(h5::File::open_read(dir.file("z_h5.h5")), "img")),
            0.0);
  EXPECT_DOUBLE_EQ(h5::File::open_read(dir.file("z_h5.h5")).attr_double("/", "psi"), 0.7);
}

}  // namespace
}  // namespace feu::stylegan2
