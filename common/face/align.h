// FFHQ's face alignment from dlib's 68 landmarks, re-expressed from
// ffhq-dataset's download_ffhq.py (recreate_aligned_images) and
// encoder4editing's utils/alignment.py (align_face): an oriented square from
// the eyes and the mouth; the photo shrunk (Lanczos) when the face is over
// twice the output size; cropped around the square; where the square leaves
// the photo, reflect-padded with a blur and a blend to the median colour; the
// square mapped to the output by Pillow's QUAD transform (bilinear), and
// Lanczos-resized to the output size. Each step computes what numpy, scipy 1.10
// and Pillow 9.4 compute, in their precisions and order, so the crops match the
// reference's to the last level on most pixels.
#pragma once

#include <array>

#include "face/landmarks.h"
#include "image/codec.h"

namespace feu::face {

struct AlignSettings {
  int output_size = 256;     // side of the aligned image
  int transform_size = 256;  // side of the QUAD transform's output, Lanczos-resized to output_size
  bool enable_padding = true;
};
// encoder4editing's align_face: what its encoder was trained on.
constexpr AlignSettings kE4eAlign{256, 256, true};
// FFHQ's own crops (the dataset StyleGAN2 was trained on).
constexpr AlignSettings kFfhqAlign{1024, 4096, true};

// The oriented square, corners NW, SW, SE, NE as (x, y) pairs, in the photo's
// pixel coordinates (pixel centres at integers, as dlib's landmarks).
struct Quad {
  std::array<double, 8> xy{};
};
Quad ffhq_quad(const Landmarks& landmarks);

struct AlignedFace {
  image::Image image;  // output_size x output_size RGB
  Quad quad;
  int shrink = 0;       // FFHQ's shrink factor (the photo is downscaled when above 1)
  bool padded = false;  // whether the reflect-pad and blur branch ran
};

// Errors: invalid_argument (empty image, sizes not positive, output_size above
// transform_size, or a square with no pixel of the photo under it).
AlignedFace align_face(const image::Image& photo, const Landmarks& landmarks,
                       const AlignSettings& settings = kE4eAlign);

}  // namespace feu::face
