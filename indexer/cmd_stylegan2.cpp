// feu-indexer commands of the StyleGAN2 module: generate, init-generator.
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "commands.h"
#include "core/cli.h"
#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "image/codec.h"
#include "image/tensor_image.h"
#include "stylegan2/generator.h"
#include "stylegan2/seed.h"
#include "tensor/tensor_h5.h"

namespace feu::indexer {

namespace {

using stylegan2::Generator;
using stylegan2::NoiseMode;

struct GenerateOptions {
  std::string generator;
  std::string seeds;
  std::string latents;
  std::string out;
  double psi = 1.0;
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
  h5::File in = h5::File::open_read(opt.latents);
  std::vector<std::string> present;
  for (const char* key : {"z", "ws", "styles"})
    if (in.has(key)) present.push_back(key);
  check(present.size() == 1, ErrorCode::kInvalidArgument,
        opt.latents + ": expected exactly one of 'z' [N," + std::to_string(c.z_dim) +
            "], 'ws' [N," + std::to_string(c.num_ws()) + "," + std::to_string(c.w_dim) +
            "] or [N," + std::to_string(c.w_dim) + "], or group 'styles/<layer>'; found " +
            (present.empty() ? std::string("none") : std::to_string(present.size())));
  const std::string kind = present[0];
  check(kind == "z" || !opt.psi_given, ErrorCode::kInvalidArgument,
        "--psi applies to z latents only (" + opt.latents + " holds '" + kind + "')");

  at::Tensor ws;
  std::vector<at::Tensor> styles;
  int64_t n = 0;
  if (kind == "z") {
    at::Tensor z = read_tensor(in, "z");
    check(z.dim() == 2 && z.size(1) == c.z_dim, ErrorCode::kShapeMismatch,
          opt.latents + ": 'z' has shape " + c10::str(z.sizes()) + ", expected [N, " +
              std::to_string(c.z_dim) + "]");
    ws = g.mapping(z, opt.psi, opt.cutoff);
  } else if (kind == "ws") {
    ws = read_tensor(in, "ws");
    const bool ok = (ws.dim() == 3 && ws.size(1) == c.num_ws() && ws.size(2) == c.w_dim) ||
                    (ws.dim() == 2 && ws.size(1) == c.w_dim);
    check(ok, ErrorCode::kShapeMismatch,
          opt.latents + ": 'ws' has shape " + c10::str(ws.sizes()) + ", expected [N, " +
              std::to_string(c.num_ws()) + ", " + std::to_string(c.w_dim) + "] or [N, " +
              std::to_string(c.w_dim) + "]");
    if (ws.dim() == 2) ws = ws.unsqueeze(1).repeat({1, c.num_ws(), 1});
  } else {
    check(in.is_group("styles"), ErrorCode::kInvalidArgument,
          opt.latents + ": 'styles' must be a group of per-layer datasets styles/<layer>");
    for (const std::string& name : in.list("styles"))
      space.index_of(name);  // unknown layer -> error
    for (const auto& layer : space.layers()) {
      const std::string key = "styles/" + layer.name;
      check(in.has(key), ErrorCode::kNotFound,
            opt.latents + ": missing dataset '" + key + "' [N, " + std::to_string(layer.channels) +
                "]");
      at::Tensor s = read_tensor(in, key);
      check(s.dim() == 2 && s.size(1) == layer.channels, ErrorCode::kShapeMismatch,
            opt.latents + ": '" + key + "' has shape " + c10::str(s.sizes()) + ", expected [N, " +
                std::to_string(layer.channels) + "]");
      styles.push_back(s);
    }
    space.check_styles(styles);
  }
  if (ws.defined()) styles = g.styles_from_ws(ws);
  n = styles[0].size(0);
  check(n > 0, ErrorCode::kInvalidArgument, opt.latents + ": no latents (N = 0)");

  std::vector<at::Tensor> images;
  for (int64_t begin = 0; begin < n; begin += opt.batch) {
    const int64_t count = std::min(opt.batch, n - begin);
    images.push_back(g.synthesize(slice_styles(styles, begin, count), noise).to(at::kCPU));
  }
  AtomicFile out(opt.out);
  {
    h5::File f = h5::File::create(out.temp_path());
    if (ws.defined()) write_tensor(f, "ws", ws);
    for (size_t i = 0; i < styles.size(); ++i)
      write_tensor(f, "styles/" + space.layers()[i].name, styles[i]);
    write_tensor(f, "img", at::cat(images, 0));
    f.set_attr("/", "generator_sha256", g.fingerprint());
    f.set_attr("/", "noise_mode", opt.noise_mode);
    if (kind == "z") f.set_attr("/", "psi", opt.psi);
    f.close();
  }
  out.commit();
  std::cout << opt.out << ": " << n << " images" << std::endl;
}

void run_generate(const GenerateOptions& opt) {
  check(opt.seeds.empty() != opt.latents.empty(), ErrorCode::kInvalidArgument,
        "generate needs exactly one of --seeds LIST or --latents IN.h5");
  check(opt.batch > 0, ErrorCode::kInvalidArgument, "--batch must be positive");
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
                                     "from seeds (PNGs) or latents (HDF5)");
  gen->add_option("--generator,--network", opt->generator, "generator weights (.h5; --network as NVlabs names it)")
      ->required();
  gen->add_option("--seeds", opt->seeds, "seeds, e.g. 1,2,5-7 (z = numpy RandomState(seed).randn)");
  gen->add_option("--latents", opt->latents,
                  "HDF5 with z [N,z_dim], ws [N,num_ws,w_dim]|[N,w_dim] or styles/<layer>");
  gen->add_option("--out,--outdir", opt->out, "output directory (--seeds) or HDF5 file (--latents)")
      ->required();
  CLI::Option* psi = gen->add_option("--psi,--trunc", opt->psi,
                                     "truncation psi (z/seeds only; default 1 = off, as NVlabs generate.py; "
                                     "feu edit's default is the config's edit.psi, 0.7 as StyleCLIP)");
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
