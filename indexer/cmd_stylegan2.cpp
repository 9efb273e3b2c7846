// feu-indexer commands of the StyleGAN2 module: generate, init-generator.
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "commands.h"
#include "core/cli.h"
#include "core/config.h"
#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "edit/engine.h"
#include "edit/options.h"
#include "image/codec.h"
#include "image/tensor_image.h"
#include "stylegan2/generator.h"
#include "stylegan2/seed.h"
#include "tensor/latent_file.h"
#include "tensor/tensor_h5.h"

namespace feu::indexer {

namespace {

using stylegan2::Generator;
using stylegan2::NoiseMode;

struct GenerateOptions {
  std::string generator;
  std::string config;
  std::string seeds;
  std::string latents;
  std::string latent_kind;
  std::string out;
  // run_generate resolves it: --psi, else the config's edit.psi, else this.
  double psi = edit::kDefaultPsi;
  bool psi_given = false;
  int cutoff = -1;
  std::string noise_mode = "const";
  std::string device = "auto";
  int64_t batch = 4;
};

// Rows [begin, begin+count) of every per-layer style tensor.
std::vector<at::Tensor> slice_styles(const std::vector<at::Tensor>& styles, int64_t begin,
                                     int64_t count) {
  std::vector<at::Tensor> out;
  for (const at::Tensor& s : styles) out.push_back(s.narrow(0, begin, count));
  return out;
}

latents::Shapes latent_shapes(const Generator& g) {
  latents::Shapes shapes;
  shapes.z_dim = g.config().z_dim;
  shapes.w_dim = g.config().w_dim;
  shapes.num_ws = g.config().num_ws();
  for (const auto& layer : g.style_space().layers()) {
    shapes.layer_names.push_back(layer.name);
    shapes.layer_channels.push_back(layer.channels);
  }
  return shapes;
}

void generate_seeds(const GenerateOptions& opt, const Generator& g, NoiseMode noise) {
  const std::vector<int64_t> seeds = parse_int_list(opt.seeds, "--seeds");
  // Validate every seed before writing anything.
  std::vector<at::Tensor> zs;
  for (int64_t seed : seeds) zs.push_back(stylegan2::z_from_seed(seed, g.config().z_dim));
  std::filesystem::create_directories(opt.out);
  for (size_t i = 0; i < seeds.size(); ++i) {
    at::Tensor img = g.synthesize_ws(g.mapping(zs[i], opt.psi, opt.cutoff), noise);
    std::vector<image::Image> images = image::images_from_tensor(img, image::Quantize::kNvlabs);
    char name[32];
    std::snprintf(name, sizeof(name), "seed%04lld.png", static_cast<long long>(seeds[i]));
    const std::string path = (std::filesystem::path(opt.out) / name).string();
    image::write_image(path, images[0]);
    std::cout << path << std::endl;
  }
}

void generate_latents(const GenerateOptions& opt, const Generator& g, NoiseMode noise) {
  const stylegan2::StyleSpace& space = g.style_space();
  const stylegan2::GeneratorConfig& c = g.config();
  const latents::Shapes shapes = latent_shapes(g);
  std::optional<latents::Kind> asked;
  if (!opt.latent_kind.empty()) asked = latents::parse_kind(opt.latent_kind, "--latent-kind");
  latents::Latents in = latents::read(opt.latents, shapes, asked);
  check(in.kind == latents::Kind::kZ || !opt.psi_given, ErrorCode::kInvalidArgument,
        "--psi applies to z latents only (" + opt.latents + " holds " +
            latents::kind_name(in.kind) + ")");
  const int64_t n = in.count;
  const at::Tensor values = at::from_blob(in.values.data(), {n, shapes.width(in.kind)}, at::kFloat)
                                .clone()
                                .to(g.device());

  at::Tensor ws;
  std::vector<at::Tensor> styles;
  switch (in.kind) {
    case latents::Kind::kZ: ws = g.mapping(values, opt.psi, opt.cutoff); break;
    case latents::Kind::kW: ws = values.unsqueeze(1).repeat({1, c.num_ws(), 1}); break;
    case latents::Kind::kWPlus: ws = values.view({n, c.num_ws(), c.w_dim}); break;
    case latents::Kind::kS:
      for (const at::Tensor& layer : space.split(values)) styles.push_back(layer.contiguous());
      break;
  }
  if (ws.defined()) styles = g.styles_from_ws(ws);

  std::vector<at::Tensor> images;
  for (int64_t begin = 0; begin < n; begin += opt.batch) {
    const int64_t count = std::min(opt.batch, n - begin);
    images.push_back(g.synthesize(slice_styles(styles, begin, count), noise).to(at::kCPU));
  }
  const at::Tensor flat = space.flatten(styles).to(at::kCPU).contiguous();
  AtomicFile out(opt.out);
  {
    h5::File f = h5::File::create(out.temp_path());
    if (ws.defined()) {
      write_tensor(f, "ws", ws);
      f.set_attr("ws", "kind", "wplus");
    }
    latents::write_styles(f, shapes, flat.data_ptr<float>(), n);
    write_tensor(f, "img", at::cat(images, 0));
    // Read back as latents, the file gives its W+ (from S input, its S): the same images.
    f.set_attr("/", "kind", ws.defined() ? "wplus" : "s");
    f.set_attr("/", "input_kind", latents::kind_name(in.kind));
    f.set_attr("/", "generator_sha256", g.fingerprint());
    f.set_attr("/", "noise_mode", opt.noise_mode);
    if (in.kind == latents::Kind::kZ) f.set_attr("/", "psi", opt.psi);
    f.close();
  }
  out.commit();
  std::cout << opt.out << ": " << n << " images from " << latents::kind_name(in.kind)
            << " latents (" << in.format << ")" << std::endl;
}

void run_generate(GenerateOptions opt) {
  check(opt.seeds.empty() != opt.latents.empty(), ErrorCode::kInvalidArgument,
        "generate needs exactly one of --seeds LIST or --latents FILE");
  check(opt.batch > 0, ErrorCode::kInvalidArgument, "--batch must be positive");
  if (!opt.config.empty()) {
    // The config feu edit reads: its generator and its ψ, so that a seed shows the same face.
    ConfigMap root = ConfigMap::load_file(opt.config);
    root.has("daemon");  // the daemon's section: not needed here
    const edit::EngineConfig config = edit::EngineConfig::from_config(root);
    if (opt.generator.empty()) opt.generator = config.generator_path;
    if (!opt.psi_given) opt.psi = config.edit.psi;
  }
  check(!opt.generator.empty(), ErrorCode::kInvalidArgument,
        "generate needs --generator WEIGHTS.h5 (or --config FILE naming models.generator)");
  const NoiseMode noise = stylegan2::parse_noise_mode(opt.noise_mode);
  const at::Device device = resolve_device(opt.device);
  Generator g = Generator::load(opt.generator, device);
  if (!opt.seeds.empty())
    generate_seeds(opt, g, noise);
  else
    generate_latents(opt, g, noise);
}

}  // namespace

void register_stylegan2_commands(CLI::App& app) {
  auto opt = std::make_shared<GenerateOptions>();
  CLI::App* gen = app.add_subcommand("generate",
                                     "Render images with a StyleGAN2 generator "
                                     "from seeds (PNGs) or latent files (HDF5 out)");
  gen->add_option("--generator,--network", opt->generator,
                  "generator weights (.h5; --network as NVlabs names it; default: --config's "
                  "models.generator)");
  gen->add_option(
      "--config", opt->config,
      "the config feu edit reads: its generator and edit.psi (a seed then shows feu edit's face)");
  gen->add_option("--seeds", opt->seeds, "seeds, e.g. 1,2,5-7 (z = numpy RandomState(seed).randn)");
  gen->add_option("--latents", opt->latents,
                  "latents: .h5 (z, w, ws, wplus, s or styles/<layer>; kind attribute), .npy "
                  "(float32/64) or e4e's latents.pt; writes ws, s (S order) and styles/<layer>");
  gen->add_option("--latent-kind", opt->latent_kind,
                  "z, w, wplus or s: what --latents holds where its shape leaves it open "
                  "([N, w_dim]: z or w)")
      ->check(CLI::IsMember({"z", "w", "wplus", "s"}));
  gen->add_option("--out,--outdir", opt->out, "output directory (--seeds) or HDF5 file (--latents)")
      ->required();
  CLI::Option* psi = gen->add_option("--psi,--trunc", opt->psi,
                                     "truncation psi for seeds and z (default: --config's "
                                     "edit.psi, else 0.7 as StyleCLIP and feu edit; "
                                     "1 = untruncated, NVlabs generate.py's default)");
  gen->add_option("--trunc-cutoff", opt->cutoff, "truncate only the first N ws (default all)");
  gen->add_option("--noise-mode", opt->noise_mode, "const | none | random")->capture_default_str();
  gen->add_option("--device", opt->device, "cpu | cuda | cuda:N | auto")->capture_default_str();
  gen->add_option("--batch", opt->batch, "images per synthesis batch")->capture_default_str();
  gen->callback([opt, psi] {
    opt->psi_given = psi->count() > 0;
    run_generate(*opt);
  });

  auto init = std::make_shared<stylegan2::GeneratorConfig>();
  init->img_resolution = 64;
  init->z_dim = init->w_dim = 128;
  init->mapping_layers = 4;
  init->channel_base = 4096;
  init->channel_max = 128;
  auto init_out = std::make_shared<std::string>();
  auto init_seed = std::make_shared<int64_t>(0);
  CLI::App* ig = app.add_subcommand("init-generator",
                                    "Write a StyleGAN2 generator with random "
                                    "weights (NVlabs initialization)");
  ig->add_option("--out", *init_out, "output weights (.h5)")->required();
  ig->add_option("--resolution", init->img_resolution, "image side (power of two)")
      ->capture_default_str();
  ig->add_option("--z-dim", init->z_dim, "z dimension")->capture_default_str();
  ig->add_option("--w-dim", init->w_dim, "w dimension")->capture_default_str();
  ig->add_option("--mapping-layers", init->mapping_layers, "mapping FC layers")
      ->capture_default_str();
  ig->add_option("--channel-base", init->channel_base, "channels = min(base / res, max)")
      ->capture_default_str();
  ig->add_option("--channel-max", init->channel_max, "channel cap")->capture_default_str();
  ig->add_option("--conv-clamp", init->conv_clamp, "conv clamp (< 0: none)")->capture_default_str();
  ig->add_option("--seed", *init_seed, "random seed")->capture_default_str();
  ig->callback([init, init_out, init_seed] {
    check(*init_seed >= 0, ErrorCode::kInvalidArgument, "--seed must be >= 0");
    Generator g = Generator::random(*init, static_cast<uint64_t>(*init_seed), at::kCPU);
    g.save(*init_out);
    std::cout << *init_out << ": " << g.config().img_resolution << "x" << g.config().img_resolution
              << " generator, " << g.style_space().num_layers() << " style layers, "
              << g.style_space().total_channels() << " style channels, sha256 " << g.fingerprint()
              << std::endl;
  });
}

}  // namespace feu::indexer
