// Photo loading for face work: a header walk (size and EXIF orientation) before
// the codec decodes anything.
#include "face/photo.h"

#include <cstring>

#include "core/error.h"
#include "core/files.h"

namespace feu::face {
namespace {

uint32_t read_u16(const uint8_t* p, bool big_endian) {
  return big_endian ? (p[0] << 8) | p[1] : (p[1] << 8) | p[0];
}
uint32_t read_u32(const uint8_t* p, bool big_endian) {
  return big_endian ? (uint32_t(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3]
                    : (uint32_t(p[3]) << 24) | (p[2] << 16) | (p[1] << 8) | p[0];
}

// Orientation tag (0x0112) of IFD0 in a TIFF structure (EXIF's payload); 1
// when absent, malformed or out of range.
int tiff_orientation(const uint8_t* tiff, size_t size) {
  if (size < 8) return 1;
  bool big_endian;
  if (std::memcmp(tiff, "MM\0*", 4) == 0) {
    big_endian = true;
  } else if (std::memcmp(tiff, "II*\0", 4) == 0) {
    big_endian = false;
  } else {
    return 1;
  }
  const uint32_t ifd = read_u32(tiff + 4, big_endian);
  if (ifd > size - 2) return 1;
  const uint32_t entries = read_u16(tiff + ifd, big_endian);
  for (uint32_t i = 0; i < entries; ++i) {
    const size_t entry = ifd + 2 + static_cast<size_t>(i) * 12;
    if (entry + 12 > size) return 1;
    if (read_u16(tiff + entry, big_endian) != 0x0112) continue;
    constexpr uint32_t kShort = 3;
    if (read_u16(tiff + entry + 2, big_endian) != kShort) return 1;
    const uint32_t value = read_u16(tiff + entry + 8, big_endian);
    return value >= 1 && value <= 8 ? static_cast<int>(value) : 1;
  }
  return 1;
}

// What the header says before decoding: the pixel size (0 x 0 when not found)
// and the EXIF orientation.
struct Header {
  int orientation = 1;
};

bool is_png(const uint8_t* data, size_t size) {
  static const uint8_t kSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  return size >= 8 && std::memcmp(data, kSignature, 8) == 0;
}
bool is_jpeg(const uint8_t* data, size_t size) {
  return size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff;
}

// PNG chunks: eXIf anywhere (a TIFF structure).
Header png_header(const uint8_t* data, size_t size) {
  Header header;
  size_t offset = 8;
  while (offset + 8 <= size) {
    const uint32_t length = read_u32(data + offset, true);
    const uint8_t* type = data + offset + 4;
    const uint8_t* body = data + offset + 8;
    if (length > size - offset - 8) break;
    if (std::memcmp(type, "eXIf", 4) == 0) {
      header.orientation = tiff_orientation(body, length);
    } else if (std::memcmp(type, "IEND", 4) == 0) {
      break;
    }
    offset += 12 + static_cast<size_t>(length);  // length, type, body, CRC
  }
  return header;
}

// JPEG markers up to the scan: APP1 "Exif\0\0".
Header jpeg_header(const uint8_t* data, size_t size) {
  Header header;
  size_t offset = 2;
  while (offset + 4 <= size) {
    if (data[offset] != 0xff) break;
    const uint8_t marker = data[offset + 1];
    if (marker == 0xff) {  // fill byte before a marker
      ++offset;
      continue;
    }
    if (marker == 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {  // no length field
      offset += 2;
      continue;
    }
    if (marker == 0xda || marker == 0xd9) break;  // start of scan, end of image
    const uint32_t length = read_u16(data + offset + 2, true);
    if (length < 2 || length > size - offset - 2) break;
    const uint8_t* body = data + offset + 4;
    const size_t body_size = length - 2;
    if (marker == 0xe1 && body_size >= 6 && std::memcmp(body, "Exif\0\0", 6) == 0) {
      header.orientation = tiff_orientation(body + 6, body_size - 6);
    }
    offset += 2 + length;
  }
  return header;
}

Header read_header(const uint8_t* data, size_t size) {
  if (is_png(data, size)) return png_header(data, size);
  if (is_jpeg(data, size)) return jpeg_header(data, size);
  return {};
}


}  // namespace

int exif_orientation(const uint8_t* data, size_t size) { return read_header(data, size).orientation; }

image::Image apply_orientation(const image::Image& in, int orientation) {
  check(orientation >= 1 && orientation <= 8, ErrorCode::kInvalidArgument,
        "EXIF orientation must be 1..8, got " + std::to_string(orientation));
  if (orientation == 1) return in;
  const int w = in.width, h = in.height;
  const bool swaps_axes = orientation >= 5;
  image::Image out;
  out.width = swaps_axes ? h : w;
  out.height = swaps_axes ? w : h;
  out.rgb.resize(in.rgb.size());
  // The input pixel output pixel (x, y) shows is (sx, sy) = origin + x * step_x
  // + y * step_y: one affine walk per orientation.
  struct Walk {
    int origin_x, origin_y, x_dx, y_dx, x_dy, y_dy;
  };
  static const Walk kWalks[9] = {
      {}, {}, {1, 0, -1, 0, 0, 1}, {1, 1, -1, 0, 0, -1}, {0, 1, 1, 0, 0, -1},
      {0, 0, 0, 1, 1, 0}, {0, 1, 0, -1, 1, 0}, {1, 1, 0, -1, -1, 0}, {1, 0, 0, 1, -1, 0}};
  const Walk& walk = kWalks[orientation];
  const int64_t origin_x = walk.origin_x ? w - 1 : 0, origin_y = walk.origin_y ? h - 1 : 0;
  const int64_t step_x = (walk.x_dx + static_cast<int64_t>(walk.y_dx) * w) * 3;  // bytes per output x
  const int64_t step_y = (walk.x_dy + static_cast<int64_t>(walk.y_dy) * w) * 3;  // bytes per output y
  const uint8_t* src = in.rgb.data();
  uint8_t* dst = out.rgb.data();
  int64_t row_offset = (origin_y * w + origin_x) * 3;
  for (int y = 0; y < out.height; ++y, row_offset += step_y) {
    int64_t offset = row_offset;
    for (int x = 0; x < out.width; ++x, offset += step_x, dst += 3) {
      dst[0] = src[offset];
      dst[1] = src[offset + 1];
      dst[2] = src[offset + 2];
    }
  }
  return out;
}

image::Image decode_photo(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  // The codec refuses a header declaring more than max_pixels before decoding
  // anything (decompression bombs): the one place of that rule.
  image::NativeImage native = image::decode_native_bytes(data, size, name, max_pixels);
  // Pillow's convert("RGB") clips 16-bit gray ("I") to 0..255, which turns a
  // real 16-bit photo white and leaves no face to find; a photo keeps its
  // levels instead (the high byte, as 16-bit colour PNGs).
  if (native.mode == image::PixelMode::kInt32)
    for (int32_t& v : native.wide) v >>= 8;
  return apply_orientation(image::to_rgb(std::move(native)), exif_orientation(data, size));
}

image::Image load_photo(const std::string& path, int64_t max_pixels) {
  const std::vector<uint8_t> bytes = read_file(path);
  return decode_photo(bytes.data(), bytes.size(), path, max_pixels);
}

}  // namespace feu::face
