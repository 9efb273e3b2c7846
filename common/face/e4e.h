// The e4e encoder (encoder4editing `models/encoders/psp_encoders.py`
// `Encoder4Editing` over IR-SE50, eval mode) ported to ATen: an FFHQ-aligned
// 256² face in, its W+ code out (encoder(x) + latent_avg, as e4e's pSp wrapper
// does with start_from_latent_avg).
//
// Weights come from the released `e4e_ffhq_encode.pt` (a torch.save zip read by
// feu's restricted reader: nothing in the file is executed) or from random
// initialization at any widths. The architecture is read from the tensors'
// shapes: stage widths (64/128/256/512 released), w_dim and the style count.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace feu::face {

// IR-SE50's four stages have 3, 4, 14 and 3 units; the first unit of each
// stage has stride 2. The FPN taps the body after units 6, 20 and 23.
struct E4eConfig {
  std::array<int64_t, 4> stage_widths = {64, 128, 256, 512};  // channels of each body stage
  int64_t w_dim = 512;                                        // width of a style (W) vector
  int n_styles = 18;                                          // W+ rows: 2·log2(stylegan_size) − 2
  int se_reduction = 16;                                      // SE hidden units = channels / 16

  // The released FFHQ encoder.
  static E4eConfig ffhq();
  // Throws invalid_argument naming the first bad field.
  void validate() const;
  // Every state-dict key (with the "encoder." prefix) and its shape, in
  // e4e's state_dict order.
  std::vector<std::pair<std::string, std::vector<int64_t>>> expected_shapes() const;
};

class E4eEncoder {
 public:
  // `tensors`: the checkpoint's state_dict (keys "encoder.*"; other keys such
  // as the bundled "decoder.*" generator are ignored), `latent_avg`
  // [n_styles, w_dim]. The config is inferred from the shapes and every
  // expected key is checked; the first missing or misshaped one is named.
  // `origin` names the source in errors.
  static E4eEncoder from_state_dict(const std::map<std::string, at::Tensor>& tensors,
                                    const at::Tensor& latent_avg,
                                    const std::string& origin,
                                    at::Device device = at::kCPU);
  // Reads a torch.save checkpoint ({state_dict, latent_avg, opts}), or an
  // HDF5 file written by write_random (told apart by the file's signature).
  // Errors: not_found, corrupt_file, shape_mismatch naming the file.
  static E4eEncoder load(const std::string& path, at::Device device = at::kCPU);
  // Random weights (conv/linear ~ PyTorch's default-like scaled normals,
  // BatchNorm statistics and affines near identity, latent_avg ~ N(0, 1)):
  // deterministic for a seed; for demos and benchmarks at real widths.
  static E4eEncoder random(const E4eConfig& config, uint64_t seed, at::Device device = at::kCPU);
  // Writes the weights random(config, seed) has to an HDF5 file load() reads
  // (the demo's encoder), atomically.
  static void write_random(const E4eConfig& config, uint64_t seed, const std::string& path);

  const E4eConfig& config() const;
  at::Device device() const;
  // Parameters counted as in the checkpoint's encoder (BatchNorm statistics excluded).
  int64_t parameter_count() const;

  // Aligned faces, uint8 [N, 256, 256, 3] (HWC, RGB, any device) -> W+
  // [N, n_styles, w_dim] float32 on device(). Applies e4e's
  // transform_inference (/255, mean 0.5, std 0.5).
  at::Tensor encode_aligned(const at::Tensor& faces_u8) const;
  // Normalized input [N, 3, 256, 256] float32 -> W+ [N, n_styles, w_dim].
  at::Tensor encode(const at::Tensor& input) const;

  struct Impl;

 private:
  explicit E4eEncoder(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace feu::face
