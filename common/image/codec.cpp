#include "image/codec.h"

#include <cstdio>  // before jpeglib.h, which needs FILE and size_t
#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include <algorithm>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "core/files.h"

namespace feu::image {
namespace {

[[noreturn]] void corrupt(const std::string& name, const std::string& why) {
  throw Error(ErrorCode::kCorruptFile, "cannot decode image " + name + ": " + why);
}

// ---------------------------------------------------------------- PNG ----
// libpng reports errors through a callback that must not return; we longjmp
// back into decode_png_raw, whose frame holds no objects with destructors.

struct PngReadSource {
  const uint8_t* data;
  size_t size;
  size_t offset;
  char message[256];
};

[[noreturn]] void too_many_pixels(const std::string& name, uint64_t width, uint64_t height, int64_t max_pixels) {
  throw Error(ErrorCode::kInvalidArgument,
              "image " + name + " declares " + std::to_string(width) + "x" + std::to_string(height) + " = " +
                  std::to_string(width * height) + " pixels, over the limit of " + std::to_string(max_pixels) +
                  " (refused before decoding: a decompression bomb, or raise the limit)");
}

void png_error_to_jmp(png_structp png, png_const_charp message) {
  auto* source = static_cast<PngReadSource*>(png_get_error_ptr(png));
  std::snprintf(source->message, sizeof(source->message), "%s", message);
  png_longjmp(png, 1);
}
void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_from_memory(png_structp png, png_bytep out, png_size_t length) {
  auto* source = static_cast<PngReadSource*>(png_get_io_ptr(png));
  if (source->size - source->offset < length) png_error(png, "file is truncated");
  std::memcpy(out, source->data + source->offset, length);
  source->offset += length;
}

// Returns false (and the reason in source->message) on a libpng error.
// `image` is owned by the caller so that nothing here needs unwinding after a
// longjmp.
bool decode_png_raw(PngReadSource* source, NativeImage* image) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, source, png_error_to_jmp,
                                           png_ignore_warning);
  if (!png) {
    std::snprintf(source->message, sizeof(source->message), "out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  // Row pointers live in a C array so the longjmp path frees them by hand.
  png_bytep* volatile row_pointers = nullptr;
  if (!info || setjmp(png_jmpbuf(png))) {
    std::free(row_pointers);
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    return false;
  }
  png_set_read_fn(png, source, png_read_from_memory);
  png_set_crc_action(png, PNG_CRC_ERROR_QUIT, PNG_CRC_ERROR_QUIT);
  png_read_info(png, info);
  const png_uint_32 w = png_get_image_width(png, info);
  const png_uint_32 h = png_get_image_height(png, info);
  const int color_type = png_get_color_type(png, info);
  const int bit_depth = png_get_bit_depth(png, info);
  // Pillow's PngImagePlugin modes: tRNS never adds an alpha channel, 16-bit
  // colour keeps the high byte, 16-bit gray is "I" with its full value.
  size_t sample_bytes = 1;
  switch (color_type) {
    case PNG_COLOR_TYPE_PALETTE:
      image->mode = PixelMode::kPalette;
      png_set_packing(png);
      break;
    case PNG_COLOR_TYPE_GRAY:
      if (bit_depth == 16) {
        image->mode = PixelMode::kInt32;
        sample_bytes = 2;
      } else {
        image->mode = bit_depth == 1 ? PixelMode::kBilevel : PixelMode::kGray;
        // Scales 1/2/4-bit levels to 0..255 by bit replication, as Pillow's L;2 / L;4 unpackers.
        png_set_expand_gray_1_2_4_to_8(png);
      }
      break;
    case PNG_COLOR_TYPE_GRAY_ALPHA: image->mode = PixelMode::kGrayAlpha; break;
    case PNG_COLOR_TYPE_RGB: image->mode = PixelMode::kRgb; break;
    case PNG_COLOR_TYPE_RGB_ALPHA: image->mode = PixelMode::kRgba; break;
    default: png_error(png, "unknown colour type");
  }
  if (bit_depth == 16 && image->mode != PixelMode::kInt32) png_set_strip_16(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const size_t channels = image->mode == PixelMode::kInt32 ? 1 : mode_channels(image->mode);
  const size_t row_bytes = static_cast<size_t>(w) * channels * sample_bytes;
  if (png_get_rowbytes(png, info) != row_bytes) png_error(png, "unexpected row layout");
  if (static_cast<uint64_t>(w) * h > (1ull << 28)) png_error(png, "image too large");
  if (image->mode == PixelMode::kPalette) {
    png_colorp colors = nullptr;
    int count = 0;
    if (!png_get_PLTE(png, info, &colors, &count)) png_error(png, "palette image without a PLTE chunk");
    image->palette.resize(256 * 3);
    for (int i = 0; i < 256; ++i) {
      const bool listed = i < count;
      image->palette[i * 3 + 0] = listed ? colors[i].red : static_cast<uint8_t>(i);
      image->palette[i * 3 + 1] = listed ? colors[i].green : static_cast<uint8_t>(i);
      image->palette[i * 3 + 2] = listed ? colors[i].blue : static_cast<uint8_t>(i);
    }
  }
  std::vector<uint8_t>& rows = image->samples;
  rows.resize(row_bytes * h);
  row_pointers = static_cast<png_bytep*>(std::malloc(sizeof(png_bytep) * (h ? h : 1)));
  for (png_uint_32 y = 0; y < h; ++y) row_pointers[y] = rows.data() + static_cast<size_t>(y) * row_bytes;
  png_read_image(png, row_pointers);
  png_read_end(png, nullptr);
  std::free(row_pointers);
  png_destroy_read_struct(&png, &info, nullptr);
  image->width = static_cast<int>(w);
  image->height = static_cast<int>(h);
  return true;
}

NativeImage decode_png(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  // IHDR is the first chunk of every PNG (signature, length, "IHDR", width,
  // height): the size is known before libpng reads or allocates anything.
  if (size >= 24 && std::memcmp(data + 12, "IHDR", 4) == 0) {
    auto be32 = [&](size_t at) {
      return uint64_t(data[at]) << 24 | uint64_t(data[at + 1]) << 16 | uint64_t(data[at + 2]) << 8 | data[at + 3];
    };
    const uint64_t width = be32(16), height = be32(20);
    if (width * height > static_cast<uint64_t>(max_pixels)) too_many_pixels(name, width, height, max_pixels);
  }
  PngReadSource source{data, size, 0, {0}};
  NativeImage image;
  if (!decode_png_raw(&source, &image)) corrupt(name, std::string("PNG: ") + source.message);
  if (image.mode == PixelMode::kInt32) {
    // libpng leaves 16-bit samples big-endian.
    image.wide.resize(static_cast<size_t>(image.width) * image.height);
    for (size_t i = 0; i < image.wide.size(); ++i)
      image.wide[i] = image.samples[2 * i] << 8 | image.samples[2 * i + 1];
    image.samples = {};
  }
  return image;
}

// --------------------------------------------------------------- JPEG ----

struct JpegErrorManager {
  jpeg_error_mgr base;
  jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
  bool truncated;
};

void jpeg_error_to_jmp(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}
// Warnings are silent, except "premature end of data": libjpeg pads a
// truncated file with gray, Pillow refuses it ("image file is truncated").
void jpeg_emit_message(j_common_ptr cinfo, int level) {
  auto* errors = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) errors->truncated = true;
}

enum class JpegResult { kOk, kError, kTruncated, kTooLarge };

JpegResult decode_jpeg_raw(const uint8_t* data, size_t size, int64_t max_pixels, JpegErrorManager* errors,
                           NativeImage* image) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&errors->base);
  errors->base.error_exit = jpeg_error_to_jmp;
  errors->base.emit_message = jpeg_emit_message;
  errors->truncated = false;
  if (setjmp(errors->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return JpegResult::kError;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&cinfo, TRUE);
  if (static_cast<uint64_t>(cinfo.image_width) * cinfo.image_height > static_cast<uint64_t>(max_pixels)) {
    image->width = static_cast<int>(cinfo.image_width);
    image->height = static_cast<int>(cinfo.image_height);
    jpeg_destroy_decompress(&cinfo);
    return JpegResult::kTooLarge;
  }
  // Pillow's JpegDecode: libjpeg converts YCCK to CMYK, gray stays "L".
  // Same decoder settings as Pillow's defaults (islow DCT, fancy upsampling).
  switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE: cinfo.out_color_space = JCS_GRAYSCALE; image->mode = PixelMode::kGray; break;
    case JCS_CMYK:
    case JCS_YCCK: cinfo.out_color_space = JCS_CMYK; image->mode = PixelMode::kCmyk; break;
    default: cinfo.out_color_space = JCS_RGB; image->mode = PixelMode::kRgb; break;
  }
  jpeg_start_decompress(&cinfo);
  const size_t w = cinfo.output_width, h = cinfo.output_height;
  const size_t row_bytes = w * cinfo.output_components;
  image->samples.resize(row_bytes * h);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = image->samples.data() + static_cast<size_t>(cinfo.output_scanline) * row_bytes;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  image->width = static_cast<int>(w);
  image->height = static_cast<int>(h);
  return errors->truncated ? JpegResult::kTruncated : JpegResult::kOk;
}

