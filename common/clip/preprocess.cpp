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

using image::NativeImage;
using image::PixelMode;

// The rectangle [x0, x1) x [y0, y1) of a native image, in its mode.
NativeImage crop_native(const NativeImage& in, const image::PixelRect& r) {
  NativeImage out;
  out.width = r.width();
  out.height = r.height();
  out.mode = in.mode;
  out.palette = in.palette;
  const size_t channels = image::mode_channels(in.mode);
  for (int y = r.y0; y < r.y1; ++y) {
    const size_t from = static_cast<size_t>(y) * in.width + r.x0;
    if (in.mode == PixelMode::kInt32)
      out.wide.insert(out.wide.end(), in.wide.begin() + from, in.wide.begin() + from + r.width());
    else
      out.samples.insert(out.samples.end(), in.samples.begin() + from * channels,
                         in.samples.begin() + (from + r.width()) * channels);
  }
  return out;
}

// Pillow's NEAREST resize (ImagingScaleAffine): source positions accumulate
// the scale from half a step in double precision, truncated.
NativeImage nearest_region(const NativeImage& in, int out_w, int out_h, const image::PixelRect& r) {
  auto positions = [](int in_size, int out_size, int first, int last) {
    const double step = static_cast<double>(in_size) / out_size;
    std::vector<int> at;
    double position = step * 0.5;
    for (int i = 0; i < last; ++i, position += step)
      if (i >= first) at.push_back(std::min(static_cast<int>(position), in_size - 1));
    return at;
  };
  const std::vector<int> xs = positions(in.width, out_w, r.x0, r.x1);
  const std::vector<int> ys = positions(in.height, out_h, r.y0, r.y1);
  NativeImage out;
  out.width = r.width();
  out.height = r.height();
  out.mode = in.mode;
  out.palette = in.palette;
  const size_t channels = image::mode_channels(in.mode);
  for (int y : ys)
    for (int x : xs) {
      const size_t from = static_cast<size_t>(y) * in.width + x;
      if (in.mode == PixelMode::kInt32)
        out.wide.push_back(in.wide[from]);
      else
        out.samples.insert(out.samples.end(), in.samples.begin() + from * channels,
                           in.samples.begin() + (from + 1) * channels);
    }
  return out;
}

// Channels [first, first + 3) of a native image (repeating the last one when
// the mode has fewer) as an RGB8 image, so that pillow_resize_region, which
// resamples each channel alone, resizes any 8-bit mode.
image::Image channels_as_rgb(const std::vector<uint8_t>& samples, int width, int height, int channels,
                             const int (&pick)[3]) {
  image::Image out;
  out.width = width;
  out.height = height;
  const size_t pixels = static_cast<size_t>(width) * height;
  out.rgb.resize(pixels * 3);
  for (size_t i = 0; i < pixels; ++i)
    for (int c = 0; c < 3; ++c) out.rgb[i * 3 + c] = samples[i * channels + pick[c]];
  return out;
}

