#include "image/caption.h"

#include <ft2build.h>
#include FT_FREETYPE_H
#include <utf8proc.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/error.h"

namespace feu::image {
namespace {

std::vector<int32_t> code_points(const std::string& text) {
  std::vector<int32_t> out;
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t at = 0, size = static_cast<utf8proc_ssize_t>(text.size());
  while (at < size) {
    utf8proc_int32_t cp = 0;
    const utf8proc_ssize_t used = utf8proc_iterate(bytes + at, size - at, &cp);
    if (used <= 0) {
      out.push_back(0xFFFD);  // invalid UTF-8: the replacement character
      ++at;
      continue;
    }
    out.push_back(cp);
    at += used;
  }
  return out;
}

class Font {
 public:
  Font(const std::string& path, int pixels) {
    check(std::filesystem::exists(path), ErrorCode::kNotFound,
          "font " + path + " not found (Debian: fonts-dejavu-core)");
    check(FT_Init_FreeType(&library_) == 0, ErrorCode::kInternal, "FreeType failed to start");
    if (FT_New_Face(library_, path.c_str(), 0, &face_) != 0) {
      FT_Done_FreeType(library_);
      throw Error(ErrorCode::kCorruptFile, path + " is not a font FreeType can read");
    }
    FT_Set_Pixel_Sizes(face_, 0, static_cast<FT_UInt>(pixels));
  }
  ~Font() {
    FT_Done_Face(face_);
    FT_Done_FreeType(library_);
  }
  Font(const Font&) = delete;
  Font& operator=(const Font&) = delete;

  int width(const std::vector<int32_t>& text) {
    int w = 0;
    for (int32_t cp : text)
      if (FT_Load_Char(face_, static_cast<FT_ULong>(cp), FT_LOAD_DEFAULT) == 0) w += face_->glyph->advance.x >> 6;
    return w;
  }
  int ascender() const { return static_cast<int>(face_->size->metrics.ascender >> 6); }

  // Draws white text with its baseline at `baseline`, starting at `x`, only
  // inside columns [clip_left, clip_right).
  void draw(Image& image, const std::vector<int32_t>& text, int x, int baseline, int clip_left, int clip_right) {
    for (int32_t cp : text) {
      if (FT_Load_Char(face_, static_cast<FT_ULong>(cp), FT_LOAD_RENDER) != 0) continue;
      const FT_GlyphSlot g = face_->glyph;
      const FT_Bitmap& bitmap = g->bitmap;
      for (unsigned row = 0; row < bitmap.rows; ++row) {
        const int y = baseline - g->bitmap_top + static_cast<int>(row);
        if (y < 0 || y >= image.height) continue;
        for (unsigned col = 0; col < bitmap.width; ++col) {
          const int px = x + g->bitmap_left + static_cast<int>(col);
          if (px < clip_left || px >= clip_right || px < 0 || px >= image.width) continue;
          const int coverage = bitmap.buffer[row * bitmap.pitch + col];
          uint8_t* pixel = &image.rgb[(static_cast<size_t>(y) * image.width + px) * 3];
          for (int c = 0; c < 3; ++c) pixel[c] = static_cast<uint8_t>(pixel[c] + (255 - pixel[c]) * coverage / 255);
        }
      }
      x += g->advance.x >> 6;
    }
  }

 private:
  FT_Library library_ = nullptr;
  FT_Face face_ = nullptr;
};

}  // namespace

Image label_grid(const Image& grid, const std::vector<std::string>& labels, const std::string& title,
                 const std::string& font_path) {
  check(!labels.empty() && grid.width > 0 && grid.width % static_cast<int>(labels.size()) == 0,
        ErrorCode::kInvalidArgument, "label_grid: the grid's width must hold one equal panel per label");
  const int panel = grid.width / static_cast<int>(labels.size());
  const int strip = std::clamp(panel / 8, 14, 48);
  Font font(font_path, std::max(8, strip * 7 / 10));
  const int header = title.empty() ? 0 : strip;
  Image out;
  out.width = grid.width;
  out.height = header + grid.height + strip;
  out.rgb.assign(static_cast<size_t>(out.width) * out.height * 3, 32);
  std::memcpy(out.rgb.data() + static_cast<size_t>(header) * out.width * 3, grid.rgb.data(), grid.rgb.size());
  const int baseline_offset = (strip + font.ascender()) / 2 - 1;
  if (header > 0) {
    const std::vector<int32_t> text = code_points(title);
    const int x = std::max(2, (out.width - font.width(text)) / 2);
    font.draw(out, text, x, baseline_offset, 0, out.width);
  }
  for (size_t i = 0; i < labels.size(); ++i) {
    const std::vector<int32_t> text = code_points(labels[i]);
    const int left = static_cast<int>(i) * panel;
    const int x = left + std::max(1, (panel - font.width(text)) / 2);
    font.draw(out, text, x, header + grid.height + baseline_offset, left, left + panel);
  }
  return out;
}

}  // namespace feu::image