NativeImage decode_jpeg(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  JpegErrorManager errors;
  NativeImage image;
  switch (decode_jpeg_raw(data, size, max_pixels, &errors, &image)) {
    case JpegResult::kOk:
      // Pillow reads every 4-component JPEG as "CMYK;I" (Adobe polarity,
      // what Photoshop writes), whatever its APP14 marker says.
      if (image.mode == PixelMode::kCmyk)
        for (uint8_t& v : image.samples) v = static_cast<uint8_t>(255 - v);
      return image;
    case JpegResult::kTooLarge: too_many_pixels(name, image.width, image.height, max_pixels);
    case JpegResult::kError: corrupt(name, std::string("JPEG: ") + errors.message);
    case JpegResult::kTruncated: corrupt(name, "JPEG: file is truncated (premature end of data)");
  }
  return image;
}

void check_image(const Image& image, const char* what) {
  check(image.width > 0 && image.height > 0 &&
            image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
        ErrorCode::kInvalidArgument,
        std::string(what) + ": image must be non-empty RGB8 with width*height*3 bytes (got " +
            std::to_string(image.width) + "x" + std::to_string(image.height) + ", " +
            std::to_string(image.rgb.size()) + " bytes)");
}

void png_write_to_vector(png_structp png, png_bytep data, png_size_t length) {
  auto* out = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + length);
}
void png_flush_nothing(png_structp) {}

