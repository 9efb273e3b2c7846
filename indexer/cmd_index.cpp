// feu-indexer commands: embed, stats, directions, import-styleclip, publish,
// verify, search, demo-assets, bench-embed, bench-directions.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <optional>

#include "commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "index/artifacts.h"
#include "index/corpus.h"
#include "index/directions.h"
#include "index/embed_shard.h"
#include "index/pull.h"
#ifdef FEU_INDEX_WITH_MODELS
#include "index/pipeline.h"
#include "index/progress.h"
#endif

namespace feu::indexer {
namespace {
namespace fs = std::filesystem;
using namespace feu::index;

void add_import_styleclip(CLI::App& app) {
  struct Args {
    std::string fs3, out, stats, s_mean, s_std, generator_sha, clip_path, clip_sha;
    int resolution = 1024;
    int64_t channel_base = 32768, channel_max = 512;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "import-styleclip", "Convert StyleCLIP's fs3.npy (float16/32, 5376 or 6048 rows) into directions.h5");
  cmd->add_option("--fs3", args->fs3, "StyleCLIP fs3.npy")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out, "directions.h5 to write")->required();
  cmd->add_option("--stats", args->stats,
                  "stats.h5 from `feu-indexer stats` (S layout and s_mean/s_std of the generator)");
  cmd->add_option("--s-mean", args->s_mean, "flat S means as .npy (instead of --stats)");
  cmd->add_option("--s-std", args->s_std, "flat S stds as .npy (instead of --stats)");
  cmd->add_option("--resolution", args->resolution, "layout when no --stats: generator resolution")
      ->capture_default_str();
  cmd->add_option("--channel-base", args->channel_base, "layout when no --stats")->capture_default_str();
  cmd->add_option("--channel-max", args->channel_max, "layout when no --stats")->capture_default_str();
  cmd->add_option("--generator-sha256", args->generator_sha,
                  "fingerprint of the generator the fs3 belongs to (default: the stats file's)");
  cmd->add_option("--clip", args->clip_path, "CLIP weights the fs3 was computed with (fingerprinted)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--clip-sha256", args->clip_sha, "CLIP fingerprint, instead of --clip");
  cmd->callback([args] {
    std::vector<LayerSpec> layers;
    std::vector<float> mean, std;
    std::string generator_sha = args->generator_sha;
    if (!args->stats.empty()) {
      StyleStats stats = StyleStats::load(args->stats);
      layers = stats.layers;
      mean = stats.s_mean;
      std = stats.s_std;
      if (generator_sha.empty()) generator_sha = stats.generator_sha256;
    } else {
      check(!args->s_mean.empty() && !args->s_std.empty(), ErrorCode::kInvalidArgument,
            "import-styleclip needs the S statistics: --stats stats.h5, or --s-mean and --s-std .npy files");
      layers = stylegan2_layout(args->resolution, args->channel_base, args->channel_max);
      mean = read_npy(args->s_mean).data;
      std = read_npy(args->s_std).data;
    }
    NpyArray fs3 = read_npy(args->fs3);
    Directions d = import_styleclip_fs3(fs3, layers, mean, std);
    d.info.generator_sha256 = generator_sha;
    d.info.clip_sha256 = !args->clip_path.empty() ? sha256_file(args->clip_path) : args->clip_sha;
    d.info.tool_version = tool_version();
    d.info.created = utc_timestamp();
    d.save(args->out);
    int64_t dead = 0;
    for (uint8_t v : d.dead) dead += v;
    std::printf("imported %ld rows x %ld (%s) into %s; %ld dead rows\n", long(d.covered()), long(d.embed_dim),
                fs3.dtype.c_str(), args->out.c_str(), long(dead));
  });
}

void add_publish(CLI::App& app) {
  auto args = std::make_shared<PublishOptions>();
  auto config_path = std::make_shared<std::string>();
  auto no_current = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("publish", "Assemble a verified artifact version and switch <root>/current");
  cmd->add_option("--root", args->root, "artifact root")->required();
  cmd->add_option("--version", args->version, "version directory name (immutable once published)")->required();
  cmd->add_option("--corpus", args->corpus_dir, "directory with corpus.faiss and corpus.h5")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--directions", args->directions_path, "directions.h5")->required()->check(CLI::ExistingFile);
  cmd->add_option("--models", args->model_paths, "model files to ship inside the version (copied)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--generator", args->generator_path, "generator weights: must be the one directions used")
      ->check(CLI::ExistingFile);
  cmd->add_option("--clip", args->clip_path, "CLIP weights: must be the one corpus and directions used")
      ->check(CLI::ExistingFile);
  cmd->add_option("--config", *config_path, "JSON file recorded in the manifest's config")->check(CLI::ExistingFile);
  cmd->add_flag("--no-current", *no_current, "publish without switching current");
  cmd->callback([args, config_path, no_current] {
    PublishOptions options = *args;
    options.make_current = !*no_current;
    if (!config_path->empty()) {
      const std::vector<uint8_t> bytes = read_file(*config_path);
      std::string why;
      std::optional<nlohmann::json> config =
          parse_outside_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), &why);
      if (!config) throw Error(ErrorCode::kInvalidArgument, *config_path + " " + why);
      options.config = std::move(*config);
    }
    const std::string dir = publish(options);
    std::printf("published %s%s\n", dir.c_str(), options.make_current ? " (now current)" : "");
  });
}

