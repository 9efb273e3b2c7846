// Pillow 9.4's Image.resize on 8-bit RGB (libImaging/Resample.c, ImagingResample),
// bit for bit: the reference pipelines feu follows (CLIP's preprocessing, FFHQ's face
// alignment) resize PIL images, and their outputs are compared to the last level.
//
// Pillow resizes in two separable passes, horizontal then vertical, each with
// per-pixel weights in 22-bit fixed point, rounding to uint8 between the passes. A
// pass whose size does not change is skipped.
#pragma once

#include <cstdint>
#include <vector>

#include "image/codec.h"

namespace feu::image {

// The filters feu's references use: BILINEAR, BICUBIC (a = -0.5) and LANCZOS
// (a = 3; Pillow's old name ANTIALIAS).
enum class PillowFilter { kBilinear, kBicubic, kLanczos };

// Fractional bits of Pillow's 8-bit resampling weights.
constexpr int kPillowPrecisionBits = 32 - 8 - 2;

// One axis of a resize from in_size to out_size pixels: output pixel i is
// sum_k weights[i * taps + k] * input[first[i] + k] over k < count[i], plus
// 2^21, shifted right by 22 bits and clipped to 0..255.
struct PillowAxis {
  int taps = 0;
  std::vector<int> first;
  std::vector<int> count;
  std::vector<int32_t> weights;
  // The same weights before fixed point (Pillow's kk), which its 32-bit
  // ("I", "F") resampling uses in double precision.
  std::vector<double> normalized;
};
PillowAxis pillow_axis(int in_size, int out_size, PillowFilter filter);

// A rectangle of pixels: columns [x0, x1), rows [y0, y1).
struct PixelRect {
  int x0 = 0, y0 = 0, x1 = 0, y1 = 0;
  int width() const { return x1 - x0; }
  int height() const { return y1 - y0; }
};

// Pillow's image.resize((out_width, out_height), filter). Errors:
// invalid_argument for an empty or malformed image or a non-positive size.
Image pillow_resize(const Image& image, int out_width, int out_height, PillowFilter filter);

// The pixels `region` of that result, computed alone: what cropping the full
// result would give, at the cost of the region (a face in a 12 MP photo's
// downscale costs the face). `region` must lie inside the output size.
Image pillow_resize_region(const Image& image, int out_width, int out_height, PillowFilter filter,
                           const PixelRect& region);

// Pillow's Image.thumbnail((max_width, max_height)) size rule: the image's
// aspect inside the box, the constrained side rounded down or up, whichever
// keeps the aspect closer (at least 1 px). An image that already fits keeps its
// size: a thumbnail never enlarges. Errors: invalid_argument for a
// non-positive size or box.
struct PixelSize {
  int width = 0, height = 0;
};
PixelSize pillow_thumbnail_size(int width, int height, int max_width, int max_height);

// Image.thumbnail's default filter.
constexpr PillowFilter kPillowThumbnailFilter = PillowFilter::kBicubic;

// image.thumbnail((max_side, max_side), reducing_gap=None) on an RGB image:
// pillow_resize to pillow_thumbnail_size with BICUBIC. Pillow's default
// reducing_gap=2.0 first shrinks by an integer factor with a box filter (and a
// JPEG by DCT scaling in its decoder), a shortcut that only approximates this.
Image pillow_thumbnail(const Image& image, int max_side);

}  // namespace feu::image