bool encode_png_raw(const Image& image, int level, std::vector<uint8_t>* out, PngReadSource* errors) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, errors, png_error_to_jmp,
                                            png_ignore_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, info ? &info : nullptr);
    return false;
  }
  png_set_write_fn(png, out, png_write_to_vector, png_flush_nothing);
  png_set_compression_level(png, level);
  // Fast levels: one cheap filter instead of trying all five per row.
  if (level <= 3) png_set_filter(png, PNG_FILTER_TYPE_BASE, PNG_FILTER_SUB);
  png_set_IHDR(png, info, image.width, image.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < image.height; ++y)
    png_write_row(png, image.rgb.data() + static_cast<size_t>(y) * image.width * 3);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

bool has_extension(const std::string& path, const std::string& ext) {
  if (path.size() < ext.size()) return false;
  std::string tail = path.substr(path.size() - ext.size());
  std::transform(tail.begin(), tail.end(), tail.begin(), [](unsigned char c) { return std::tolower(c); });
  return tail == ext;
}

}  // namespace

const char* sniff_format(const uint8_t* data, size_t size) {
  static const uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 8 && std::memcmp(data, kPngSignature, 8) == 0) return "png";
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff) return "jpeg";
  return nullptr;
}

const char* pillow_mode_name(PixelMode mode) {
  switch (mode) {
    case PixelMode::kBilevel: return "1";
    case PixelMode::kGray: return "L";
    case PixelMode::kGrayAlpha: return "LA";
    case PixelMode::kPalette: return "P";
    case PixelMode::kRgb: return "RGB";
    case PixelMode::kRgba: return "RGBA";
    case PixelMode::kInt32: return "I";
    case PixelMode::kCmyk: return "CMYK";
  }
  return "?";
}

