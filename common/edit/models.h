// What the engine needs from its models, as two small interfaces, so that the
// edit pipeline is plain C++ and the same code runs with StyleGAN2 + CLIP
// (engine_models.cpp, ATen) or with the tiny known-truth models of the tests.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "edit/mapping.h"
#include "image/codec.h"

namespace feu::edit {

// A text encoder in CLIP's joint space (CLIP's text tower + tokenizer).
class TextEncoder {
 public:
  virtual ~TextEncoder() = default;
  virtual int64_t embed_dim() const = 0;
  // Identifies the weights (sha256 of the file); part of the text-cache key
  // and compared with the artifact manifest.
  virtual const std::string& fingerprint() const = 0;
  // invalid_argument when `prompt` does not fit the encoder (CLIP: 75 tokens).
  virtual void check_prompt(const std::string& prompt) const = 0;
  // Raw (not normalized) embeddings of the prompts: [prompts.size(), embed_dim] row-major.
  virtual std::vector<float> encode(const std::vector<std::string>& prompts) = 0;
};

// A style-based generator: latents -> flat S codes -> images.
class StyleGenerator {
 public:
  virtual ~StyleGenerator() = default;
  virtual int64_t w_dim() const = 0;
  virtual int64_t num_ws() const = 0;
  // The layers of flat S; total_channels() = layout().total_channels().
  virtual const StyleLayout& layout() const = 0;
  int64_t total_channels() const { return layout().total_channels(); }
  virtual int resolution() const = 0;
  // Identifies the weights; compared with the artifact manifest.
  virtual const std::string& fingerprint() const = 0;
  // Flat S [total] of numpy RandomState(seed).randn z, mapped with truncation psi.
  virtual std::vector<float> styles_from_seed(int64_t seed, double psi) = 0;
  // Flat S [total] of a W code [w_dim] (plus = false) or a W+ code [num_ws, w_dim].
  virtual std::vector<float> styles_from_ws(const std::vector<float>& ws, bool plus) = 0;
  // Renders `count` flat S codes [count, total] (constant noise) to 8-bit RGB images.
  virtual std::vector<image::Image> render(const std::vector<float>& styles, int64_t count) = 0;
  // The same at a smaller power-of-two `size` (a preview). This default
  // renders in full and scales down (Lanczos); StyleGAN2 stops synthesis at
  // that block and returns its skip image, skipping the larger blocks' cost.
  virtual std::vector<image::Image> render_preview(const std::vector<float>& styles, int64_t count, int size);
};

// A face encoder into the generator's W+ (e4e): FFHQ-aligned faces in.
class FaceEncoder {
 public:
  virtual ~FaceEncoder() = default;
  virtual int64_t num_ws() const = 0;
  virtual int64_t w_dim() const = 0;
  // Identifies the weights (sha256 of the file; "" for in-memory weights).
  virtual const std::string& fingerprint() const = 0;
  // Aligned 256x256 RGB faces -> W+ [faces.size(), num_ws, w_dim] row-major.
  virtual std::vector<float> encode(const std::vector<image::Image>& faces) = 0;
};

}  // namespace feu::edit
