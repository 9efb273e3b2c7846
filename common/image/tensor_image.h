// Generator output tensors -> 8-bit images.
#pragma once

#include <ATen/core/Tensor.h>

#include <vector>

#include "image/codec.h"

namespace feu::image {

// How a [-1,1] generator output becomes uint8. The two references differ by
// half a level, which matters for bit-exact comparisons:
enum class Quantize {
  kNvlabs,     // stylegan2-ada-pytorch gen_images.py: x * 127.5 + 128, clamp 0..255, truncate
  kStyleClip,  // StyleCLIP: (x + 1) * 127.5, clamp 0..255, truncate
};

// img: [N, 3, H, W] float, any device, nominally in [-1, 1]. Returns N images.
std::vector<Image> images_from_tensor(const at::Tensor& img, Quantize quantize);

// The same quantization kept as a tensor: [N, 3, H, W] uint8 on img's device.
at::Tensor quantize_tensor(const at::Tensor& img, Quantize quantize);

}  // namespace feu::image