int mode_channels(PixelMode mode) {
  switch (mode) {
    case PixelMode::kBilevel:
    case PixelMode::kGray:
    case PixelMode::kPalette: return 1;
    case PixelMode::kGrayAlpha: return 2;
    case PixelMode::kRgb: return 3;
    case PixelMode::kRgba:
    case PixelMode::kCmyk: return 4;
    case PixelMode::kInt32: return 0;
  }
  return 0;
}

Image to_rgb(NativeImage image) {
  const size_t pixels = static_cast<size_t>(image.width) * image.height;
  const size_t channels = mode_channels(image.mode);
  check(image.width > 0 && image.height > 0 &&
            (image.mode == PixelMode::kInt32 ? image.wide.size() == pixels
                                             : image.samples.size() == pixels * channels) &&
            (image.mode != PixelMode::kPalette || image.palette.size() == 256 * 3),
        ErrorCode::kInvalidArgument,
        std::string("to_rgb: malformed ") + pillow_mode_name(image.mode) + " image of " +
            std::to_string(image.width) + "x" + std::to_string(image.height));
  Image out;
  out.width = image.width;
  out.height = image.height;
  if (image.mode == PixelMode::kRgb) {
    out.rgb = std::move(image.samples);
    return out;
  }
  out.rgb.resize(pixels * 3);
  uint8_t* o = out.rgb.data();
  const uint8_t* in = image.samples.data();
  for (size_t i = 0; i < pixels; ++i, o += 3) {
    switch (image.mode) {
      case PixelMode::kBilevel:
      case PixelMode::kGray:
      case PixelMode::kGrayAlpha: o[0] = o[1] = o[2] = in[i * channels]; break;
      case PixelMode::kPalette: std::memcpy(o, image.palette.data() + in[i] * 3, 3); break;
      case PixelMode::kRgba: std::memcpy(o, in + i * 4, 3); break;
      case PixelMode::kInt32: o[0] = o[1] = o[2] = static_cast<uint8_t>(std::clamp(image.wide[i], 0, 255)); break;
      case PixelMode::kCmyk: {
        const uint8_t* p = in + i * 4;
        const int not_black = 255 - p[3];
        for (int c = 0; c < 3; ++c) {
          // MULDIV255: a*b/255 rounded, with Pillow's shifts.
          const int t = p[c] * not_black + 128;
          o[c] = static_cast<uint8_t>(std::clamp(not_black - (((t >> 8) + t) >> 8), 0, 255));
        }
        break;
      }
      case PixelMode::kRgb: break;
    }
  }
  return out;
}

NativeImage decode_native_bytes(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  check(max_pixels > 0, ErrorCode::kInvalidArgument, "the pixel limit must be positive");
  const char* format = sniff_format(data, size);
  if (format && format[0] == 'p') return decode_png(data, size, name, max_pixels);
  if (format) return decode_jpeg(data, size, name, max_pixels);
  corrupt(name, size == 0 ? "file is empty" : "not a PNG or JPEG file (unknown signature)");
}

