// `feu-indexer demo-assets`: the embedded default, end to end, from nothing.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cstdio>
#include <filesystem>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "core/error.h"
#include "core/files.h"
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

}  // namespace

std::string build_demo_assets(const DemoOptions& o) {
  check(o.images >= 10, ErrorCode::kInvalidArgument, "--images must be at least 10");
  const std::string root = fs::absolute(o.out_dir).lexically_normal().string();
  const std::string models = root + "/models", corpus_images = root + "/corpus-images", work = root + "/work";
  fs::create_directories(models);
  fs::create_directories(work + "/corpus");
  auto say = [&](const std::string& text) {
    if (o.progress) std::fprintf(stderr, "demo-assets: %s\n", text.c_str());
  };

  say("random generator (64x64) and CLIP (small), demo vocabulary");
  const std::string vocab_path = models + "/vocab.txt.gz";
  clip::Tokenizer::write_demo_vocab(vocab_path);
  const int64_t vocab_size = clip::Tokenizer::load(vocab_path).vocab_size();
  const std::string generator_path = models + "/generator.h5", clip_path = models + "/clip.h5";
  stylegan2::Generator generator = stylegan2::Generator::random(demo_generator_config(), o.seed, at::kCPU);
  generator.save(generator_path);
  clip::ClipModel::random(clip::ClipConfig::small(vocab_size), o.seed + 1, at::kCPU).save_h5(clip_path);

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
  std::string stamp = utc_timestamp();
  std::string version = "demo-";
  for (char ch : stamp)
    if (std::isalnum(static_cast<unsigned char>(ch))) version += ch;
  publish_options.version = version;
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
