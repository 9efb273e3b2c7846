#include "test_images.h"

#include <cstdlib>
#include <stdexcept>

namespace feu::test {

std::vector<uint8_t> make_png(int width, int height, int color_type, int bit_depth, const std::vector<uint8_t>& rows,
                              const std::vector<uint8_t>& palette, const std::vector<uint8_t>& trns) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, png_size_t n) {
        auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        v->insert(v->end(), data, data + n);
      },
      [](png_structp) {});
  png_set_IHDR(png, info, width, height, bit_depth, color_type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  std::vector<png_color> colors;
  for (size_t i = 0; i + 2 < palette.size(); i += 3) colors.push_back({palette[i], palette[i + 1], palette[i + 2]});
  if (!colors.empty()) png_set_PLTE(png, info, colors.data(), static_cast<int>(colors.size()));
  if (!trns.empty())
    png_set_tRNS(png, info, const_cast<png_bytep>(trns.data()), static_cast<int>(trns.size()), nullptr);
  png_write_info(png, info);
  const size_t row_bytes = rows.size() / height;
  for (int y = 0; y < height; ++y) png_write_row(png, const_cast<png_bytep>(rows.data() + y * row_bytes));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

std::vector<uint8_t> make_jpeg(int width, int height, J_COLOR_SPACE space, const std::vector<uint8_t>& samples,
                               int quality, J_COLOR_SPACE stored) {
  const int components = space == JCS_GRAYSCALE ? 1 : space == JCS_CMYK ? 4 : 3;
  if (samples.size() != static_cast<size_t>(width) * height * components)
    throw std::invalid_argument("make_jpeg: samples are not height x width x components bytes");
  jpeg_compress_struct cinfo;
  jpeg_error_mgr jerr;
  cinfo.err = jpeg_std_error(&jerr);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = components;
  cinfo.in_color_space = space;
  jpeg_set_defaults(&cinfo);
  if (stored != JCS_UNKNOWN) jpeg_set_colorspace(&cinfo, stored);
  jpeg_set_quality(&cinfo, quality, TRUE);
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(samples.data()) + static_cast<size_t>(cinfo.next_scanline) * width * components;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  std::vector<uint8_t> out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

}  // namespace feu::test
