// `feu-indexer demo-assets`: the embedded default, end to end, from nothing.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <cctype>
#include <cstdio>
#include <filesystem>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "core/error.h"
#include "core/files.h"
#include "face/e4e.h"
#include "image/codec.h"
#include "image/tensor_image.h"
#include "index/artifacts.h"
#include "index/pipeline.h"
#include "stylegan2/generator.h"
#include "stylegan2/seed.h"

namespace feu::index {
namespace fs = std::filesystem;

namespace {

// Small enough to render hundreds of images and every Δi row in seconds on
// two cores, but with the full StyleGAN2 structure (all S layer kinds).
stylegan2::GeneratorConfig demo_generator_config() {
  stylegan2::GeneratorConfig c;
  c.z_dim = 32;
  c.w_dim = 32;
  c.img_resolution = 64;
  c.mapping_layers = 2;
  c.channel_base = 512;  // 32 channels up to 16², 16 at 32², 8 at 64²
  c.channel_max = 32;
  return c;
}

// A small e4e for the demo's photos: IR-SE50's 24 units at narrow widths,
// one W+ row per style input of the generator.
face::E4eConfig demo_e4e_config(const stylegan2::GeneratorConfig& generator) {
  face::E4eConfig c;
  c.stage_widths = {16, 16, 32, 32};
  c.w_dim = generator.w_dim;
  c.n_styles = static_cast<int>(generator.num_ws());
  return c;
}

void render_corpus(const stylegan2::Generator& generator, const std::string& dir, int64_t count) {
  c10::InferenceMode inference;  // no autograd bookkeeping
  const int64_t batch = 32;
  for (int64_t begin = 0; begin < count; begin += batch) {
    const int64_t n = std::min(batch, count - begin);
    std::vector<at::Tensor> zs;
    for (int64_t i = begin; i < begin + n; ++i) zs.push_back(stylegan2::z_from_seed(i, generator.config().z_dim));
    at::Tensor img = generator.synthesize_ws(generator.mapping(at::cat(zs), 0.7));
    std::vector<image::Image> images = image::images_from_tensor(img, image::Quantize::kNvlabs);
    for (int64_t i = 0; i < n; ++i) {
      // FFHQ's layout: 1000 images per numbered folder (here 100, to exercise recursion).
      char sub[32], name[32];
      std::snprintf(sub, sizeof sub, "%05ld", long((begin + i) / 100 * 100));
      std::snprintf(name, sizeof name, "%05ld.png", long(begin + i));
      fs::create_directories(dir + "/" + sub);
      image::write_image(dir + "/" + sub + "/" + name, images[i]);
    }
  }
}

// [rows, dim] independent random unit vectors (Gaussian rows, normalized):
// isotropic, like nothing trained, but sized and normalized as the real thing.
std::vector<float> random_unit_rows(int64_t rows, int64_t dim, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor x = at::randn({rows, dim}, gen, at::kFloat);
  x = (x / x.norm(2, 1, true)).contiguous();
  return std::vector<float>(x.data_ptr<float>(), x.data_ptr<float>() + rows * dim);
}

// "<prefix><UTC timestamp, digits only>": a fresh version directory name.
std::string version_name(const std::string& prefix) {
  std::string version = prefix;
  for (char ch : utc_timestamp())
    if (std::isalnum(static_cast<unsigned char>(ch))) version += ch;
  return version;
}

// publish, then verify() the version like a daemon does before serving it.
std::string publish_verified(const PublishOptions& options) {
  const std::string published = publish(options);
  VerifyReport report = verify(published);
  check(report.ok(), ErrorCode::kArtifactMismatch,
        published + " failed verification: " + (report.ok() ? std::string() : report.problems.front()));
  return published;
}

// `demo-assets --real-size`: production-sized models, corpus and Δi table
// with random contents, for load benchmarks. Costs minutes, not hours: no
// image is rendered or embedded and no Δi is measured.
std::string build_real_size_assets(const DemoOptions& o, const std::string& root) {
  const std::string models = root + "/models", work = root + "/work";
  fs::create_directories(models);
  fs::create_directories(work + "/corpus");
  auto say = [&](const std::string& text) {
    if (o.progress) std::fprintf(stderr, "demo-assets --real-size: %s\n", text.c_str());
  };

  say("random FFHQ config-f generator (1024x1024) and ViT-B/32 CLIP, demo vocabulary");
  const std::string vocab_path = models + "/vocab.txt.gz";
  clip::Tokenizer::write_demo_vocab(vocab_path);
  const int64_t vocab_size = clip::Tokenizer::load(vocab_path).vocab_size();
  clip::ClipConfig clip_config = clip::ClipConfig::vit_b_32();
  check(clip_config.vocab_size >= vocab_size, ErrorCode::kInvalidArgument,
        "ViT-B/32 vocab_size is smaller than the demo vocabulary");
  const std::string generator_path = models + "/generator.h5", clip_path = models + "/clip.h5";
  stylegan2::Generator::random(stylegan2::GeneratorConfig::config_f(), o.seed, at::kCPU).save(generator_path);
  clip::ClipModel::random(clip_config, o.seed + 1, at::kCPU).save_h5(clip_path);
  say("random e4e at the released widths (267 M parameters)");
  face::E4eEncoder::write_random(face::E4eConfig::ffhq(), o.seed + 2, models + "/e4e.h5");
  const std::string generator_sha = sha256_file(generator_path), clip_sha = sha256_file(clip_path);
  const int64_t dim = clip_config.embed_dim;

  say("corpus index of " + std::to_string(o.images) + " random unit embeddings (no images)");
  std::vector<CorpusEntry> entries(static_cast<size_t>(o.images));
  for (int64_t i = 0; i < o.images; ++i) {
    char path[48];  // FFHQ's layout: 1000 images per numbered folder
    std::snprintf(path, sizeof path, "%05ld/%05ld.png", long(i / 1000 * 1000), long(i));
    entries[i].id = i;
    entries[i].path = path;
  }
  CorpusProvenance provenance;
  provenance.clip_sha256 = clip_sha;
  provenance.preprocessing = "none: random unit embeddings (demo-assets --real-size, benchmarks only)";
  provenance.corpus_root = "(synthetic, no images)";
  provenance.created = utc_timestamp();
  provenance.tool_version = tool_version();
  provenance.faiss_version = faiss_version();
  provenance.torch_version = torch_version();
  provenance.next_id = o.images;
  const std::string corpus_dir = work + "/corpus";
  CorpusIndex::build(std::move(entries), random_unit_rows(o.images, dim, o.seed + 2), dim, IndexOptions{},
                     provenance)
      .save(corpus_dir);

  say("stats over " + std::to_string(o.stats_samples) + " z");
  StatsOptions stats_options;
  stats_options.generator_path = generator_path;
  stats_options.out_path = work + "/stats.h5";
  stats_options.device = "cpu";
  stats_options.num_samples = o.stats_samples;
  StyleStats stats = compute_style_stats(stats_options);

  say("random unit directions for StyleCLIP's coverage (conv layers up to 128x128)");
  Directions d;
  d.set_layout(stats.layers, coverage_mask(stats.layers, "128"), dim);
  d.s_mean = stats.s_mean;
  d.s_std = stats.s_std;
  d.fs3 = random_unit_rows(d.covered(), dim, o.seed + 3);
  d.dead.assign(static_cast<size_t>(d.covered()), 0);
  DirectionsInfo& info = d.info;
  info.generator_sha256 = generator_sha;
  info.clip_sha256 = clip_sha;
  info.source = "random (demo-assets --real-size, benchmarks only)";
  info.images_per_channel = 0;
  info.seeds = "none";
  info.psi = stats.psi;
  info.truncation_rule = stats.truncation_rule;
  info.coverage = "128";
  info.stats_info = std::to_string(stats.num_samples) + " samples, seed " + std::to_string(stats.seed);
  info.render = "none (random unit rows)";
  info.tool_version = tool_version();
  info.torch_version = torch_version();
  info.created = utc_timestamp();
  const std::string directions_path = work + "/directions.h5";
  d.save(directions_path);

  say("publish + verify");
  PublishOptions publish_options;
  publish_options.root = root + "/artifacts";
  publish_options.version = version_name("bench-real-");
  publish_options.corpus_dir = corpus_dir;
  publish_options.directions_path = directions_path;
  publish_options.generator_path = generator_path;
  publish_options.clip_path = clip_path;
  // No model copies: 700 MB of weights would be hashed again at every load.
  publish_options.config = {{"demo", true},
                            {"real_size", true},
                            {"random_embeddings_and_directions", true},
                            {"images", o.images},
                            {"stats_samples", o.stats_samples},
                            {"coverage", "128"},
                            {"seed", o.seed}};
  const std::string published = publish_verified(publish_options);
  say("published " + published);
  return published;
}

}  // namespace

std::string build_demo_assets(const DemoOptions& o) {
  check(o.images >= 10, ErrorCode::kInvalidArgument, "--images must be at least 10");
  const std::string root = fs::absolute(o.out_dir).lexically_normal().string();
  if (o.real_size) return build_real_size_assets(o, root);
  const std::string models = root + "/models", corpus_images = root + "/corpus-images", work = root + "/work";
  fs::create_directories(models);
  fs::create_directories(work + "/corpus");
  auto say = [&](const std::string& text) {
    if (o.progress) std::fprintf(stderr, "demo-assets: %s\n", text.c_str());
  };

  say("random generator (64x64), CLIP (small) and e4e (small), demo vocabulary");
  const std::string vocab_path = models + "/vocab.txt.gz";
  clip::Tokenizer::write_demo_vocab(vocab_path);
  const int64_t vocab_size = clip::Tokenizer::load(vocab_path).vocab_size();
  const std::string generator_path = models + "/generator.h5", clip_path = models + "/clip.h5";
  stylegan2::Generator generator = stylegan2::Generator::random(demo_generator_config(), o.seed, at::kCPU);
  generator.save(generator_path);
  clip::ClipModel::random(clip::ClipConfig::small(vocab_size), o.seed + 1, at::kCPU).save_h5(clip_path);
  face::E4eEncoder::write_random(demo_e4e_config(generator.config()), o.seed + 2, models + "/e4e.h5");

  say("rendering a synthetic corpus of " + std::to_string(o.images) + " PNGs");
  fs::remove_all(corpus_images);
  render_corpus(generator, corpus_images, o.images);

  say("embed");
  EmbedOptions embed;
  embed.images_dir = corpus_images;
  embed.out_dir = work + "/corpus";
  embed.clip_path = clip_path;
  embed.device = "cpu";
  embed.batch_size = 64;
  embed.progress = o.progress;
  EmbedReport embedded = embed_corpus(embed);
  check(!embedded.interrupted, ErrorCode::kCancelled, "demo-assets was interrupted");

  say("stats");
  StatsOptions stats;
  stats.generator_path = generator_path;
  stats.out_path = work + "/stats.h5";
  stats.device = "cpu";
  stats.num_samples = o.stats_samples;
  compute_style_stats(stats);

  say("directions");
  DirectionsOptions directions;
  directions.generator_path = generator_path;
  directions.clip_path = clip_path;
  directions.stats_path = stats.out_path;
  directions.out_path = work + "/directions.h5";
  directions.device = "cpu";
  directions.images = o.direction_images;
  directions.coverage = "all-conv";
  directions.channels_per_block = 16;
  directions.clip_batch = 256;
  directions.progress = o.progress;
  DirectionsReport report = compute_directions(directions);
  check(!report.interrupted, ErrorCode::kCancelled, "demo-assets was interrupted");

  say("publish");
  PublishOptions publish_options;
  publish_options.root = root + "/artifacts";
  publish_options.version = version_name("demo-");
  publish_options.corpus_dir = embed.out_dir;
  publish_options.directions_path = directions.out_path;
  publish_options.generator_path = generator_path;
  publish_options.clip_path = clip_path;
  publish_options.model_paths = {generator_path, clip_path, vocab_path};
  publish_options.config = {{"demo", true},
                            {"images", o.images},
                            {"stats_samples", o.stats_samples},
                            {"direction_images", o.direction_images},
                            {"coverage", "all-conv"},
                            {"seed", o.seed}};
  const std::string published = publish(publish_options);
  say("published " + published);
  return published;
}

}  // namespace feu::index
