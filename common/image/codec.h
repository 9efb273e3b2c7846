// Image files as feu reads and writes them: PNG and JPEG decoded to 8-bit RGB,
// encoded from 8-bit RGB. No torch here: it is feu_codec, which the torch-free service links.
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

// The mode Pillow 9.4 opens a PNG or JPEG in. Reference pipelines (CLIP's
// _transform) resize in this mode and convert to RGB afterwards, and the order
// changes the pixels, so the decoder keeps it.
enum class PixelMode {
  kBilevel,    // "1": 1-bit gray PNG, samples 0 or 255
  kGray,       // "L": 2/4/8-bit gray PNG, gray JPEG
  kGrayAlpha,  // "LA" (16-bit: high byte, as Pillow's LA;16B)
  kPalette,    // "P": samples are indices into `palette` (tRNS ignored, as convert("RGB"))
  kRgb,        // "RGB" (16-bit: high byte)
  kRgba,       // "RGBA" (16-bit: high byte)
  kInt32,      // "I": 16-bit gray PNG, values 0..65535 in `wide`
  kCmyk,       // "CMYK": 4-component JPEG (CMYK or YCCK), Adobe polarity (ink = 255 - stored)
};
// Pillow's name for the mode ("P", "RGBA", ...), for messages and tests.
const char* pillow_mode_name(PixelMode mode);
// Bytes per pixel in NativeImage::samples (0 for kInt32).
int mode_channels(PixelMode mode);

// A decoded image in its file's mode.
struct NativeImage {
  int width = 0;
  int height = 0;
  PixelMode mode = PixelMode::kRgb;
  std::vector<uint8_t> samples;  // [height, width, mode_channels(mode)], every mode but kInt32
  std::vector<int32_t> wide;     // [height, width], kInt32 only
  std::vector<uint8_t> palette;  // kPalette: 256 RGB triples (Pillow's gray ramp past the PLTE's end)
};

// Pillow's im.convert("RGB"), bit for bit: gray replicated, palette looked up,
// alpha dropped (not composited), "I" clipped to 0..255, CMYK as
// (255 - k) - (255 - k) * c / 255 per channel (Convert.c cmyk2rgb).
Image to_rgb(NativeImage image);

// Decodes a PNG or JPEG file (chosen by its signature, not its name) in the
// mode Pillow opens it in. Errors: not_found / io_error (file), corrupt_file
// naming the file (truncated, not an image, bad data), invalid_argument when
// the header declares more than `max_pixels` pixels (checked before any pixel
// is decoded or allocated).
NativeImage decode_native_file(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);
NativeImage decode_native_bytes(const uint8_t* data, size_t size, const std::string& name,
                                int64_t max_pixels = kDefaultMaxPixels);

// to_rgb(decode_native_*): what PIL.Image.open(path).convert("RGB") gives.
Image decode_file(const std::string& path, int64_t max_pixels = kDefaultMaxPixels);
// The same for bytes in memory; `name` is used in error messages.
Image decode_bytes(const uint8_t* data, size_t size, const std::string& name,
                   int64_t max_pixels = kDefaultMaxPixels);

// "png" or "jpeg" by the file's signature (what the decoders go by);
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
