// feu-indexer commands: embed, stats, directions, import-styleclip, publish,
// verify, search, demo-assets, bench-embed, bench-directions.
#include <cstdio>
#include <filesystem>
#include <iostream>

#include "commands.h"
#include "core/error.h"
#include "core/files.h"
#include "index/artifacts.h"
#include "index/corpus.h"
#include "index/directions.h"
#ifdef FEU_INDEX_WITH_MODELS
#include "index/pipeline.h"
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
      std::vector<uint8_t> bytes = read_file(*config_path);
      try {
        options.config = nlohmann::json::parse(bytes.begin(), bytes.end());
      } catch (const nlohmann::json::exception& e) {
        throw Error(ErrorCode::kInvalidArgument, *config_path + " is not valid JSON: " + e.what());
      }
    }
    const std::string dir = publish(options);
    std::printf("published %s%s\n", dir.c_str(), options.make_current ? " (now current)" : "");
  });
}

void add_verify(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("verify", "Recheck a published version's checksums and model cross-references");
  cmd->add_option("dir", *dir, "version directory (or <root>/current)")->required()->check(CLI::ExistingDirectory);
  cmd->callback([dir] {
    VerifyReport report = verify(*dir);
    std::fputs(report.text().c_str(), stdout);
    std::fflush(stdout);
    if (!report.ok())
      throw Error(report.checksum_failed ? ErrorCode::kChecksumMismatch : ErrorCode::kArtifactMismatch,
                  *dir + " failed verification (" + std::to_string(report.problems.size()) + " problems)");
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

}  // namespace

void register_index_commands(CLI::App& app) {
  add_import_styleclip(app);
  add_publish(app);
  add_verify(app);
  add_corpus_info(app);
}

}  // namespace feu::indexer
