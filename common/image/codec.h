// Image files as feu reads and writes them: PNG and JPEG decoded to 8-bit RGB,
// encoded from 8-bit RGB. No torch here (the daemon links this too).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace feu::image {

// An 8-bit RGB image, rows top to bottom, pixels interleaved (HWC).
struct Image {
  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;  // [height, width, 3]
};

// The most pixels a decoder accepts unless told otherwise: far above any
// camera's output (12-50 MP), far below what a decompression bomb claims (a
// 1 KB JPEG can declare 30000 x 30000 = 900 MP, 2.7 GB decoded).
constexpr int64_t kDefaultMaxPixels = 50'000'000;

// Decodes a PNG or JPEG file (chosen by its signature, not its name).
// Grayscale, gray+alpha, RGBA, palette and 16-bit PNGs become RGB8: alpha is
// dropped (as PIL's convert("RGB") does), 16-bit samples keep their high byte.
// Errors: not_found / io_error (file), corrupt_file naming the file
// (truncated, not an image, bad data),
// invalid_argument when the header declares more than `max_pixels` pixels
// (checked before any pixel is decoded or allocated).
Image decode_file(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);
// The same for bytes in memory; `name` is used in error messages.
Image decode_bytes(const uint8_t* data, size_t size, const std::string& name,
                   int64_t max_pixels = kDefaultMaxPixels);

// "png" or "jpeg" by the file's signature (what decode_bytes goes by);
// nullptr for anything else. Reads at most 8 bytes: a cheap admission check.
const char* sniff_format(const uint8_t* data, size_t size);

// PNG, 8-bit RGB; zlib level 0..9 (1 = fast, what generated images need).
std::vector<uint8_t> encode_png(const Image& image, int compression_level = 1);
// Baseline JPEG, 4:2:0 chroma subsampling, quality 1..100.
std::vector<uint8_t> encode_jpeg(const Image& image, int quality = 92);

// Writes PNG (.png) or JPEG (.jpg, .jpeg; case-insensitive) atomically: the
// file appears complete under `path` or not at all.
void write_image(const std::string& path, const Image& image);

// Places images side by side, top-aligned (a grid row). Shorter images are
// padded with black below. Empty input is an invalid_argument error.
Image hstack(const std::vector<Image>& images);

}  // namespace feu::image
