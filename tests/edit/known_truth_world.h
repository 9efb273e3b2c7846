// A small world where the truth is known, for end-to-end tests of the edit
// engine (issue 5 acceptance) and for its benchmark.
//
// Generator (ToyGenerator): w [8] -> S (5 layers named like StyleGAN2's:
// 3 conv layers of 6 channels, 2 toRGB layers of 3) -> a 16x16 RGB face
// cartoon: pixel = tanh(base + sum_c 0.15 (s_c - b_c) pattern_c). Chosen conv
// channels paint one attribute each (their pattern is +1 on one region in one
// colour), one channel is entangled (mostly red hair, partly bright eyes), the
// other conv channels paint zero-mean textures that leave every attribute's
// region mean unchanged, toRGB channels tint the whole image (never edited).
//
//   attribute          region                      measured as
//   "red hair"         rows 0-3                    mean R
//   "blue skin"        rows 8-15, cols 4-11        mean B
//   "green background" rows 4-15, cols 0-1, 14-15  mean G
//   "bright eyes"      rows 5-6, cols 4-11         mean (R+G+B)/3
//
// Image encoder (ToyWorld::encode_image, CLIP-shaped): features = the four
// attribute measurements + four texture responses, standardized, embedded as
// unit(face + Q·features) in 16-d (Q orthonormal columns, `face` a shared
// direction orthogonal to them, so all images sit in a cone like CLIP's).
// Text encoder (ToyTextEncoder): a prompt embeds as
// gap + face + 0.8·sum of Q·u_k over the attribute phrases it contains +
// 0.3·(unit noise seeded by the whole prompt): `gap` is a text-only direction
// (CLIP's modality gap), the noise stands for template wording and averages
// out over the 79 templates.
//
// Nothing here knows about the engine's method: fs3 is measured from the
// generator and encoder exactly as StyleCLIP does (μ ± 5σ per channel on M
// images, three normalizations), S statistics from samples, the corpus index
// from encoded samples.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edit/engine.h"
#include "edit/models.h"

namespace feu::edit::toy {

constexpr int kSide = 16;
constexpr int64_t kWDim = 8;
constexpr int64_t kEmbed = 16;
constexpr int kAttributes = 4;
extern const char* const kAttributeNames[kAttributes];

// Measures the four attributes of an 8-bit image (values in [0, 1]).
std::array<double, kAttributes> measure(const image::Image& image);

class ToyGenerator : public StyleGenerator {
 public:
  ToyGenerator();
  int64_t w_dim() const override { return kWDim; }
  int64_t num_ws() const override { return 1; }
  const StyleLayout& layout() const override { return layout_; }
  int resolution() const override { return kSide; }
  const std::string& fingerprint() const override { return fingerprint_; }
  std::vector<float> styles_from_seed(int64_t seed, double psi) override;
  std::vector<float> styles_from_ws(const std::vector<float>& ws, bool plus) override;
  std::vector<image::Image> render(const std::vector<float>& styles, int64_t count) override;
  image::Image render_one(const float* s) const;

  // Flat-S index of the channel that controls attribute k, and of the entangled one.
  int64_t attribute_channel(int k) const { return attribute_channel_[k]; }
  int64_t entangled_channel() const { return entangled_channel_; }

 private:
  StyleLayout layout_;
  std::string fingerprint_ = "toy-generator-1";
  std::vector<float> affine_;       // [total, w_dim]
  std::vector<float> affine_bias_;  // [total]
  std::vector<float> patterns_;     // [total, side*side*3]
  std::array<int64_t, kAttributes> attribute_channel_{};
  int64_t entangled_channel_ = 0;
};

class ToyTextEncoder : public TextEncoder {
 public:
  explicit ToyTextEncoder(const std::vector<float>& q_columns /*[embed, features]*/,
                          const std::vector<float>& face /*[embed]*/, const std::vector<float>& gap /*[embed]*/);
  int64_t embed_dim() const override { return kEmbed; }
  const std::string& fingerprint() const override { return fingerprint_; }
  void check_prompt(const std::string& prompt) const override;
  std::vector<float> encode(const std::vector<std::string>& prompts) override;
  int64_t calls() const { return calls_; }

 private:
  std::vector<float> q_, face_, gap_;
  std::string fingerprint_ = "toy-text-1";
  int64_t calls_ = 0;
};

struct WorldOptions {
  int64_t corpus_size = 2000;     // encoded samples in the retrieval index
  int64_t stats_samples = 2000;   // samples for s_mean / s_std
  int64_t fs3_images = 16;        // M images per channel for fs3
  double psi = 1.0;               // truncation of the samples
};

class ToyWorld {
 public:
  explicit ToyWorld(const WorldOptions& options = {});

  // The CLIP-shaped image encoder: unit embedding [kEmbed].
  std::vector<float> encode_image(const image::Image& image) const;

  std::shared_ptr<ToyGenerator> generator;
  std::shared_ptr<ToyTextEncoder> text;
  std::shared_ptr<const Artifacts> artifacts;  // corpus index + fs3/σ, fingerprints of the toy models
  std::vector<float> fs3;                      // [covered, kEmbed]
  std::vector<int64_t> covered;                // flat-S index of each fs3 row
  std::vector<float> s_mean, s_std;            // [total]
  // Standardization of the raw features (fit on the corpus samples).
  std::vector<double> feature_mean, feature_std;

 private:
  std::vector<double> features(const image::Image& image) const;
  std::vector<float> q_;      // [kEmbed, features] orthonormal columns
  std::vector<float> face_;   // [kEmbed]
  std::vector<float> gap_;    // [kEmbed]
  std::vector<std::vector<float>> texture_probes_;  // zero-mean patterns the encoder responds to
};

}  // namespace feu::edit::toy
