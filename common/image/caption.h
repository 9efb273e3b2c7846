// Words on images: a grid's title and the label of each panel, drawn with
// FreeType from a TrueType font (Debian's fonts-dejavu-core by default).
#pragma once

#include <string>
#include <vector>

#include "image/codec.h"

namespace feu::image {

constexpr const char* kDefaultFontPath = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

// `grid` holds labels.size() panels of equal width side by side. Returns it
// with a strip above holding `title` (skipped when empty) and a strip below
// holding each label centred under its panel, white on dark grey; text that
// does not fit is cut at the panel's edge. Strip height scales with the panel
// width (14..48 px). Errors: not_found (no font file), corrupt_file (not a
// font), invalid_argument (no labels, a grid width not divisible by them).
Image label_grid(const Image& grid, const std::vector<std::string>& labels, const std::string& title,
                 const std::string& font_path = kDefaultFontPath);

}  // namespace feu::image
