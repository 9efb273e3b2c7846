#include "known_truth_world.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>

#include "core/error.h"
#include "edit/text_direction.h"

namespace feu::edit::toy {

const char* const kAttributeNames[kAttributes] = {"red hair", "blue skin", "green background", "bright eyes"};

namespace {

constexpr int kPixels = kSide * kSide;
enum Region { kHair, kSkin, kBackground, kEyes, kOther, kRegions };

Region region_of(int y, int x) {
  if (y <= 3) return kHair;
  if ((x <= 1 || x >= 14) && y >= 4) return kBackground;
  if (y >= 5 && y <= 6 && x >= 4 && x <= 11) return kEyes;
  if (y >= 8 && x >= 4 && x <= 11) return kSkin;
  return kOther;
}

int offset(int y, int x, int colour) { return (y * kSide + x) * 3 + colour; }

// Makes a pattern zero-mean within every region and colour, so that it moves
// no attribute's region mean (to first order).
void remove_region_means(std::vector<float>& pattern) {
  for (int region = 0; region < kRegions; ++region) {
    for (int colour = 0; colour < 3; ++colour) {
      double sum = 0;
      int count = 0;
      for (int y = 0; y < kSide; ++y)
        for (int x = 0; x < kSide; ++x)
          if (region_of(y, x) == region) sum += pattern[offset(y, x, colour)], ++count;
      for (int y = 0; y < kSide; ++y)
        for (int x = 0; x < kSide; ++x)
          if (region_of(y, x) == region) pattern[offset(y, x, colour)] -= static_cast<float>(sum / count);
    }
  }
}

std::vector<float> region_pattern(Region region, std::array<float, 3> colours) {
  std::vector<float> pattern(kPixels * 3, 0.0f);
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x)
      if (region_of(y, x) == region)
        for (int c = 0; c < 3; ++c) pattern[offset(y, x, c)] = colours[c];
  return pattern;
}

// Orthonormal basis of R^kEmbed from a seeded Gaussian matrix (Gram-Schmidt);
// returns kEmbed columns, column j at [row * kEmbed + j].
std::vector<float> orthonormal_basis(uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> gauss;
  std::vector<std::vector<double>> columns;
  while (static_cast<int64_t>(columns.size()) < kEmbed) {
    std::vector<double> v(kEmbed);
    for (double& x : v) x = gauss(rng);
    for (const auto& u : columns) {
      double d = 0;
      for (int64_t i = 0; i < kEmbed; ++i) d += u[i] * v[i];
      for (int64_t i = 0; i < kEmbed; ++i) v[i] -= d * u[i];
    }
    double n = 0;
    for (double x : v) n += x * x;
    n = std::sqrt(n);
    if (n < 1e-6) continue;
    for (double& x : v) x /= n;
    columns.push_back(v);
  }
  std::vector<float> basis(kEmbed * kEmbed);
  for (int64_t j = 0; j < kEmbed; ++j)
    for (int64_t i = 0; i < kEmbed; ++i) basis[i * kEmbed + j] = static_cast<float>(columns[j][i]);
  return basis;
}

constexpr int kFeatures = 8;  // 4 attributes + 4 texture responses

}  // namespace

std::array<double, kAttributes> measure(const image::Image& image) {
  std::array<double, kAttributes> sums{};
  std::array<int, kAttributes> counts{};
  for (int y = 0; y < image.height; ++y) {
    for (int x = 0; x < image.width; ++x) {
      const uint8_t* p = &image.rgb[(static_cast<size_t>(y) * image.width + x) * 3];
      switch (region_of(y, x)) {
        case kHair: sums[0] += p[0] / 255.0, ++counts[0]; break;
        case kSkin: sums[1] += p[2] / 255.0, ++counts[1]; break;
        case kBackground: sums[2] += p[1] / 255.0, ++counts[2]; break;
        case kEyes: sums[3] += (p[0] + p[1] + p[2]) / 765.0, ++counts[3]; break;
        default: break;
      }
    }
  }
  for (int k = 0; k < kAttributes; ++k) sums[k] /= counts[k];
  return sums;
}

