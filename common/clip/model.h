// OpenAI CLIP (clip/model.py), ViT image tower + text transformer, in ATen.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

namespace feu::clip {

struct ClipConfig {
  int64_t embed_dim = 512;          // joint embedding size (text_projection.shape[1])
  int64_t image_resolution = 224;   // patch * grid
  int64_t vision_width = 768;
  int64_t vision_layers = 12;
  int64_t vision_patch_size = 32;
  int64_t context_length = 77;
  int64_t vocab_size = 49408;
  int64_t text_width = 512;
  int64_t text_layers = 12;
  // Heads are width / 64 as in build_model.
  int64_t vision_heads() const { return vision_width / 64; }
  int64_t text_heads() const { return text_width / 64; }

  static ClipConfig vit_b_32();
  // The small model of the tests and the embedded demo: embed 32, 32x32
  // images with 8x8 patches, widths 128 x 2 layers. `vocab_size` must be at
  // least the tokenizer's vocab_size() (end id must be the largest id).
  static ClipConfig small(int64_t vocab_size = 49408);
  std::string to_json() const;
};

class ClipModel {
 public:
  // Loads OpenAI's TorchScript archive (.pt, read by parameter name, its graph
  // never run) or an feu HDF5 file (.h5, written by save_h5). Hyper-parameters
  // are inferred from the weight shapes. fp16 weights become fp32 unless
  // `fp16` (CUDA only: then the reference's mixed layout — conv/linear
  // weights fp16, embeddings and LayerNorm parameters fp32 — with fp16
  // activations and LayerNorm computed in fp32, as OpenAI's fp16 model).
  // Errors: not_found, corrupt_file, not_found naming a missing parameter,
  // shape_mismatch naming a parameter, unsupported (fp16 on CPU).
  static ClipModel load(const std::string& path, at::Device device, bool fp16 = false);
  // Random weights (initialization as clip/model.py initialize_parameters).
  static ClipModel random(const ClipConfig& config, uint64_t seed, at::Device device);
  // HDF5: one dataset per state-dict key (float32), config as root attribute.
  void save_h5(const std::string& path) const;

  const ClipConfig& config() const { return config_; }
  // sha256 of the file the weights were loaded from / last saved to ("" for
  // random weights never saved).
  const std::string& fingerprint() const { return fingerprint_; }
  at::Device device() const;
  bool fp16() const { return fp16_; }

  // pixels: [N, 3, R, R] normalized (preprocess_image/preprocess_generated),
  // any float dtype/device (moved to the model's). Returns [N, E] float32 raw
  // (not L2-normalized) features on the model's device.
  at::Tensor encode_image(const at::Tensor& pixels) const;
  // tokens: [M, context_length] integer ids. Returns [M, E] float32 raw.
  at::Tensor encode_text(const at::Tensor& tokens) const;
  // exp(logit_scale).
  double logit_scale() const;

  // State-dict access (tests, converters): name -> tensor.
  const std::map<std::string, at::Tensor>& parameters() const { return params_; }

 private:
  ClipModel() = default;
  static ClipModel from_state_dict(std::map<std::string, at::Tensor> params, at::Device device,
                                   bool fp16, const std::string& source);
  const at::Tensor& param(const std::string& name) const;
  at::Tensor transformer(at::Tensor x, const std::string& prefix, int64_t layers, int64_t heads,
                         const at::Tensor& mask, const at::Tensor& pooled) const;

  ClipConfig config_;
  std::map<std::string, at::Tensor> params_;
  at::Tensor causal_mask_;  // [context, context], 0 / -inf
  std::string fingerprint_;
  bool fp16_ = false;
};

}  // namespace feu::clip