void add_verify(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("verify", "Recheck a published version's checksums and model cross-references");
  cmd->add_option("dir", *dir, "version directory (or <root>/current)")->required();
  cmd->callback([dir] {
    std::error_code ec;
    if (fs::is_symlink(*dir, ec) && !fs::exists(*dir, ec))
      throw Error(ErrorCode::kNotFound, *dir + " is a link to " + fs::read_symlink(*dir, ec).string() +
                                            ", which does not exist (a dangling 'current': publish a version, or "
                                            "point it at one that exists)");
    check(fs::is_directory(*dir, ec), ErrorCode::kNotFound,
          *dir + " is not a directory (expected a published version directory or <root>/current)");
    VerifyReport report = verify(*dir);
    std::fputs(report.text().c_str(), stdout);
    std::fflush(stdout);
    if (!report.ok())
      throw Error(report.checksum_failed ? ErrorCode::kChecksumMismatch : ErrorCode::kArtifactMismatch,
                  *dir + " failed verification (" + std::to_string(report.problems.size()) + " problems)");
  });
}

void add_pull(CLI::App& app) {
  auto o = std::make_shared<PullOptions>();
  auto no_current = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "pull", "Copy a published version from an HTTP server or S3-compatible bucket, verify it, switch current");
  cmd->add_option("--from", o->from, "URL of the publisher's artifact root (serves current.json, <version>/...)")
      ->required();
  cmd->add_option("--root", o->root, "local artifact root")->required();
  cmd->add_option("--version", o->version, "version to pull (default: the one the publisher's current.json names)");
  cmd->add_option("--attempts", o->attempts, "tries per file; each retry resumes with an HTTP Range request")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--connect-timeout", o->connect_timeout_s, "seconds")->capture_default_str();
  cmd->add_flag("--no-current", *no_current, "install without switching current");
  cmd->callback([o, no_current] {
    PullOptions options = *o;
    options.make_current = !*no_current;
    PullReport report = pull(options);
    std::fputs(report.text().c_str(), stdout);
  });
}

void add_merge_directions(CLI::App& app) {
  struct Args {
    std::string out;
    std::vector<std::string> shards;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "merge-directions", "Join the shards of `directions --shard K/N` into the directions.h5 a single run gives");
  cmd->add_option("--out", args->out, "directions.h5 to write")->required();
  cmd->add_option("shards", args->shards, "every shard file of the run (any order)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->callback([args] {
    Directions merged = merge_direction_shards(args->shards);
    merged.save(args->out);
    std::printf("merged %zu shards: %ld rows x %ld -> %s\n", args->shards.size(), long(merged.covered()),
                long(merged.embed_dim), args->out.c_str());
  });
}