// ------------------------------------------------------------ generator

ToyGenerator::ToyGenerator() {
  layout_ = StyleLayout{{"b4.conv1", "b4.torgb", "b8.conv0", "b8.conv1", "b8.torgb"}, {0, 6, 9, 15, 21}, {6, 3, 6, 6, 3}};
  const int64_t total = layout_.total_channels();
  attribute_channel_ = {0, 1, 9, 15};
  entangled_channel_ = 10;
  affine_.assign(total * kWDim, 0.0f);
  affine_bias_.assign(total, 1.0f);
  patterns_.assign(total * kPixels * 3, 0.0f);
  std::mt19937_64 rng(7);
  std::normal_distribution<float> gauss;
  std::uniform_int_distribution<int> coin(0, 1);
  auto set_pattern = [&](int64_t channel, const std::vector<float>& pattern) {
    std::copy(pattern.begin(), pattern.end(), patterns_.begin() + channel * kPixels * 3);
  };
  // Attribute channels: one independent w component each.
  set_pattern(0, region_pattern(kHair, {1, 0, 0}));
  set_pattern(1, region_pattern(kSkin, {0, 0, 1}));
  set_pattern(9, region_pattern(kBackground, {0, 1, 0}));
  set_pattern(15, region_pattern(kEyes, {1, 1, 1}));
  const int64_t attribute_w[kAttributes] = {0, 1, 2, 3};
  for (int k = 0; k < kAttributes; ++k) affine_[attribute_channel_[k] * kWDim + attribute_w[k]] = 1.0f;
  // The entangled channel: mostly red hair, partly bright eyes.
  {
    std::vector<float> pattern = region_pattern(kHair, {0.8f, 0, 0});
    const std::vector<float> eyes = region_pattern(kEyes, {0.5f, 0.5f, 0.5f});
    for (size_t i = 0; i < pattern.size(); ++i) pattern[i] += eyes[i];
    set_pattern(entangled_channel_, pattern);
    affine_[entangled_channel_ * kWDim + 4] = 1.0f;
  }
  // Texture channels (every other conv channel): zero region means, driven by w[5..7].
  for (int64_t channel : {2, 3, 4, 5, 11, 12, 13, 14, 16, 17, 18, 19, 20}) {
    std::vector<float> pattern(kPixels * 3);
    for (float& v : pattern) v = coin(rng) ? 0.7f : -0.7f;
    remove_region_means(pattern);
    set_pattern(channel, pattern);
    for (int64_t j = 5; j < kWDim; ++j) affine_[channel * kWDim + j] = gauss(rng) / std::sqrt(3.0f);
  }
  // toRGB channels: faint global tints, driven by w[5..7] too.
  for (int64_t channel : {6, 7, 8, 21, 22, 23}) {
    const int colour = static_cast<int>(channel % 3);
    std::vector<float> pattern(kPixels * 3, 0.0f);
    for (int p = 0; p < kPixels; ++p) pattern[p * 3 + colour] = 0.1f;
    set_pattern(channel, pattern);
    for (int64_t j = 5; j < kWDim; ++j) affine_[channel * kWDim + j] = gauss(rng) / std::sqrt(3.0f);
  }
}

std::vector<float> ToyGenerator::styles_from_ws(const std::vector<float>& ws, bool plus) {
  check(static_cast<int64_t>(ws.size()) == kWDim, ErrorCode::kShapeMismatch, "toy generator takes w of 8 values");
  const int64_t total = layout_.total_channels();
  std::vector<float> s(total);
  for (int64_t c = 0; c < total; ++c) {
    double value = affine_bias_[c];
    for (int64_t j = 0; j < kWDim; ++j) value += static_cast<double>(affine_[c * kWDim + j]) * ws[j];
    s[c] = static_cast<float>(value);
  }
  return s;
}

