// CLIP's image preprocessing (clip.py _transform): resize the short side with
// Pillow's antialiased bicubic, center crop, /255, normalize with CLIP's
// mean/std.
#pragma once

#include <ATen/core/Tensor.h>

#include "image/codec.h"

namespace feu::clip {

// CLIP's normalization constants (R, G, B).
extern const float kClipMean[3];
extern const float kClipStd[3];

// One decoded RGB image -> [3, R, R] float32 CPU, normalized. Bit-compatible
// with Pillow's ImagingResample on 8-bit RGB (fixed point, uint8 between
// passes), hence with the reference for RGB and grayscale files.
at::Tensor preprocess_image(const image::Image& image, int resolution);
// A file in its own mode, as OpenAI's _transform sees it (Resize in the file's
// mode, then convert("RGB")): Pillow resizes "P" and "1" with NEAREST whatever
// the filter, "RGBA" and "LA" premultiplied by alpha (RGBa/La and back),
// "CMYK" per channel, and "I" (16-bit gray) in double precision before
// convert("RGB") clips it to 0..255. Bit-compatible for every mode.
at::Tensor preprocess_image(const image::NativeImage& image, int resolution);
// The same before normalization: [R, R, 3] uint8 (HWC), for tests.
image::Image resize_and_crop(const image::Image& image, int resolution);
image::Image resize_and_crop(const image::NativeImage& image, int resolution);

// Generator output [N, 3, H, W] in [-1, 1] (any device) -> [N, 3, R, R]
// normalized, on the same device. Quantizes to uint8 first as StyleCLIP does
// ((x+1)*127.5, clamp, truncate), then runs Pillow's two resampling passes as
// float64 matrix multiplies of its fixed-point weights (exact integer
// arithmetic, the same ops on CPU and CUDA), so each image is bit-identical
// to preprocess_image of the same uint8 image. Center crops, normalizes.
at::Tensor preprocess_generated(const at::Tensor& img, int resolution);

}  // namespace feu::clip
