// The indexer's model-running steps: embed a corpus with CLIP, S statistics,
// Δi directions, and the embedded demo assets. No torch in this header; the
// implementations use ATen and the stylegan2/clip modules.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "image/codec.h"
#include "index/corpus.h"
#include "index/directions.h"

namespace feu::index {

// ------------------------------------------------------------------ embed

struct EmbedOptions {
  std::string images_dir;          // corpus root, walked recursively (.png .jpg .jpeg, any case)
  std::string out_dir;             // receives corpus.faiss + corpus.h5 (and the checkpoint while running)
  std::string clip_path;           // CLIP weights (.pt or feu .h5)
  std::string device = "auto";     // cpu | cuda | auto
  int64_t batch_size = 64;         // images per CLIP forward
  int decode_threads = 0;          // 0 = one per core
  int64_t max_image_pixels = image::kDefaultMaxPixels;  // larger images are skipped, undecoded (bombs)
  int64_t max_pending = 256;       // decoded images waiting for CLIP at most (bounds memory)
  bool incremental = false;        // reuse unchanged files (same size and mtime) from out_dir's corpus.h5
  IndexOptions index;
  int64_t checkpoint_every = 2048; // images between checkpoints
  int64_t stop_after = -1;         // test hook: act as on Ctrl-C once this many images were embedded
  // Embeds only the K-th of N ranges of the listing (whole batches, so every
  // float is a single run's) into out_dir/corpus-shard.h5 for merge_embed_shards.
  Shard shard;
  bool progress = true;
};

struct EmbedReport {
  int64_t files = 0;       // images found
  int64_t embedded = 0;    // encoded by this run
  int64_t reused = 0;      // taken from the previous corpus (incremental)
  int64_t resumed = 0;     // taken from a checkpoint
  int64_t dropped = 0;     // in the previous corpus but gone (incremental)
  std::vector<std::pair<std::string, std::string>> skipped;  // unreadable: path, reason
  double decode_seconds = 0;      // summed over decode threads
  double preprocess_seconds = 0;  // summed over decode threads
  double clip_seconds = 0;        // wall time in CLIP forwards
  double total_seconds = 0;
  bool interrupted = false;       // stopped early; a checkpoint was written
  std::string text() const;
};

// Embeds the corpus and writes the index. Unreadable images are skipped and
// reported; an empty corpus (nothing indexable) is an invalid_argument error.
// After an interruption (SIGINT/SIGTERM via Interrupt, or stop_after) the
// report says so and rerunning the same options resumes from the checkpoint,
// producing the same files an uninterrupted run would.
EmbedReport embed_corpus(const EmbedOptions& options);

// Image files under `root` (relative paths, sorted), as embed sees them.
std::vector<CorpusEntry> list_images(const std::string& root);

// ------------------------------------------------------------------ stats

struct StatsOptions {
  std::string generator_path;
  std::string out_path;            // stats.h5
  std::string device = "auto";
  int64_t num_samples = 100000;
  int64_t seed = 5;                // z = numpy RandomState(seed).randn(num_samples, z_dim), as StyleCLIP
  double psi = 0.7;
  int truncation_cutoff = -1;      // -1: every w truncated (StyleCLIP TF GetCode); 8: the torch port
  int64_t batch_size = 1000;
};

// Per-channel mean and population std of S over the samples (mapping and
// affines only; no synthesis).
StyleStats compute_style_stats(const StatsOptions& options);
std::string truncation_rule_text(double psi, int cutoff);

// ------------------------------------------------------------------ directions

struct DirectionsOptions {
  std::string generator_path;
  std::string clip_path;
  std::string stats_path;          // from compute_style_stats (same generator)
  std::string out_path;            // directions.h5
  std::string device = "auto";
  int64_t images = 100;            // M: the first M codes of the stats' z stream (StyleCLIP's 100)
  double step_sigmas = 5.0;        // s_c = μ_c ± step·σ_c
  std::string coverage = "128";    // "128" | "all-conv" | another max resolution
  bool cumulative = false;         // StyleCLIP script's side effect: processed channels stay at their mean
  int64_t channels_per_block = 8;  // channels whose renders share one prefix and one checkpoint step
  int64_t synth_batch = 0;         // samples per generator forward; 0 = 1 on CPU (bit-exact vs one image
                                   // at a time), 128 on CUDA
  int64_t clip_batch = 0;          // renders per CLIP forward; 0 = 64 (at least synth_batch)
  int64_t only_layer = -1;         // restrict to one style layer (benchmarks, tests)
  int64_t max_channels = -1;       // compute only the first N channels of each covered layer (benchmarks)
  int64_t stop_after = -1;         // test hook: act as on Ctrl-C after this many channels
  // Synthesis precision of the renders (stylegan2::Precision): "fp32" (the reference's), "bf16", or
  // "fp16" (CUDA), over the num_fp16_res highest-resolution blocks, as NVlabs' networks do.
  std::string precision = "fp32";
  int num_fp16_res = 4;
  // With a reduced precision: this many computed channels, evenly spread, are computed again in
  // fp32 and the per-channel cosine of the two Δi is reported (DirectionsReport, the file's
  // render note). 0: no check.
  int64_t agreement_channels = 0;
  // Computes only the K-th of N row ranges (cut at render-block boundaries, so
  // every row is computed as in a single run) and writes a shard file for
  // merge_direction_shards.
  Shard shard;
  bool progress = true;
};

struct DirectionsReport {
  int64_t channels = 0;       // covered rows
  int64_t computed = 0;       // by this run
  int64_t resumed = 0;        // from a checkpoint
  int64_t dead = 0;
  double synth_seconds = 0;   // prefix + suffix synthesis
  double clip_seconds = 0;    // preprocessing + CLIP
  double total_seconds = 0;
  bool interrupted = false;
  // The fp32 check of a reduced-precision run (agreement_channels): channels compared, how many
  // have a cosine of at least 0.99 to their fp32 Δi, and the smallest cosine.
  int64_t agreement_checked = 0;
  int64_t agreement_at_least_099 = 0;
  double agreement_min_cosine = 1.0;
  std::string text() const;
};

DirectionsReport compute_directions(const DirectionsOptions& options);

// One row the slow way (tests): for each image separately, render s_c at μ−step·σ
// and μ+step·σ with a batch-1 full synthesis, and aggregate as StyleCLIP's GetFs.
// `flat_channel` is the flat-S index. Returns E floats (all zero for a dead row).
std::vector<float> brute_force_direction(const DirectionsOptions& options, int64_t flat_channel);

// ------------------------------------------------------------------ demo

struct DemoOptions {
  std::string out_dir;
  int64_t images = 300;        // synthetic corpus size
  int64_t stats_samples = 20000;
  int64_t direction_images = 8;
  uint64_t seed = 1;
  // Benchmark assets at production sizes instead: FFHQ config-f generator
  // (1024²) and ViT-B/32 CLIP with random weights, `images` random unit
  // corpus embeddings (no images rendered) and random unit Δi rows for
  // StyleCLIP's coverage ("128"), s_mean/s_std from `stats_samples` z. The
  // embeddings and directions mean nothing (benchmarks only); an edit costs
  // what it costs with trained ones.
  bool real_size = false;
  bool progress = true;
};

// Builds the embedded default end to end in out_dir: models/ (random small
// generator and CLIP, demo vocabulary), corpus-images/ (generated PNGs),
// work/ (corpus, stats, directions) and artifacts/ (published, current).
// With real_size: models/, work/ and artifacts/ as above at real sizes (the
// models are not copied into the version; configs/bench-real-size.yaml names
// them). Returns the published (and verified) version directory.
std::string build_demo_assets(const DemoOptions& options);

// libtorch version string ("1.13.1").
std::string torch_version();

}  // namespace feu::index