std::vector<float> ToyGenerator::styles_from_seed(int64_t seed, double psi) {
  // z ~ N(0, I) from std::mt19937_64 (not numpy's stream: a toy), w = psi·z (w_avg = 0).
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  std::normal_distribution<double> gauss;
  std::vector<float> w(kWDim);
  for (float& v : w) v = static_cast<float>(psi * gauss(rng));
  return styles_from_ws(w, false);
}

image::Image ToyGenerator::render_one(const float* s) const {
  static const std::array<std::array<float, 3>, kRegions> base = {{
      {0.0f, -0.3f, -0.4f},   // hair
      {0.4f, 0.1f, -0.1f},    // skin
      {-0.2f, 0.0f, 0.2f},    // background
      {-0.3f, -0.3f, -0.3f},  // eyes
      {0.1f, 0.1f, 0.1f},     // other
  }};
  const int64_t total = layout_.total_channels();
  std::vector<float> pre(kPixels * 3);
  for (int y = 0; y < kSide; ++y)
    for (int x = 0; x < kSide; ++x)
      for (int c = 0; c < 3; ++c) pre[offset(y, x, c)] = base[region_of(y, x)][c];
  for (int64_t channel = 0; channel < total; ++channel) {
    const float weight = 0.15f * (s[channel] - affine_bias_[channel]);
    if (weight == 0.0f) continue;
    const float* pattern = &patterns_[channel * kPixels * 3];
    for (int i = 0; i < kPixels * 3; ++i) pre[i] += weight * pattern[i];
  }
  image::Image out;
  out.width = out.height = kSide;
  out.rgb.resize(kPixels * 3);
  for (int i = 0; i < kPixels * 3; ++i) {
    // StyleCLIP's quantization: (x + 1) * 127.5, clamp, truncate.
    const double value = (std::tanh(pre[i]) + 1.0) * 127.5;
    out.rgb[i] = static_cast<uint8_t>(std::clamp(value, 0.0, 255.0));
  }
  return out;
}

std::vector<image::Image> ToyGenerator::render(const std::vector<float>& styles, int64_t count) {
  const int64_t total = layout_.total_channels();
  check(static_cast<int64_t>(styles.size()) == count * total, ErrorCode::kShapeMismatch, "toy render: wrong size");
  std::vector<image::Image> images;
  for (int64_t n = 0; n < count; ++n) images.push_back(render_one(styles.data() + n * total));
  return images;
}

// ------------------------------------------------------------ text encoder

ToyTextEncoder::ToyTextEncoder(const std::vector<float>& q_columns, const std::vector<float>& face,
                               const std::vector<float>& gap)
    : q_(q_columns), face_(face), gap_(gap) {}

