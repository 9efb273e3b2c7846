// Every mode Pillow opens PNG and JPEG files in, decoded and converted to RGB
// exactly as Pillow 9.4's Image.open(f).convert("RGB") (tests/image/modes,
// made by make_fixtures.py with Debian's python3-pil).
#include <cstdio>  // before jpeglib.h, which needs FILE and size_t
#include <jpeglib.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "image/codec.h"
#include "test_images.h"
#include "test_support.h"

namespace feu::image {
namespace {

std::string fixture(const std::string& name) { return std::string(FEU_SOURCE_DIR) + "/tests/image/modes/" + name; }

struct ModeCase {
  const char* file;
  const char* mode;
};

const ModeCase kCases[] = {
    {"gray_down.png", "L"},         {"la_down.png", "LA"},          {"rgba_down.png", "RGBA"},
    {"palette_down.png", "P"},      {"palette_trns_down.png", "P"}, {"bilevel_down.png", "1"},
    {"gray16_down.png", "I"},       {"cmyk_down.jpg", "CMYK"},      {"rgb_down.jpg", "RGB"},
    {"gray_up.png", "L"},           {"la_up.png", "LA"},            {"rgba_up.png", "RGBA"},
    {"palette_up.png", "P"},        {"palette_trns_up.png", "P"},   {"bilevel_up.png", "1"},
    {"gray16_up.png", "I"},         {"cmyk_up.jpg", "CMYK"},        {"rgb_up.jpg", "RGB"},
    {"rgb16_down.png", "RGB"},      {"rgba16_down.png", "RGBA"},
};

std::string stem(const std::string& file) { return file.substr(0, file.rfind('.')); }

TEST(ImageModes, OpensInPillowsModeAndConvertsToRgbExactly) {
  for (const ModeCase& c : kCases) {
    const NativeImage native = decode_native_file(fixture(c.file));
    EXPECT_STREQ(pillow_mode_name(native.mode), c.mode) << c.file;
    const Image rgb = to_rgb(native);
    const std::vector<uint8_t> expected = read_file(fixture(stem(c.file) + ".rgb"));
    ASSERT_EQ(rgb.rgb.size(), expected.size()) << c.file;
    size_t differing = 0;
    for (size_t i = 0; i < expected.size(); ++i) differing += rgb.rgb[i] != expected[i];
    EXPECT_EQ(differing, 0u) << c.file << " (" << c.mode << "): values differing from Pillow's convert(\"RGB\")";
    EXPECT_EQ(decode_file(fixture(c.file)).rgb, rgb.rgb) << c.file << ": decode_file is to_rgb of the native image";
  }
}

TEST(ImageModes, SixteenBitGrayKeepsItsValueAndConvertClipsIt) {
  const NativeImage native = decode_native_file(fixture("gray16_down.png"));
  ASSERT_EQ(native.mode, PixelMode::kInt32);
  int above_255 = 0;
  for (int32_t v : native.wide) above_255 += v > 255;
  EXPECT_GT(above_255, 0) << "values above 255 must survive decoding (Pillow's mode I)";
}

// A CMYK JPEG written by libjpeg as plain CMYK and as YCCK decodes to the same
// colours (libjpeg undoes YCCK; both are read with Adobe polarity, as Pillow).
TEST(ImageModes, YcckJpegDecodesLikeItsCmyk) {
  const int w = 16, h = 16;
  std::vector<uint8_t> samples;
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) samples.insert(samples.end(), {uint8_t(x * 16), uint8_t(y * 16), 200, 40});
  const std::vector<uint8_t> cmyk = test::make_jpeg(w, h, JCS_CMYK, samples, 100, JCS_CMYK);
  const std::vector<uint8_t> ycck = test::make_jpeg(w, h, JCS_CMYK, samples, 100, JCS_YCCK);
  const NativeImage a = decode_native_bytes(cmyk.data(), cmyk.size(), "cmyk.jpg");
  const NativeImage b = decode_native_bytes(ycck.data(), ycck.size(), "ycck.jpg");
  ASSERT_EQ(a.mode, PixelMode::kCmyk);
  ASSERT_EQ(b.mode, PixelMode::kCmyk);
  const Image rgb_a = to_rgb(a), rgb_b = to_rgb(b);
  int worst = 0;
  for (size_t i = 0; i < rgb_a.rgb.size(); ++i) worst = std::max(worst, std::abs(rgb_a.rgb[i] - rgb_b.rgb[i]));
  EXPECT_LE(worst, 3);
  // Adobe polarity: stored 40 -> ink 215 of black, leaving at most 40 of 255 light.
  for (uint8_t v : rgb_a.rgb) EXPECT_LE(v, 45);
}

TEST(ImageModes, MalformedNativeImageIsAnInvalidArgument) {
  NativeImage bad;
  bad.width = 2;
  bad.height = 2;
  bad.mode = PixelMode::kPalette;
  bad.samples = {0, 1, 2, 3};  // no palette
  EXPECT_THROW(to_rgb(bad), Error);
}

}  // namespace
}  // namespace feu::image