void add_merge_embeddings(CLI::App& app) {
  struct Args {
    std::string out, kind = "flat";
    std::vector<std::string> shards;
    IndexOptions index;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "merge-embeddings", "Join the shards of `embed --shard K/N` into the corpus a single run gives");
  cmd->add_option("--out", args->out, "output directory (corpus.faiss, corpus.h5)")->required();
  cmd->add_option("shards", args->shards, "every shard (corpus-shard.h5, or the --out directory of a shard)")
      ->required()
      ->check(CLI::ExistingPath);
  cmd->add_option("--index", args->kind, "flat (exact) | ivf | hnsw")->capture_default_str();
  cmd->add_option("--ivf-lists", args->index.ivf_lists, "IVF lists (0 = about 4 sqrt(N))")->capture_default_str();
  cmd->add_option("--nprobe", args->index.ivf_nprobe, "IVF lists probed per query")->capture_default_str();
  cmd->add_option("--hnsw-m", args->index.hnsw_m, "HNSW degree")->capture_default_str();
  cmd->add_option("--ef-search", args->index.hnsw_ef_search, "HNSW search breadth")->capture_default_str();
  cmd->callback([args] {
    IndexOptions options = args->index;
    options.kind = parse_index_kind(args->kind);
    CorpusIndex corpus = merge_embed_shards(args->shards, options);
    fs::create_directories(args->out);
    corpus.save(args->out);
    std::printf("merged %zu shards: %ld images of dim %ld -> %s\n", args->shards.size(), long(corpus.size()),
                long(corpus.dim()), args->out.c_str());
  });
}

