// CLIP preprocessing, bit-compatible with torchvision's Resize + CenterCrop on
// a PIL image (Pillow's ImagingResample, specs/clip.md §6).
#include "clip/preprocess.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "image/pillow_resample.h"
#include "image/tensor_image.h"

namespace feu::clip {

const float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

namespace {

// Output size of Resize(short side = resolution): the long side is
// int(resolution * long / short), truncated (torchvision).
void resized_size(int width, int height, int resolution, int* out_w, int* out_h) {
  if (width <= height) {
    *out_w = resolution;
    *out_h = static_cast<int>(static_cast<double>(resolution) * height / width);
  } else {
    *out_h = resolution;
    *out_w = static_cast<int>(static_cast<double>(resolution) * width / height);
  }
}

// CenterCrop offset: int(round((size - crop) / 2)) with Python's
// round-half-to-even (std::nearbyint in the default rounding mode).
int crop_offset(int size, int crop) { return static_cast<int>(std::nearbyint((size - crop) / 2.0)); }

}  // namespace

image::Image resize_and_crop(const image::Image& input, int resolution) {
  check(input.width > 0 && input.height > 0 &&
            input.rgb.size() == static_cast<size_t>(input.width) * input.height * 3,
        ErrorCode::kInvalidArgument, "preprocess_image: empty or malformed image");
  check(resolution > 0, ErrorCode::kInvalidArgument, "preprocess_image: resolution must be positive");
  int out_w = 0, out_h = 0;
  resized_size(input.width, input.height, resolution, &out_w, &out_h);
  const int top = crop_offset(out_h, resolution);
  const int left = crop_offset(out_w, resolution);
  // Only the crop is resampled: the same pixels as cropping Pillow's full resize.
  return image::pillow_resize_region(input, out_w, out_h, image::PillowFilter::kBicubic,
                                     {left, top, left + resolution, top + resolution});
}

namespace {
// [N, 3, R, R] values in 0..255 -> /255, CLIP mean/std.
at::Tensor normalize_pixels(const at::Tensor& x) {
  at::Tensor mean = at::tensor(std::vector<float>(kClipMean, kClipMean + 3), at::kFloat).to(x.device()).view({1, 3, 1, 1});
  at::Tensor std = at::tensor(std::vector<float>(kClipStd, kClipStd + 3), at::kFloat).to(x.device()).view({1, 3, 1, 1});
  return (x / 255.0f - mean) / std;
}

// Dense [out, in] matrix of one axis' Pillow fixed-point weights (integers
// stored as float64), rows for output pixels [offset, offset + count).
at::Tensor fixed_point_matrix(int in_size, int out_size, int offset, int count) {
  const image::PillowAxis axis = image::pillow_axis(in_size, out_size, image::PillowFilter::kBicubic);
  at::Tensor m = at::zeros({count, in_size}, at::kDouble);
  auto a = m.accessor<double, 2>();
  for (int i = 0; i < count; ++i)
    for (int k = 0; k < axis.count[offset + i]; ++k)
      a[i][axis.first[offset + i] + k] = axis.weights[static_cast<size_t>(offset + i) * axis.taps + k];
  return m;
}

// Pillow's accumulate-and-shift on float64 sums of integer products: every
// product is below 2^31 and a sum of a few thousand of them stays far below
// 2^53, so the float64 matmul is exact whatever its summation order.
at::Tensor pillow_round(const at::Tensor& acc) {
  constexpr int bits = image::kPillowPrecisionBits;
  return at::floor((acc + double(1 << (bits - 1))) / double(1 << bits)).clamp_(0.0, 255.0);
}
}  // namespace

at::Tensor preprocess_image(const image::Image& image, int resolution) {
  image::Image crop = resize_and_crop(image, resolution);
  at::Tensor hwc = at::from_blob(crop.rgb.data(), {resolution, resolution, 3}, at::kByte);
  at::Tensor chw = hwc.permute({2, 0, 1}).to(at::kFloat).unsqueeze(0);
  return normalize_pixels(chw).squeeze(0).contiguous();
}

at::Tensor preprocess_generated(const at::Tensor& img, int resolution) {
  check(img.dim() == 4 && img.size(1) == 3, ErrorCode::kShapeMismatch,
        "preprocess_generated: expected [N, 3, H, W] images");
  check(resolution > 0, ErrorCode::kInvalidArgument, "preprocess_generated: resolution must be positive");
  const int height = static_cast<int>(img.size(2)), width = static_cast<int>(img.size(3));
  // StyleCLIP's uint8 conversion comes first: the reference resizes a PIL image.
  at::Tensor x = image::quantize_tensor(img, image::Quantize::kStyleClip);
  int out_w = 0, out_h = 0;
  resized_size(width, height, resolution, &out_w, &out_h);
  const int top = crop_offset(out_h, resolution);
  const int left = crop_offset(out_w, resolution);
  // Pillow's two passes as matrix multiplies over the output pixels the crop
  // keeps, in exact integer arithmetic: bit-identical to preprocess_image.
  x = x.to(at::kDouble);
  if (out_w != width) {
    at::Tensor wh = fixed_point_matrix(width, out_w, left, resolution).to(x.device());
    x = pillow_round(at::matmul(x, wh.t()));  // [N,3,H,W] @ [W,R] -> [N,3,H,R]
  } else {
    x = x.narrow(3, left, resolution);
  }
  if (out_h != height) {
    at::Tensor wv = fixed_point_matrix(height, out_h, top, resolution).to(x.device());
    x = pillow_round(at::matmul(wv, x));  // [R,H] @ [N,3,H,R] -> [N,3,R,R]
  } else {
    x = x.narrow(2, top, resolution);
  }
  x = x.to(at::kFloat);
  return normalize_pixels(x).contiguous();
}

}  // namespace feu::clip