void ToyTextEncoder::check_prompt(const std::string& prompt) const {
  // Words stand in for tokens; the limit is CLIP's 75.
  int64_t words = 0;
  bool in_word = false;
  for (char ch : prompt) {
    const bool space = std::isspace(static_cast<unsigned char>(ch));
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  check(words <= 75, ErrorCode::kInvalidArgument,
        "the text is too long: the prompt has " + std::to_string(words) + " tokens, at most 75 are read");
}

std::vector<float> ToyTextEncoder::encode(const std::vector<std::string>& prompts) {
  ++calls_;
  std::vector<float> out(prompts.size() * kEmbed);
  for (size_t p = 0; p < prompts.size(); ++p) {
    std::string lower = prompts[p];
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    std::vector<double> t(kEmbed);
    for (int64_t i = 0; i < kEmbed; ++i) t[i] = 1.5 * gap_[i] + 1.0 * face_[i];
    for (int k = 0; k < kAttributes; ++k) {
      if (lower.find(kAttributeNames[k]) == std::string::npos) continue;
      for (int64_t i = 0; i < kEmbed; ++i) t[i] += 0.8 * q_[i * kFeatures + k];
    }
    std::mt19937_64 rng(std::hash<std::string>{}(prompts[p]));
    std::normal_distribution<double> gauss;
    std::vector<double> noise(kEmbed);
    double n = 0;
    for (double& x : noise) x = gauss(rng), n += x * x;
    for (int64_t i = 0; i < kEmbed; ++i) out[p * kEmbed + i] = static_cast<float>(t[i] + 0.3 * noise[i] / std::sqrt(n));
  }
  return out;
}

// ------------------------------------------------------------ world

std::vector<double> ToyWorld::features(const image::Image& image) const {
  const std::array<double, kAttributes> attributes = measure(image);
  std::vector<double> f(attributes.begin(), attributes.end());
  for (const std::vector<float>& probe : texture_probes_) {
    double response = 0;
    for (int i = 0; i < kPixels * 3; ++i) response += probe[i] * (image.rgb[i] / 127.5 - 1.0);
    f.push_back(response / kPixels);
  }
  return f;
}

std::vector<float> ToyWorld::encode_image(const image::Image& image) const {
  const std::vector<double> f = features(image);
  std::vector<float> e(kEmbed);
  for (int64_t i = 0; i < kEmbed; ++i) {
    double value = 3.0 * face_[i];
    for (int j = 0; j < kFeatures; ++j) value += q_[i * kFeatures + j] * (f[j] - feature_mean[j]) / feature_std[j];
    e[i] = static_cast<float>(value);
  }
  return unit(e, "toy image embedding");
}

ToyWorld::ToyWorld(const WorldOptions& options) {
  const std::vector<float> basis = orthonormal_basis(11);
  q_.resize(kEmbed * kFeatures);
  face_.resize(kEmbed);
  gap_.resize(kEmbed);
  for (int64_t i = 0; i < kEmbed; ++i) {
    for (int j = 0; j < kFeatures; ++j) q_[i * kFeatures + j] = basis[i * kEmbed + j];
    face_[i] = basis[i * kEmbed + kFeatures];
    gap_[i] = basis[i * kEmbed + kFeatures + 1];
  }
  // Generic texture probes (stripes, checkers), blind to region means.
  for (int kind = 0; kind < 4; ++kind) {
    std::vector<float> probe(kPixels * 3);
    for (int y = 0; y < kSide; ++y)
      for (int x = 0; x < kSide; ++x)
        for (int c = 0; c < 3; ++c) {
          const int v = kind == 0 ? y : kind == 1 ? x : kind == 2 ? x + y : x + 2 * y + c;
          probe[offset(y, x, c)] = (v % 2) ? 1.0f : -1.0f;
        }
    remove_region_means(probe);
    texture_probes_.push_back(probe);
  }
  generator = std::make_shared<ToyGenerator>();
  text = std::make_shared<ToyTextEncoder>(q_, face_, gap_);
  const int64_t total = generator->total_channels();

  // S statistics (population std) from samples.
  std::vector<double> sum(total, 0.0), sum_sq(total, 0.0);
  for (int64_t n = 0; n < options.stats_samples; ++n) {
    const std::vector<float> s = generator->styles_from_seed(100000 + n, options.psi);
    for (int64_t c = 0; c < total; ++c) sum[c] += s[c], sum_sq[c] += static_cast<double>(s[c]) * s[c];
  }
  s_mean.resize(total);
  s_std.resize(total);
  for (int64_t c = 0; c < total; ++c) {
    const double mean = sum[c] / options.stats_samples;
    s_mean[c] = static_cast<float>(mean);
    s_std[c] = static_cast<float>(std::sqrt(std::max(0.0, sum_sq[c] / options.stats_samples - mean * mean)));
  }

  // Corpus images; the encoder's feature standardization is fit on them.
  std::vector<image::Image> corpus_images;
  for (int64_t n = 0; n < options.corpus_size; ++n) {
    corpus_images.push_back(generator->render_one(generator->styles_from_seed(n, options.psi).data()));
  }
  feature_mean.assign(kFeatures, 0.0);
  feature_std.assign(kFeatures, 0.0);
  std::vector<std::vector<double>> all_features;
  for (const auto& img : corpus_images) all_features.push_back(features(img));
  for (const auto& f : all_features)
    for (int j = 0; j < kFeatures; ++j) feature_mean[j] += f[j] / options.corpus_size;
  for (const auto& f : all_features)
    for (int j = 0; j < kFeatures; ++j) feature_std[j] += (f[j] - feature_mean[j]) * (f[j] - feature_mean[j]) / options.corpus_size;
  for (double& v : feature_std) v = std::sqrt(v) + 1e-9;

  std::vector<index::CorpusEntry> entries;
  std::vector<float> embeddings;
  for (int64_t n = 0; n < options.corpus_size; ++n) {
    entries.push_back(index::CorpusEntry{n, "seed" + std::to_string(n) + ".png", 0, 0});
    const std::vector<float> e = encode_image(corpus_images[n]);
    embeddings.insert(embeddings.end(), e.begin(), e.end());
  }
  index::CorpusProvenance provenance;
  provenance.clip_sha256 = text->fingerprint();
  auto corpus = std::make_shared<index::CorpusIndex>(
      index::CorpusIndex::build(std::move(entries), std::move(embeddings), kEmbed, index::IndexOptions{}, provenance));

  // fs3 as StyleCLIP measures it: every conv channel at μ ± 5σ on M images.
  const StyleLayout& layout = generator->layout();
  std::vector<std::vector<float>> bases;
  for (int64_t m = 0; m < options.fs3_images; ++m) bases.push_back(generator->styles_from_seed(200000 + m, options.psi));
  for (size_t layer = 0; layer < layout.layer_names.size(); ++layer) {
    if (layout.layer_names[layer].find("conv") == std::string::npos) continue;
    for (int64_t c = layout.layer_offsets[layer]; c < layout.layer_offsets[layer] + layout.layer_channels[layer]; ++c) {
      covered.push_back(c);
      std::vector<double> mean_direction(kEmbed, 0.0);
      for (const std::vector<float>& base : bases) {
        std::vector<float> minus = base, plus = base;
        minus[c] = s_mean[c] - 5 * s_std[c];
        plus[c] = s_mean[c] + 5 * s_std[c];
        const std::vector<float> e_minus = encode_image(generator->render_one(minus.data()));
        const std::vector<float> e_plus = encode_image(generator->render_one(plus.data()));
        std::vector<float> d(kEmbed);
        for (int64_t i = 0; i < kEmbed; ++i) d[i] = e_plus[i] - e_minus[i];
        const double length = norm(d.data(), kEmbed);
        if (length == 0) continue;  // no visible change on this image
        for (int64_t i = 0; i < kEmbed; ++i) mean_direction[i] += d[i] / length;
      }
      std::vector<float> row(kEmbed);
      for (int64_t i = 0; i < kEmbed; ++i) row[i] = static_cast<float>(mean_direction[i]);
      const double length = norm(row.data(), kEmbed);
      if (length > 0) row = unit(row, "fs3 row");  // a dead channel keeps a zero row
      fs3.insert(fs3.end(), row.begin(), row.end());
    }
  }
  auto built = std::make_shared<Artifacts>();
  built->version = "toy-1";
  built->generator_sha256 = generator->fingerprint();
  built->clip_sha256 = text->fingerprint();
  built->corpus = corpus;
  built->mapper = std::make_shared<StyleDirectionMapper>(fs3, kEmbed, covered, s_std, layout);
  artifacts = built;
}

}  // namespace feu::edit::toy