NativeImage decode_native_file(const std::string& path, int64_t max_pixels) {
  std::vector<uint8_t> bytes = read_file(path);
  return decode_native_bytes(bytes.data(), bytes.size(), path, max_pixels);
}

Image decode_bytes(const uint8_t* data, size_t size, const std::string& name, int64_t max_pixels) {
  return to_rgb(decode_native_bytes(data, size, name, max_pixels));
}

Image decode_file(const std::string& path, int64_t max_pixels) {
  return to_rgb(decode_native_file(path, max_pixels));
}

std::vector<uint8_t> encode_png(const Image& image, int compression_level) {
  check_image(image, "encode_png");
  check(compression_level >= 0 && compression_level <= 9, ErrorCode::kInvalidArgument,
        "PNG compression level must be 0..9, got " + std::to_string(compression_level));
  std::vector<uint8_t> out;
  out.reserve(image.rgb.size() / 2);
  PngReadSource errors{nullptr, 0, 0, {0}};
  if (!encode_png_raw(image, compression_level, &out, &errors))
    throw Error(ErrorCode::kInternal, std::string("PNG encoding failed: ") + errors.message);
  return out;
}

namespace {
bool encode_jpeg_raw(const Image& image, int quality, unsigned char** buffer, unsigned long* size,
                     JpegErrorManager* errors) {
  jpeg_compress_struct cinfo;
  cinfo.err = jpeg_std_error(&errors->base);
  errors->base.error_exit = jpeg_error_to_jmp;
  errors->base.emit_message = jpeg_emit_message;
  if (setjmp(errors->jump)) {
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, buffer, size);
  cinfo.image_width = image.width;
  cinfo.image_height = image.height;
  cinfo.input_components = 3;
  cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(image.rgb.data()) + static_cast<size_t>(cinfo.next_scanline) * image.width * 3;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}
}  // namespace

std::vector<uint8_t> encode_jpeg(const Image& image, int quality) {
  check_image(image, "encode_jpeg");
  check(quality >= 1 && quality <= 100, ErrorCode::kInvalidArgument,
        "JPEG quality must be 1..100, got " + std::to_string(quality));
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  JpegErrorManager errors;
  bool ok = encode_jpeg_raw(image, quality, &buffer, &size, &errors);
  std::vector<uint8_t> out;
  if (ok) out.assign(buffer, buffer + size);
  std::free(buffer);
  if (!ok) throw Error(ErrorCode::kInternal, std::string("JPEG encoding failed: ") + errors.message);
  return out;
}

void write_image(const std::string& path, const Image& image) {
  std::vector<uint8_t> bytes;
  if (has_extension(path, ".png")) {
    bytes = encode_png(image);
  } else if (has_extension(path, ".jpg") || has_extension(path, ".jpeg")) {
    bytes = encode_jpeg(image);
  } else {
    throw Error(ErrorCode::kInvalidArgument,
                "cannot choose an image format for " + path + " (expected extension .png, .jpg or .jpeg)");
  }
  write_file_atomic(path, bytes.data(), bytes.size());
}

Image hstack(const std::vector<Image>& images) {
  check(!images.empty(), ErrorCode::kInvalidArgument, "hstack: no images given");
  Image out;
  for (const Image& image : images) {
    check_image(image, "hstack");
    out.width += image.width;
    out.height = std::max(out.height, image.height);
  }
  out.rgb.assign(static_cast<size_t>(out.width) * out.height * 3, 0);
  size_t x0 = 0;
  for (const Image& image : images) {
    const size_t row_bytes = static_cast<size_t>(image.width) * 3;
    for (int y = 0; y < image.height; ++y)
      std::memcpy(out.rgb.data() + (static_cast<size_t>(y) * out.width + x0) * 3,
                  image.rgb.data() + y * row_bytes, row_bytes);
    x0 += image.width;
  }
  return out;
}

}  // namespace feu::image
