// Δi directions (StyleCLIP's fs3) and the S-space statistics they come with.
//
// directions.h5 holds:
//   fs3               [covered, E] float32, unit rows (zero rows for dead channels)
//   covered_channels  [covered] int64, flat-S index of each fs3 row
//   layers/name, layers/offset, layers/channels, layers/is_conv, layers/covered,
//   layers/w_index, layers/resolution   the S layer table in S order
//   s_mean, s_std     [total] float32, per-channel mean and population std of S
//   dead              [covered] uint8, 1 where the row could not be measured
//                     (σ = 0 or a zero-norm difference/mean)
// and attributes on "/" (see DirectionsInfo).
// No torch here: the engine reads this from plain C++.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "index/shard.h"

namespace feu::index {

// One style layer of S (mirrors stylegan2::StyleLayer without torch).
struct LayerSpec {
  std::string name;     // "b4.conv1", "b8.conv0", "b8.torgb", ...
  int64_t offset = 0;   // into flat S
  int64_t channels = 0;
  bool is_conv = true;  // false for toRGB
  int w_index = 0;      // which w of W+ feeds it
  int resolution = 4;
};

// The S layout of an NVlabs StyleGAN2 synthesis network of `resolution`
// (power of two ≥ 4): per resolution conv0 (not at 4), conv1, torgb; channel
// count of a conv = its input channels = min(channel_base / r_in, channel_max).
// FFHQ config-f: (1024, 32768, 512) → 26 layers, 9088 channels, 6048 conv.
std::vector<LayerSpec> stylegan2_layout(int resolution, int64_t channel_base, int64_t channel_max);

// Coverage of Δi: "128" = conv layers up to 128² (StyleCLIP's 5376 for FFHQ),
// "all-conv" = every conv layer. Returns a per-layer covered flag.
std::vector<bool> coverage_mask(const std::vector<LayerSpec>& layers, const std::string& coverage);

// Provenance of a directions file (directions.h5 root attributes).
struct DirectionsInfo {
  std::string generator_sha256;
  std::string clip_sha256;
  std::string source = "computed";        // "computed" | "import-styleclip"
  int64_t images_per_channel = 0;         // M
  std::string seeds;                      // "0-99"
  double step_sigmas = 5.0;               // s_c = μ_c ± step·σ_c
  double psi = 0.7;                       // truncation of the image codes and stats
  std::string truncation_rule;            // e.g. "all w (TF GetCode): w = avg + psi*(w - avg) for every w index"
  std::string coverage;                   // "128" | "all-conv"
  std::string variant = "independent";    // "independent" | "cumulative"
  std::string stats_info;                 // how s_mean/s_std were computed
  std::string render;                     // "full" or the approximation used
  std::string tool_version;
  std::string torch_version;
  std::string created;
  // Only in one shard of a sharded run (`directions --shard K/N`): the fs3 rows
  // it computed (the others are zero and dead) and what its shards must share,
  // as "key=value" lines (models, statistics, settings).
  Shard shard;
  int64_t shard_row_begin = 0, shard_row_end = 0;
  std::string shard_settings;
};

// The statistics file written by `feu-indexer stats` (stats.h5: s_mean, s_std,
// the layer table, attributes).
struct StyleStats {
  std::vector<LayerSpec> layers;
  std::vector<float> s_mean, s_std;  // [total]
  int64_t num_samples = 0;
  int64_t seed = 5;
  double psi = 0.7;
  int truncation_cutoff = -1;        // -1: every w index truncated
  std::string truncation_rule;
  std::string generator_sha256;
  std::string created;

  static StyleStats load(const std::string& h5_path);
  void save(const std::string& h5_path) const;  // atomic
};

struct Directions {
  // The S layer table, in S order.
  std::vector<std::string> layer_names;
  std::vector<int64_t> layer_offsets, layer_channels;
  std::vector<bool> layer_is_conv, layer_covered;
  std::vector<int> layer_w_index;
  std::vector<int> layer_resolution;
  std::vector<float> fs3;                  // [covered,E] rows for covered channels in flat-S order
  std::vector<int64_t> covered_channels;   // flat S index of each fs3 row
  std::vector<float> s_mean, s_std;        // [total]
  std::vector<uint8_t> dead;               // [covered]
  int64_t embed_dim = 0;
  DirectionsInfo info;

  int64_t total_channels() const { return s_mean.empty() ? 0 : static_cast<int64_t>(s_mean.size()); }
  int64_t covered() const { return static_cast<int64_t>(covered_channels.size()); }
  std::vector<LayerSpec> layers() const;
  // Fills the layer table from specs and the covered flags; sets covered_channels
  // (conv layers only) and sizes fs3/dead for `embed_dim`.
  void set_layout(const std::vector<LayerSpec>& layers, const std::vector<bool>& covered, int64_t embed_dim);

  // Errors: not_found, corrupt_file, shape_mismatch (table inconsistent).
  static Directions load(const std::string& h5_path);
  // Atomic write.
  void save(const std::string& h5_path) const;
  // Checks internal consistency (offsets contiguous, covered rows ⊆ conv layers,
  // sizes agree, unit or dead rows). Throws shape_mismatch/corrupt_file.
  void validate() const;
};

// Joins the shard files of one sharded `directions` run into the directions a
// single run gives (same datasets). Errors: artifact_mismatch (shards of
// different models, statistics or settings), invalid_argument (not a shard,
// overlapping or missing ranges, N differs).
Directions merge_direction_shards(const std::vector<std::string>& shard_paths);

// A .npy array (as written by numpy.save): float16/float32 (little-endian or
// native), C order. Values converted to float32.
struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;
  std::string dtype;  // "<f2", "<f4"
};
NpyArray read_npy(const std::string& path);
// Writes a float32 C-order .npy (tests, exports).
void write_npy(const std::string& path, const std::vector<float>& data, const std::vector<int64_t>& shape);

// Maps StyleCLIP's fs3 rows onto `layers`: the row count must equal a prefix
// sum of the conv widths (5376 or 6048 for FFHQ); rows go to conv layers in S
// order, channel by channel. Layers past the prefix are uncovered. Rows with a
// zero norm are marked dead; others are renormalized (fp16 rounding).
Directions import_styleclip_fs3(const NpyArray& fs3, const std::vector<LayerSpec>& layers,
                                const std::vector<float>& s_mean, const std::vector<float>& s_std);

}  // namespace feu::index