void add_corpus_info(CLI::App& app) {
  struct Args {
    std::string dir;
    int64_t recall_queries = 200;
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand("corpus-info", "Describe a corpus index (and its recall@100 vs exact search)");
  cmd->add_option("dir", args->dir, "corpus directory")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("--recall-queries", args->recall_queries, "stored rows used as queries for recall@100")
      ->capture_default_str();
  cmd->callback([args] {
    CorpusIndex corpus = CorpusIndex::load(args->dir);
    std::printf("%ld images, dim %ld, index %s, CLIP %s, created %s\n", long(corpus.size()), long(corpus.dim()),
                index_kind_name(corpus.kind()), corpus.provenance().clip_sha256.c_str(),
                corpus.provenance().created.c_str());
    std::printf("recall@100 vs exact: %.4f over %ld queries\n", corpus.recall_at_k(100, args->recall_queries),
                long(std::min(args->recall_queries, corpus.size())));
  });
}


#ifdef FEU_INDEX_WITH_MODELS
void add_embed(CLI::App& app) {
  auto o = std::make_shared<EmbedOptions>();
  auto kind = std::make_shared<std::string>("flat");
  auto quiet = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("embed", "Embed an image corpus with CLIP and build the FAISS index");
  cmd->add_option("--images", o->images_dir, "corpus root (walked recursively; PNG/JPEG)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out", o->out_dir, "output directory (corpus.faiss, corpus.h5)")->required();
  cmd->add_option("--clip", o->clip_path, "CLIP weights (.pt or .h5)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--device", o->device, "cpu | cuda | auto")->capture_default_str();
  cmd->add_option("--batch", o->batch_size, "images per CLIP forward")->capture_default_str();
  cmd->add_option("--threads", o->decode_threads, "decode threads (0 = one per core)")->capture_default_str();
  cmd->add_option("--max-image-pixels", o->max_image_pixels,
                  "images whose header declares more pixels are skipped undecoded (decompression bombs)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--max-pending", o->max_pending, "decoded images held at most")->capture_default_str();
  cmd->add_flag("--incremental", o->incremental, "re-embed only new/changed files; drop deleted ones");
  cmd->add_option("--index", *kind, "flat (exact) | ivf | hnsw")->capture_default_str();
  cmd->add_option("--ivf-lists", o->index.ivf_lists, "IVF lists (0 = about 4 sqrt(N))")->capture_default_str();
  cmd->add_option("--nprobe", o->index.ivf_nprobe, "IVF lists probed per query")->capture_default_str();
  cmd->add_option("--hnsw-m", o->index.hnsw_m, "HNSW degree")->capture_default_str();
  cmd->add_option("--ef-search", o->index.hnsw_ef_search, "HNSW search breadth")->capture_default_str();
  cmd->add_option("--checkpoint-every", o->checkpoint_every, "images between checkpoints")->capture_default_str();
  cmd->add_option("--stop-after", o->stop_after, "stop as on Ctrl-C after N images (testing resume)");
  auto shard = std::make_shared<std::string>();
  cmd->add_option("--shard", *shard,
                  "K/N: embed only the K-th of N ranges of the listing into <out>/corpus-shard.h5 "
                  "(join with merge-embeddings)");
  cmd->add_flag("--quiet", *quiet, "no progress output");
  cmd->callback([o, kind, quiet, shard] {
    EmbedOptions options = *o;
    if (!shard->empty()) options.shard = parse_shard(*shard);
    options.index.kind = parse_index_kind(*kind);
    options.progress = !*quiet;
    Interrupt::install_handlers();
    EmbedReport report = embed_corpus(options);
    std::fputs(report.text().c_str(), stdout);
    if (report.interrupted)
      throw Error(ErrorCode::kCancelled, "embed interrupted; the checkpoint in " + options.out_dir +
                                             " lets the same command resume");
    if (options.shard.active()) return;  // no index until merge-embeddings
    if (options.index.kind != IndexKind::kFlat) {
      CorpusIndex corpus = CorpusIndex::load(options.out_dir);
      std::printf("recall@100 of the %s index vs exact search: %.4f (200 stored rows as queries)\n",
                  index_kind_name(options.index.kind), corpus.recall_at_k(100, 200));
    }
  });
}

void add_stats(CLI::App& app) {
  auto o = std::make_shared<StatsOptions>();
  CLI::App* cmd = app.add_subcommand("stats", "Per-channel mean/std of S over random z (mapping + affines only)");
  cmd->add_option("--generator", o->generator_path, "generator weights (.h5)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out_path, "stats.h5 to write")->required();
  cmd->add_option("--device", o->device, "cpu | cuda | auto")->capture_default_str();
  cmd->add_option("--samples", o->num_samples, "number of z")->capture_default_str();
  cmd->add_option("--seed", o->seed, "numpy RandomState seed of the z stream")->capture_default_str();
  cmd->add_option("--psi", o->psi, "truncation psi")->capture_default_str();
  cmd->add_option("--truncation-cutoff", o->truncation_cutoff,
                  "-1: truncate every w (StyleCLIP TF); 8: only w 0-7 (StyleCLIP torch)")
      ->capture_default_str();
  cmd->add_option("--batch", o->batch_size, "z per batch")->capture_default_str();
  cmd->callback([o] {
    StyleStats stats = compute_style_stats(*o);
    std::printf("stats: %ld channels over %ld samples (seed %ld, psi %.3g) -> %s\ntruncation: %s\n",
                long(stats.s_mean.size()), long(stats.num_samples), long(stats.seed), stats.psi, o->out_path.c_str(),
                stats.truncation_rule.c_str());
  });
}

void add_directions(CLI::App& app) {
  auto o = std::make_shared<DirectionsOptions>();
  auto quiet = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand("directions", "Compute Δi (StyleCLIP fs3) for every covered conv channel");
  cmd->add_option("--generator", o->generator_path, "generator weights (.h5)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--clip", o->clip_path, "CLIP weights")->required()->check(CLI::ExistingFile);
  cmd->add_option("--stats", o->stats_path, "stats.h5 of the same generator")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", o->out_path, "directions.h5 to write")->required();
  cmd->add_option("--device", o->device, "cpu | cuda | auto")->capture_default_str();
  cmd->add_option("--images", o->images, "M images per channel")->capture_default_str();
  cmd->add_option("--step", o->step_sigmas, "perturbation in sigmas (s = mu +- step*sigma)")->capture_default_str();
  cmd->add_option("--coverage", o->coverage, "128 (StyleCLIP's 5376 rows) | all-conv | another max resolution")
      ->capture_default_str();
  cmd->add_flag("--cumulative", o->cumulative,
                "reproduce StyleCLIP SingleChannel.py's side effect (processed channels stay at their mean)");
  cmd->add_option("--block", o->channels_per_block, "channels per render block / checkpoint")->capture_default_str();
  cmd->add_option("--synth-batch", o->synth_batch,
                  "samples per generator forward (0 = 1 on CPU: bit-exact vs one-at-a-time; 128 on CUDA)")
      ->capture_default_str();
  cmd->add_option("--clip-batch", o->clip_batch, "renders per CLIP forward (0 = 64)")->capture_default_str();
  cmd->add_option("--layer", o->only_layer, "only this style layer index (benchmarks)");
  cmd->add_option("--max-channels", o->max_channels, "only the first N channels per layer (benchmarks)");
  cmd->add_option("--stop-after", o->stop_after, "stop as on Ctrl-C after N channels (testing resume)");
  cmd->add_option("--precision", o->precision,
                  "synthesis precision: fp32 (the reference's) | bf16 | fp16 (cuda), over --num-fp16-res blocks")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "bf16", "fp16"}));
  cmd->add_option("--num-fp16-res", o->num_fp16_res, "highest-resolution blocks in bf16/fp16")->capture_default_str();
  cmd->add_option("--agreement-channels", o->agreement_channels,
                  "with bf16/fp16: recompute N of the channels in fp32 and report the cosines of their Δi");
  auto shard = std::make_shared<std::string>();
  cmd->add_option("--shard", *shard,
                  "K/N: compute only the K-th of N channel ranges into a shard file (join with merge-directions)");
  cmd->add_flag("--quiet", *quiet, "no progress output");
  cmd->callback([o, quiet, shard] {
    DirectionsOptions options = *o;
    if (!shard->empty()) options.shard = parse_shard(*shard);
    options.progress = !*quiet;
    Interrupt::install_handlers();
    DirectionsReport report = compute_directions(options);
    std::fputs(report.text().c_str(), stdout);
    if (report.computed > 0)
      std::printf("cost: %.3f s per channel (%ld images x 2 signs)\n", report.total_seconds / report.computed,
                  long(options.images));
    if (report.interrupted)
      throw Error(ErrorCode::kCancelled, "directions interrupted; " + options.out_path +
                                             ".checkpoint.h5 lets the same command resume");
  });
}

