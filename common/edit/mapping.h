// From a CLIP-space direction to a style-space edit (StyleCLIP MapTS.py
// GetBoundary/SplitS, manipulate.py MSCode), paper Eq. 7:
//   r = fs3 · Δt; r_c = 0 where |r_c| < β; r /= max|r|; Δs = r ⊙ σ on the
//   covered conv channels, 0 elsewhere (toRGB and uncovered layers);
//   s' = s + α · Δs.
// Plain C++: this is the daemon's hot path and must stay exact and fast.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "edit/int8_rows.h"

namespace feu::edit {

// The layers of the flat S vector, for naming channels in diagnostics.
struct StyleLayout {
  std::vector<std::string> layer_names;  // synthesis order, e.g. "b8.conv0"
  std::vector<int64_t> layer_offsets;    // first flat-S index of each layer
  std::vector<int64_t> layer_channels;   // width of each layer

  int64_t total_channels() const;
  // (layer index, channel within the layer) of a flat-S index.
  std::pair<int, int64_t> locate(int64_t flat_index) const;
};

// Relevance after the β threshold and the max normalization.
struct ThresholdedRelevance {
  std::vector<float> values;  // [covered] in [-1, 1], exactly 0 below β
  int64_t channels = 0;       // count(|r| >= β): the channels the edit changes
  double beta = 0;            // the threshold applied
  double max_abs = 0;         // max |r| over all covered channels before thresholding
};

// How β is chosen: a fixed value, or auto_beta's rule.
struct BetaRule {
  double beta = 0.15;          // the fixed threshold (automatic = false)
  bool automatic = false;      // pick β with auto_beta(low, high, min_channels)
  double low = 0.08;
  double high = 0.30;
  int64_t min_channels = 20;
};

struct ChannelChange {
  int64_t channel;         // flat S index
  std::string layer;       // its layer's name
  int64_t layer_channel;   // index within the layer
  float delta;             // Δs_c (α = 1)
};

class StyleDirectionMapper {
 public:
  StyleDirectionMapper(std::vector<float> fs3,                   // [covered, dim] unit rows (Δi_c)
                       int64_t dim,                              // CLIP embedding size
                       std::vector<int64_t> covered_channels,    // [covered] flat-S index of each fs3 row
                       std::vector<float> s_std,                 // [total] per-channel σ of S (population std)
                       StyleLayout layout                        // the layers of S; total must match s_std
  );

  int64_t dim() const { return dim_; }
  int64_t covered() const { return static_cast<int64_t>(covered_channels_.size()); }
  int64_t total_channels() const { return static_cast<int64_t>(s_std_.size()); }
  const StyleLayout& layout() const { return layout_; }

  // r = fs3 · direction, [covered]; `direction` is [dim] (a unit vector, so r_c are cosines).
  std::vector<float> relevance(const float* direction) const;

  // Zeroes |r| < β and divides by the largest survivor. No survivor is a
  // no_channels error stating the largest β that keeps one channel.
  static ThresholdedRelevance threshold(const std::vector<float>& relevance, double beta);
  // The largest β in [low, high] that keeps at least `min_channels` channels;
  // when even `low` keeps fewer, `low` (the edit then uses what survives).
  static double auto_beta(const std::vector<float>& relevance, double low, double high, int64_t min_channels);

  // threshold(relevance(direction), β), β fixed or auto_beta's, with the
  // same result bit for bit but reading int8 codes of fs3 (a quarter of its
  // 11 MB at FFHQ size): r is computed exactly only for the channels whose
  // estimate's bound can reach β, the k-th largest |r| or the largest.
  ThresholdedRelevance kept_relevance(const float* direction, const BetaRule& rule) const;

  // Δs [total]: thresholded relevance ⊙ σ on the covered channels, 0 elsewhere.
  std::vector<float> delta_s(const ThresholdedRelevance& relevance) const;
  // The `count` channels with the largest |Δs|, largest first (nonzero ones only).
  std::vector<ChannelChange> top_channels(const std::vector<float>& delta_s, int64_t count) const;

  // out[i] = s[i] + α·Δs[i] over `total` channels (float32, as the reference).
  static void apply(const float* s, const float* delta_s, int64_t total, double alpha, float* out);

 private:
  float relevance_of(int64_t row, const float* direction) const;  // one r_c, as relevance() computes it

  std::vector<float> fs3_;
  Int8Rows fs3_codes_;
  int64_t dim_;
  std::vector<int64_t> covered_channels_;
  std::vector<float> s_std_;
  StyleLayout layout_;
};

}  // namespace feu::edit
