// CLIP preprocessing, bit-compatible with torchvision's Resize + CenterCrop on
// a PIL image (Pillow's ImagingResample, specs/clip.md §6).
#include "clip/preprocess.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "image/tensor_image.h"

namespace feu::clip {

const float kClipMean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
const float kClipStd[3] = {0.26862954f, 0.26130258f, 0.27577711f};

namespace {

// Pillow's bicubic kernel (a = -0.5, support 2).
double bicubic(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// Pillow's precompute_coeffs for one axis: output pixel i reads inputs
// first[i] .. first[i]+weights[i].size()-1 with normalized weights. When
// downscaling the kernel is stretched by the scale (antialiasing).
struct AxisFilter {
  std::vector<int> first;
  std::vector<std::vector<double>> weights;
};

AxisFilter axis_filter(int in_size, int out_size) {
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = 2.0 * filter_scale;
  AxisFilter filter;
  filter.first.resize(out_size);
  filter.weights.resize(out_size);
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as Pillow
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    std::vector<double>& w = filter.weights[i];
    double total = 0.0;
    for (int x = xmin; x < xmax; ++x) {
      w.push_back(bicubic((x - center + 0.5) / filter_scale));
      total += w.back();
    }
    if (total != 0.0)
      for (double& v : w) v /= total;
    filter.first[i] = xmin;
  }
  return filter;
}

// Pillow's 8-bit fixed point: 22 fractional bits, rounded half away from zero.
constexpr int kPrecisionBits = 32 - 8 - 2;

std::vector<std::vector<int32_t>> fixed_point(const AxisFilter& filter) {
  std::vector<std::vector<int32_t>> out(filter.weights.size());
  for (size_t i = 0; i < filter.weights.size(); ++i)
    for (double w : filter.weights[i])
      out[i].push_back(w < 0 ? static_cast<int32_t>(-0.5 + w * (1 << kPrecisionBits))
                             : static_cast<int32_t>(0.5 + w * (1 << kPrecisionBits)));
  return out;
}

inline uint8_t clip8(int32_t v) {
  if (v >= (1 << kPrecisionBits << 8)) return 255;
  if (v <= 0) return 0;
  return static_cast<uint8_t>(v >> kPrecisionBits);
}

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

  // A pass is skipped when its dimension does not change (Pillow).
  image::Image current = input;
  if (out_w != input.width || out_h != input.height) {
    const AxisFilter vfilter = axis_filter(input.height, out_h);
    // Horizontal pass first, only over the rows the vertical pass reads.
    const int row_first = vfilter.first.front();
    const int row_last = vfilter.first.back() + static_cast<int>(vfilter.weights.back().size());
    if (out_w != input.width) {
      const AxisFilter hfilter = axis_filter(input.width, out_w);
      const auto hk = fixed_point(hfilter);
      image::Image temp;
      temp.width = out_w;
      temp.height = row_last - row_first;
      temp.rgb.resize(static_cast<size_t>(temp.width) * temp.height * 3);
      for (int y = 0; y < temp.height; ++y) {
        const uint8_t* in_row = input.rgb.data() + static_cast<size_t>(y + row_first) * input.width * 3;
        uint8_t* out_row = temp.rgb.data() + static_cast<size_t>(y) * out_w * 3;
        for (int x = 0; x < out_w; ++x) {
          int32_t acc[3] = {1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1), 1 << (kPrecisionBits - 1)};
          const uint8_t* src = in_row + static_cast<size_t>(hfilter.first[x]) * 3;
          for (size_t k = 0; k < hk[x].size(); ++k)
            for (int c = 0; c < 3; ++c) acc[c] += src[k * 3 + c] * hk[x][k];
          for (int c = 0; c < 3; ++c) out_row[x * 3 + c] = clip8(acc[c]);
        }
      }
      current = std::move(temp);
    } else {
      // No horizontal pass: the vertical pass reads the input rows directly.
      current.height = row_last - row_first;
      current.rgb.assign(input.rgb.begin() + static_cast<size_t>(row_first) * input.width * 3,
                         input.rgb.begin() + static_cast<size_t>(row_last) * input.width * 3);
    }
    if (out_h != input.height) {
      const auto vk = fixed_point(vfilter);
      image::Image out;
      out.width = current.width;
      out.height = out_h;
      out.rgb.resize(static_cast<size_t>(out.width) * out_h * 3);
      const size_t stride = static_cast<size_t>(current.width) * 3;
      for (int y = 0; y < out_h; ++y) {
        const uint8_t* src = current.rgb.data() + static_cast<size_t>(vfilter.first[y] - row_first) * stride;
        uint8_t* out_row = out.rgb.data() + static_cast<size_t>(y) * stride;
        for (size_t x = 0; x < stride; ++x) {
          int32_t acc = 1 << (kPrecisionBits - 1);
          for (size_t k = 0; k < vk[y].size(); ++k) acc += src[k * stride + x] * vk[y][k];
          out_row[x] = clip8(acc);
        }
      }
      current = std::move(out);
    }
  }

  const int top = crop_offset(current.height, resolution);
  const int left = crop_offset(current.width, resolution);
  image::Image crop;
  crop.width = crop.height = resolution;
  crop.rgb.resize(static_cast<size_t>(resolution) * resolution * 3);
  for (int y = 0; y < resolution; ++y)
    std::copy_n(current.rgb.data() + (static_cast<size_t>(y + top) * current.width + left) * 3, resolution * 3,
                crop.rgb.data() + static_cast<size_t>(y) * resolution * 3);
  return crop;
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
at::Tensor fixed_point_matrix(const AxisFilter& filter, int in_size, int offset, int count) {
  const auto fixed = fixed_point(filter);
  at::Tensor m = at::zeros({count, in_size}, at::kDouble);
  auto a = m.accessor<double, 2>();
  for (int i = 0; i < count; ++i)
    for (size_t k = 0; k < fixed[offset + i].size(); ++k)
      a[i][filter.first[offset + i] + static_cast<int>(k)] = fixed[offset + i][k];
  return m;
}

// Pillow's accumulate-and-shift on float64 sums of integer products: every
// product is below 2^31 and a sum of a few thousand of them stays far below
// 2^53, so the float64 matmul is exact whatever its summation order.
at::Tensor pillow_round(const at::Tensor& acc) {
  return at::floor((acc + double(1 << (kPrecisionBits - 1))) / double(1 << kPrecisionBits)).clamp_(0.0, 255.0);
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
    at::Tensor wh = fixed_point_matrix(axis_filter(width, out_w), width, left, resolution).to(x.device());
    x = pillow_round(at::matmul(x, wh.t()));  // [N,3,H,W] @ [W,R] -> [N,3,H,R]
  } else {
    x = x.narrow(3, left, resolution);
  }
  if (out_h != height) {
    at::Tensor wv = fixed_point_matrix(axis_filter(height, out_h), height, top, resolution).to(x.device());
    x = pillow_round(at::matmul(wv, x));  // [R,H] @ [N,3,H,R] -> [N,3,R,R]
  } else {
    x = x.narrow(2, top, resolution);
  }
  x = x.to(at::kFloat);
  return normalize_pixels(x).contiguous();
}

}  // namespace feu::clip