void add_demo_assets(CLI::App& app) {
  auto o = std::make_shared<DemoOptions>();
  auto quiet = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "demo-assets", "Build the embedded default: small random models, a synthetic corpus, published artifacts");
  cmd->add_option("--out", o->out_dir, "output directory")->required();
  cmd->add_option("--images", o->images, "synthetic corpus size")->capture_default_str();
  cmd->add_option("--stats-samples", o->stats_samples, "z for the S statistics")->capture_default_str();
  cmd->add_option("--direction-images", o->direction_images, "M images per Δi channel")->capture_default_str();
  cmd->add_option("--seed", o->seed, "model seed")->capture_default_str();
  cmd->add_flag("--real-size", o->real_size,
                "benchmark assets instead: FFHQ config-f + ViT-B/32 with random weights, random unit corpus "
                "embeddings (--images, default 70000) and Δi rows (5376), stats over --stats-samples (default "
                "2000) z; meaningless edits at the real cost");
  cmd->add_flag("--quiet", *quiet, "no progress output");
  cmd->callback([cmd, o, quiet] {
    DemoOptions options = *o;
    options.progress = !*quiet;
    if (options.real_size && cmd->count("--images") == 0) options.images = 70000;  // FFHQ
    if (options.real_size && cmd->count("--stats-samples") == 0) options.stats_samples = 2000;
    const std::string dir = build_demo_assets(options);
    std::printf("demo artifacts: %s\nmodels: %s/models\n", dir.c_str(), options.out_dir.c_str());
  });
}
#endif

}  // namespace

void register_index_commands(CLI::App& app) {
  add_import_styleclip(app);
  add_publish(app);
  add_verify(app);
  add_pull(app);
  add_merge_directions(app);
  add_merge_embeddings(app);
  add_corpus_info(app);
#ifdef FEU_INDEX_WITH_MODELS
  add_embed(app);
  add_stats(app);
  add_directions(app);
  add_demo_assets(app);
#endif
}

}  // namespace feu::indexer
