#include "image/tensor_image.h"

#include <ATen/ATen.h>

#include <cstring>

#include "core/error.h"

namespace feu::image {

at::Tensor quantize_tensor(const at::Tensor& img, Quantize quantize) {
  check(img.dim() == 4 && img.size(1) == 3, ErrorCode::kShapeMismatch,
        "images_from_tensor: expected a [N, 3, H, W] tensor");
  at::Tensor x = img.detach().to(at::kFloat);
  // Both conventions scale [-1,1] to [0,255]; they differ in the offset (the
  // NVlabs one rounds to nearest, StyleCLIP's truncates half a level lower).
  x = quantize == Quantize::kNvlabs ? x * 127.5f + 128.0f : (x + 1.0f) * 127.5f;
  return x.clamp(0.0, 255.0).to(at::kByte);  // float -> uint8 truncates toward zero
}

std::vector<Image> images_from_tensor(const at::Tensor& img, Quantize quantize) {
  at::Tensor hwc = quantize_tensor(img, quantize).permute({0, 2, 3, 1}).contiguous().to(at::kCPU);
  const int64_t n = hwc.size(0), h = hwc.size(1), w = hwc.size(2);
  std::vector<Image> images(n);
  const uint8_t* base = hwc.data_ptr<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    images[i].width = static_cast<int>(w);
    images[i].height = static_cast<int>(h);
    images[i].rgb.assign(base + i * h * w * 3, base + (i + 1) * h * w * 3);
  }
  return images;
}

}  // namespace feu::image
