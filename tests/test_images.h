// PNG and JPEG files written with libpng and libjpeg directly, for the decoders' tests: every
// colour type and depth, palettes with transparency, gray, CMYK and YCCK JPEGs.
#pragma once

#include <cstdio>  // before jpeglib.h, which needs FILE and size_t
#include <jpeglib.h>
#include <png.h>

#include <cstdint>
#include <vector>

namespace feu::test {

// A PNG of any libpng colour type and bit depth. `rows`: the raw row bytes, top to bottom
// (height rows of equal length); `palette`: RGB triples for PNG_COLOR_TYPE_PALETTE; `trns`: its
// tRNS alphas.
std::vector<uint8_t> make_png(int width, int height, int color_type, int bit_depth, const std::vector<uint8_t>& rows,
                              const std::vector<uint8_t>& palette = {}, const std::vector<uint8_t>& trns = {});

// A baseline JPEG of `samples` (height rows of width pixels) given in `space`: JCS_GRAYSCALE
// (1 byte a pixel), JCS_RGB (3) or JCS_CMYK (4), at `quality`, stored in libjpeg's default colour
// space for it or in `stored` (JCS_YCCK for a CMYK file as Adobe writes them).
std::vector<uint8_t> make_jpeg(int width, int height, J_COLOR_SPACE space, const std::vector<uint8_t>& samples,
                               int quality = 100, J_COLOR_SPACE stored = JCS_UNKNOWN);

}  // namespace feu::test
