#include "edit/mapping.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "edit/vectors.h"

namespace feu::edit {

int64_t StyleLayout::total_channels() const {
  int64_t total = 0;
  for (int64_t channels : layer_channels) total += channels;
  return total;
}

std::pair<int, int64_t> StyleLayout::locate(int64_t flat_index) const {
  for (size_t layer = 0; layer < layer_offsets.size(); ++layer) {
    if (flat_index >= layer_offsets[layer] && flat_index < layer_offsets[layer] + layer_channels[layer]) {
      return {static_cast<int>(layer), flat_index - layer_offsets[layer]};
    }
  }
  throw Error(ErrorCode::kInvalidArgument,
              "style channel " + std::to_string(flat_index) + " lies outside every layer of S");
}

StyleDirectionMapper::StyleDirectionMapper(std::vector<float> fs3, int64_t dim, std::vector<int64_t> covered_channels,
                                           std::vector<float> s_std, StyleLayout layout)
    : fs3_(std::move(fs3)),
      dim_(dim),
      covered_channels_(std::move(covered_channels)),
      s_std_(std::move(s_std)),
      layout_(std::move(layout)) {
  check(dim_ > 0, ErrorCode::kInvalidArgument, "fs3 needs a positive embedding dimension");
  check(static_cast<int64_t>(fs3_.size()) == covered() * dim_, ErrorCode::kShapeMismatch,
        "fs3 has " + std::to_string(fs3_.size()) + " values, expected covered channels " +
            std::to_string(covered()) + " x dim " + std::to_string(dim_));
  check(layout_.layer_names.size() == layout_.layer_offsets.size() &&
            layout_.layer_names.size() == layout_.layer_channels.size(),
        ErrorCode::kShapeMismatch, "style layout lists differ in length");
  check(layout_.total_channels() == total_channels(), ErrorCode::kShapeMismatch,
        "style layout has " + std::to_string(layout_.total_channels()) + " channels but s_std has " +
            std::to_string(total_channels()));
  for (int64_t channel : covered_channels_) {
    check(channel >= 0 && channel < total_channels(), ErrorCode::kShapeMismatch,
          "fs3 covers style channel " + std::to_string(channel) + ", outside S of " +
              std::to_string(total_channels()) + " channels");
  }
  fs3_codes_ = Int8Rows(fs3_.data(), covered(), dim_);
}

float StyleDirectionMapper::relevance_of(int64_t row, const float* direction) const {
  return static_cast<float>(dot(fs3_.data() + row * dim_, direction, dim_));  // float32 inputs, double sums
}

std::vector<float> StyleDirectionMapper::relevance(const float* direction) const {
  std::vector<float> r(static_cast<size_t>(covered()));
  for (int64_t row = 0; row < covered(); ++row) r[row] = relevance_of(row, direction);
  return r;
}

ThresholdedRelevance StyleDirectionMapper::kept_relevance(const float* direction, const BetaRule& rule) const {
  // r̂ with |r - r̂| <= bound, so |r| lies in [low_c, high_c]. Channels whose
  // high_c cannot reach a threshold never matter for it; every other one
  // gets its exact r. The rest stay 0 in `sparse`, which threshold() and
  // auto_beta() then see exactly as they would see the full r.
  for (int64_t k = 0; k < dim_; ++k) {
    if (!std::isfinite(direction[k])) {
      throw Error(ErrorCode::kInvalidArgument, "the edit direction has a non-finite value at " + std::to_string(k));
    }
  }
  const Int8Rows::Estimates estimates = fs3_codes_.estimate(direction);
  const int64_t n = covered();
  std::vector<float> high(static_cast<size_t>(n)), low(static_cast<size_t>(n));
  for (int64_t c = 0; c < n; ++c) {
    high[c] = std::fabs(estimates.value[c]) + estimates.bound[c];
    low[c] = std::max(0.0f, std::fabs(estimates.value[c]) - estimates.bound[c]);
  }
  std::vector<float> sparse(static_cast<size_t>(n), 0.0f);
  std::vector<char> exact(static_cast<size_t>(n), 0);
  auto make_exact_above = [&](float level) {
    for (int64_t c = 0; c < n; ++c) {
      if (!exact[c] && high[c] >= level) {
        sparse[c] = relevance_of(c, direction);
        exact[c] = 1;
      }
    }
  };
  // The largest |r|: threshold() reports it, and divides by it.
  make_exact_above(*std::max_element(low.begin(), low.end()));
  double beta = rule.beta;
  if (rule.automatic) {
    if (rule.min_channels >= 1 && rule.min_channels <= n) {
      // At least min_channels channels have |r| >= the min_channels-th
      // largest low end, so the min_channels-th largest |r| is among the
      // channels reaching it.
      std::vector<float> lows = low;
      std::nth_element(lows.begin(), lows.begin() + (rule.min_channels - 1), lows.end(), std::greater<float>());
      make_exact_above(lows[static_cast<size_t>(rule.min_channels - 1)]);
    }
    beta = auto_beta(sparse, rule.low, rule.high, rule.min_channels);
  }
  make_exact_above(static_cast<float>(beta));  // every possible survivor
  return threshold(sparse, beta);
}

ThresholdedRelevance StyleDirectionMapper::threshold(const std::vector<float>& relevance, double beta) {
  ThresholdedRelevance out;
  out.beta = beta;
  out.values.assign(relevance.size(), 0.0f);
  // The reference compares float32 cosines with a float32 β.
  const float beta32 = static_cast<float>(beta);
  float max_survivor = 0;
  for (size_t c = 0; c < relevance.size(); ++c) {
    const float magnitude = std::fabs(relevance[c]);
    out.max_abs = std::max(out.max_abs, static_cast<double>(magnitude));
    if (magnitude >= beta32) {
      ++out.channels;
      out.values[c] = relevance[c];
      max_survivor = std::max(max_survivor, magnitude);
    }
  }
  if (out.channels == 0) {
    char message[256];
    std::snprintf(message, sizeof message,
                  "no style channel has |relevance| >= beta %.4g; the largest beta that keeps at least one channel "
                  "is %.6g (or use beta: auto)",
                  beta, out.max_abs);
    throw Error(ErrorCode::kNoChannels, message);
  }
  // β = 0 keeps channels whose relevance is exactly 0 (dead fs3 rows, or a
  // direction orthogonal to every Δi); with nothing nonzero there is no edit.
  check(max_survivor > 0, ErrorCode::kNoChannels,
        "every style channel has relevance 0 for this direction, so no channel can be edited");
  for (float& value : out.values) value /= max_survivor;
  return out;
}

double StyleDirectionMapper::auto_beta(const std::vector<float>& relevance, double low, double high,
                                       int64_t min_channels) {
  check(low >= 0 && low <= high, ErrorCode::kInvalidArgument, "beta_auto range must satisfy 0 <= low <= high");
  check(min_channels >= 1, ErrorCode::kInvalidArgument, "min_channels must be at least 1");
  if (static_cast<int64_t>(relevance.size()) < min_channels) return low;
  std::vector<float> magnitudes(relevance.size());
  for (size_t c = 0; c < relevance.size(); ++c) magnitudes[c] = std::fabs(relevance[c]);
  // β = the min_channels-th largest |r| keeps exactly the channels at or above it.
  std::nth_element(magnitudes.begin(), magnitudes.begin() + (min_channels - 1), magnitudes.end(),
                   std::greater<float>());
  const double kth = magnitudes[static_cast<size_t>(min_channels - 1)];
  if (kth >= high) return high;
  if (kth < low) return low;
  return kth;
}

std::vector<float> StyleDirectionMapper::delta_s(const ThresholdedRelevance& relevance) const {
  check(static_cast<int64_t>(relevance.values.size()) == covered(), ErrorCode::kShapeMismatch,
        "relevance has " + std::to_string(relevance.values.size()) + " channels, fs3 covers " +
            std::to_string(covered()));
  std::vector<float> delta(s_std_.size(), 0.0f);
  for (int64_t row = 0; row < covered(); ++row) {
    const int64_t channel = covered_channels_[row];
    delta[channel] = relevance.values[row] * s_std_[channel];
  }
  return delta;
}

std::vector<ChannelChange> StyleDirectionMapper::top_channels(const std::vector<float>& delta_s,
                                                              int64_t count) const {
  std::vector<int64_t> nonzero;
  for (int64_t c = 0; c < static_cast<int64_t>(delta_s.size()); ++c) {
    if (delta_s[c] != 0.0f) nonzero.push_back(c);
  }
  const int64_t keep = std::min<int64_t>(std::max<int64_t>(count, 0), static_cast<int64_t>(nonzero.size()));
  std::partial_sort(nonzero.begin(), nonzero.begin() + keep, nonzero.end(), [&](int64_t a, int64_t b) {
    const float ma = std::fabs(delta_s[a]);
    const float mb = std::fabs(delta_s[b]);
    return ma != mb ? ma > mb : a < b;
  });
  std::vector<ChannelChange> out;
  out.reserve(static_cast<size_t>(keep));
  for (int64_t i = 0; i < keep; ++i) {
    const int64_t channel = nonzero[i];
    const auto [layer, within] = layout_.locate(channel);
    out.push_back(ChannelChange{channel, layout_.layer_names[layer], within, delta_s[channel]});
  }
  return out;
}

void StyleDirectionMapper::apply(const float* s, const float* delta_s, int64_t total, double alpha, float* out) {
  const float alpha32 = static_cast<float>(alpha);
  for (int64_t i = 0; i < total; ++i) {
    const float step = alpha32 * delta_s[i];  // rounded before the add, as numpy's s + α*Δs
    out[i] = s[i] + step;
  }
}

}  // namespace feu::edit
