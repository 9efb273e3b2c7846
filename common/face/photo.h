// Photos as the face module reads them: PNG or JPEG (image::decode_bytes), refused
// before decoding when their header promises more pixels than a limit (a small
// file can claim gigapixels), and turned upright by their EXIF orientation, as
// a phone's gallery shows them.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "image/codec.h"

namespace feu::face {

// Decodes a photo upright, as Pillow's convert("RGB") except 16-bit gray,
// which keeps its high byte (Pillow clips it to 255: white). Errors: not_found / io_error (file); corrupt_file
// naming the file (not an image, truncated); invalid_argument naming the file
// when it holds more than `max_pixels` pixels; unsupported where the codec
// refuses the colour model (none today: CMYK/YCCK JPEGs decode).
image::Image load_photo(const std::string& path, int64_t max_pixels = image::kDefaultMaxPixels);
// The same for bytes in memory; `name` is used in error messages.
image::Image decode_photo(const uint8_t* data, size_t size, const std::string& name,
                          int64_t max_pixels = image::kDefaultMaxPixels);

// The EXIF orientation (1..8) of a JPEG (APP1 "Exif") or PNG (eXIf chunk);
// 1 (as stored) when there is none or it cannot be read.
int exif_orientation(const uint8_t* data, size_t size);

// Applies an EXIF orientation: 1 as is, 2 mirrored, 3 rotated 180 degrees,
// 4 flipped, 5 transposed, 6 rotated 90 degrees clockwise, 7 transversed,
// 8 rotated 90 degrees counter-clockwise (Pillow's ImageOps.exif_transpose).
// Errors: invalid_argument outside 1..8.
image::Image apply_orientation(const image::Image& image, int orientation);

}  // namespace feu::face