// Pillow's MULDIV255 (a * b / 255, rounded).
inline uint8_t muldiv255(int a, int b) {
  const int t = a * b + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

// RGBA / LA: Image.resize converts to RGBa / La (colour times alpha), resizes,
// and converts back (colour * 255 / alpha, truncated, kept as is where alpha
// is 0 or 255); convert("RGB") then drops alpha.
image::Image resize_premultiplied(const NativeImage& in, int out_w, int out_h, const image::PixelRect& r) {
  const int channels = image::mode_channels(in.mode);
  const bool gray = in.mode == PixelMode::kGrayAlpha;
  const int alpha_channel = channels - 1;
  std::vector<uint8_t> premultiplied = in.samples;
  const size_t pixels = static_cast<size_t>(in.width) * in.height;
  for (size_t i = 0; i < pixels; ++i) {
    uint8_t* p = premultiplied.data() + i * channels;
    for (int c = 0; c < alpha_channel; ++c) p[c] = muldiv255(p[c], p[alpha_channel]);
  }
  const int colour_pick[3] = {0, gray ? 0 : 1, gray ? 0 : 2};
  const int alpha_pick[3] = {alpha_channel, alpha_channel, alpha_channel};
  image::Image colour = image::pillow_resize_region(
      channels_as_rgb(premultiplied, in.width, in.height, channels, colour_pick), out_w, out_h,
      image::PillowFilter::kBicubic, r);
  const image::Image alpha = image::pillow_resize_region(
      channels_as_rgb(premultiplied, in.width, in.height, channels, alpha_pick), out_w, out_h,
      image::PillowFilter::kBicubic, r);
  for (size_t i = 0; i < colour.rgb.size(); ++i) {
    const int a = alpha.rgb[i];
    if (a != 0 && a != 255) colour.rgb[i] = static_cast<uint8_t>(std::min(255, 255 * colour.rgb[i] / a));
  }
  return colour;
}

// CMYK: four independent 8-bit channels, then Pillow's cmyk2rgb.
image::Image resize_cmyk(const NativeImage& in, int out_w, int out_h, const image::PixelRect& r) {
  const int cmy_pick[3] = {0, 1, 2};
  const int k_pick[3] = {3, 3, 3};
  const image::Image cmy = image::pillow_resize_region(channels_as_rgb(in.samples, in.width, in.height, 4, cmy_pick),
                                                       out_w, out_h, image::PillowFilter::kBicubic, r);
  const image::Image k = image::pillow_resize_region(channels_as_rgb(in.samples, in.width, in.height, 4, k_pick),
                                                     out_w, out_h, image::PillowFilter::kBicubic, r);
  NativeImage out;
  out.width = cmy.width;
  out.height = cmy.height;
  out.mode = PixelMode::kCmyk;
  const size_t pixels = static_cast<size_t>(out.width) * out.height;
  out.samples.resize(pixels * 4);
  for (size_t i = 0; i < pixels; ++i) {
    std::copy_n(cmy.rgb.data() + i * 3, 3, out.samples.data() + i * 4);
    out.samples[i * 4 + 3] = k.rgb[i * 3];
  }
  return image::to_rgb(std::move(out));
}

// Pillow's ROUND_UP for its 32-bit resampling (0.5F promoted to double).
inline int32_t round_up(double v) { return static_cast<int32_t>(v >= 0.0 ? v + 0.5 : v - 0.5); }

// "I": Pillow's ImagingResampleHorizontal/Vertical_32bpc, double sums of the
// normalized weights, rounded to int32 after each pass, no clipping.
NativeImage resize_int32(const NativeImage& in, int out_w, int out_h, const image::PixelRect& r) {
  const bool need_horizontal = out_w != in.width, need_vertical = out_h != in.height;
  image::PillowAxis vertical;
  int row_first = r.y0, row_last = r.y1;
  if (need_vertical) {
    vertical = image::pillow_axis(in.height, out_h, image::PillowFilter::kBicubic);
    row_first = vertical.first[r.y0];
    row_last = row_first;
    for (int y = r.y0; y < r.y1; ++y) row_last = std::max(row_last, vertical.first[y] + vertical.count[y]);
  }
  const int width = r.width();
  std::vector<int32_t> rows(static_cast<size_t>(row_last - row_first) * width);
  const image::PillowAxis horizontal =
      need_horizontal ? image::pillow_axis(in.width, out_w, image::PillowFilter::kBicubic) : image::PillowAxis{};
  for (int y = row_first; y < row_last; ++y) {
    const int32_t* src = in.wide.data() + static_cast<size_t>(y) * in.width;
    int32_t* dst = rows.data() + static_cast<size_t>(y - row_first) * width;
    for (int x = r.x0; x < r.x1; ++x) {
      if (!need_horizontal) {
        dst[x - r.x0] = src[x];
        continue;
      }
      const double* k = horizontal.normalized.data() + static_cast<size_t>(x) * horizontal.taps;
      double sum = 0.0;
      for (int t = 0; t < horizontal.count[x]; ++t) sum += src[horizontal.first[x] + t] * k[t];
      dst[x - r.x0] = round_up(sum);
    }
  }
  NativeImage out;
  out.width = width;
  out.height = r.height();
  out.mode = PixelMode::kInt32;
  if (!need_vertical) {
    out.wide = std::move(rows);
    return out;
  }
  out.wide.resize(static_cast<size_t>(out.height) * width);
  for (int y = r.y0; y < r.y1; ++y) {
    const double* k = vertical.normalized.data() + static_cast<size_t>(y) * vertical.taps;
    for (int x = 0; x < width; ++x) {
      double sum = 0.0;
      for (int t = 0; t < vertical.count[y]; ++t)
        sum += rows[static_cast<size_t>(vertical.first[y] + t - row_first) * width + x] * k[t];
      out.wide[static_cast<size_t>(y - r.y0) * width + x] = round_up(sum);
    }
  }
  return out;
}

}  // namespace

image::Image resize_and_crop(const image::NativeImage& input, int resolution) {
  check(resolution > 0, ErrorCode::kInvalidArgument, "preprocess_image: resolution must be positive");
  if (input.mode == PixelMode::kRgb || input.mode == PixelMode::kGray)
    return resize_and_crop(image::to_rgb(input), resolution);  // per channel: the same as resizing in L
  check(input.width > 0 && input.height > 0, ErrorCode::kInvalidArgument,
        "preprocess_image: empty image");
  int out_w = 0, out_h = 0;
  resized_size(input.width, input.height, resolution, &out_w, &out_h);
  const int top = crop_offset(out_h, resolution);
  const int left = crop_offset(out_w, resolution);
  const image::PixelRect region{left, top, left + resolution, top + resolution};
  // Image.resize returns a copy, without the premultiplication round trip, when the size is unchanged.
  if (out_w == input.width && out_h == input.height) return image::to_rgb(crop_native(input, region));
  switch (input.mode) {
    case PixelMode::kBilevel:
    case PixelMode::kPalette: return image::to_rgb(nearest_region(input, out_w, out_h, region));
    case PixelMode::kGrayAlpha:
    case PixelMode::kRgba: return resize_premultiplied(input, out_w, out_h, region);
    case PixelMode::kCmyk: return resize_cmyk(input, out_w, out_h, region);
    case PixelMode::kInt32: return image::to_rgb(resize_int32(input, out_w, out_h, region));
    case PixelMode::kRgb:
    case PixelMode::kGray: break;
  }
  throw Error(ErrorCode::kInternal, "preprocess_image: unhandled mode");
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

at::Tensor preprocess_image(const image::NativeImage& image, int resolution) {
  return preprocess_image(resize_and_crop(image, resolution), resolution);
}

at::Tensor preprocess_image(const image::Image& image, int resolution) {
  image::Image crop = image.width == resolution && image.height == resolution ? image : resize_and_crop(image, resolution);
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
