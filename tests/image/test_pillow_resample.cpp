// Pillow 9.4's Image.resize on RGB, bit for bit: small goldens from Pillow
// itself for each filter, up- and downscaling, and regions computed alone
// equal to crops of the whole result.
#include <random>
#include <vector>

#include "core/error.h"
#include "image/pillow_resample.h"
#include "test_support.h"

namespace feu::image {
namespace {

// 7 x 5, pixel (x, y) channel c = (37x + 91y + 53c) mod 256.
Image pattern_7x5() {
  Image image;
  image.width = 7;
  image.height = 5;
  for (int y = 0; y < 5; ++y)
    for (int x = 0; x < 7; ++x)
      for (int c = 0; c < 3; ++c) image.rgb.push_back(static_cast<uint8_t>((x * 37 + y * 91 + c * 53) % 256));
  return image;
}

struct Golden {
  PillowFilter filter;
  int width, height;
  std::vector<uint8_t> rgb;  // PIL.Image.fromarray(pattern).resize((width, height), filter), Pillow 9.4.0
};

TEST(PillowResample, MatchesPillowForEveryFilter) {
  const std::vector<Golden> goldens = {
      {PillowFilter::kBilinear, 3, 4, {55, 108, 147, 130, 168, 168, 163, 134, 104, 138, 145, 128, 131, 142, 99, 95, 116, 169,
                                        95, 102, 117, 96, 143, 152, 169, 169, 126, 117, 170, 182, 140, 114, 103, 83, 114, 125}},
      {PillowFilter::kBilinear, 5, 3, {51, 104, 157, 97, 150, 142, 150, 183, 146, 155, 146, 135, 139, 95, 99,
                                        137, 143, 101, 104, 94, 115, 94, 136, 133, 122, 143, 139, 136, 151, 185,
                                        81, 134, 187, 127, 180, 151, 153, 114, 120, 87, 140, 83, 133, 112, 129}},
      {PillowFilter::kLanczos, 3, 4, {34, 101, 153, 145, 191, 178, 173, 125, 87, 153, 163, 124, 135, 126, 75, 75, 108, 196,
                                       86, 79, 108, 74, 145, 169, 196, 189, 120, 117, 181, 202, 153, 124, 85, 74, 97, 117}},
      {PillowFilter::kLanczos, 5, 3, {50, 103, 168, 100, 159, 133, 164, 184, 141, 151, 140, 146, 123, 93, 93,
                                       151, 147, 97, 100, 83, 116, 85, 150, 127, 133, 144, 130, 134, 156, 196,
                                       71, 124, 190, 130, 182, 158, 153, 100, 121, 80, 152, 79, 150, 112, 130}},
      {PillowFilter::kBicubic, 3, 4, {42, 103, 148, 136, 179, 179, 170, 130, 95, 146, 154, 128, 135, 137, 84, 84, 111, 182,
                                       89, 92, 112, 85, 145, 161, 185, 178, 122, 119, 178, 193, 146, 114, 90, 76, 105, 124}},
      {PillowFilter::kLanczos, 11, 2, {74,  134, 113, 96,  117, 139, 115, 102, 154, 94,  122, 115, 94,  169, 105, 124, 192,
                                        140, 171, 144, 163, 161, 128, 153, 111, 161, 115, 123, 127, 130, 151, 91,  155, 90,
                                        151, 130, 113, 132, 157, 132, 121, 170, 108, 153, 121, 121, 142, 120, 141, 103, 146,
                                        107, 110, 101, 90,  147, 80,  109, 164, 123, 140, 138, 159, 155, 108, 169}},
  };
  const Image pattern = pattern_7x5();
  for (const Golden& g : goldens) {
    const Image out = pillow_resize(pattern, g.width, g.height, g.filter);
    EXPECT_EQ(out.width, g.width);
    EXPECT_EQ(out.height, g.height);
    EXPECT_EQ(out.rgb, g.rgb) << "filter " << static_cast<int>(g.filter) << " to " << g.width << "x" << g.height;
  }
}

TEST(PillowResample, RegionsEqualCropsOfTheWholeResult) {
  std::mt19937 rng(7);
  Image photo;
  photo.width = 97;
  photo.height = 61;
  for (int i = 0; i < photo.width * photo.height * 3; ++i) photo.rgb.push_back(static_cast<uint8_t>(rng()));
  for (PillowFilter filter : {PillowFilter::kBilinear, PillowFilter::kBicubic, PillowFilter::kLanczos}) {
    // Down both ways, up both ways, mixed, and one axis unchanged (that pass is skipped).
    for (auto [w, h] : std::vector<std::pair<int, int>>{{31, 17}, {150, 90}, {40, 120}, {97, 30}, {20, 61}}) {
      const Image full = pillow_resize(photo, w, h, filter);
      const PixelRect region{w / 5, h / 3, w - w / 4, h - 1};
      const Image part = pillow_resize_region(photo, w, h, filter, region);
      ASSERT_EQ(part.width, region.width());
      ASSERT_EQ(part.height, region.height());
      for (int y = 0; y < part.height; ++y)
        for (int x = 0; x < part.width * 3; ++x)
          ASSERT_EQ(part.rgb[(static_cast<size_t>(y) * part.width) * 3 + x],
                    full.rgb[(static_cast<size_t>(y + region.y0) * w + region.x0) * 3 + x])
              << w << "x" << h << " at (" << x / 3 << ", " << y << ")";
    }
  }
  // The same size is a copy.
  EXPECT_EQ(pillow_resize(photo, 97, 61, PillowFilter::kLanczos).rgb, photo.rgb);
}

TEST(PillowResample, BadSizesAndRegionsAreRefused) {
  const Image pattern = pattern_7x5();
  EXPECT_THROW(pillow_resize(pattern, 0, 3, PillowFilter::kBilinear), Error);
  EXPECT_THROW(pillow_resize(Image{}, 3, 3, PillowFilter::kBilinear), Error);
  EXPECT_THROW(pillow_resize_region(pattern, 4, 4, PillowFilter::kBilinear, {0, 0, 5, 4}), Error);
  EXPECT_THROW(pillow_resize_region(pattern, 4, 4, PillowFilter::kBilinear, {2, 2, 2, 4}), Error);
}

// Sizes and pixels from Pillow 9.4.0 itself:
// Image.new("RGB", (w, h)).thumbnail(box, reducing_gap=None).size.
TEST(PillowThumbnail, SizesArePillows) {
  struct Case {
    int width, height, max_width, max_height, expected_width, expected_height;
  };
  for (const Case& c : std::vector<Case>{{1024, 768, 128, 128, 128, 96},
                                         {480, 640, 128, 128, 96, 128},
                                         {128, 200, 128, 128, 82, 128},
                                         {1000, 301, 128, 128, 128, 39},
                                         {1001, 999, 128, 128, 128, 128},
                                         // 10 / aspect = 2.49: 3 keeps the aspect closer than 2 does
                                         {1000, 249, 10, 10, 10, 3},
                                         // at least 1 px
                                         {3, 1000, 128, 128, 1, 128},
                                         {1000, 3, 128, 128, 128, 1},
                                         // already fits: never enlarged
                                         {100, 50, 128, 128, 100, 50}}) {
    const PixelSize size = pillow_thumbnail_size(c.width, c.height, c.max_width, c.max_height);
    EXPECT_EQ(size.width, c.expected_width) << c.width << "x" << c.height << " into " << c.max_width;
    EXPECT_EQ(size.height, c.expected_height) << c.width << "x" << c.height << " into " << c.max_width;
  }
  test::expect_error([] { pillow_thumbnail_size(10, 10, 0, 10); }, ErrorCode::kInvalidArgument,
                     {"thumbnail", "positive"});
}

TEST(PillowThumbnail, PixelsArePillowsBicubic) {
  // PIL.Image.fromarray(pattern).thumbnail((4, 4), reducing_gap=None)
  const std::vector<uint8_t> golden = {55,  108, 162, 120, 175, 131, 166, 161, 155, 132, 103, 96,
                                       145, 129, 101, 83,  109, 120, 117, 144, 132, 133, 154, 183,
                                       83,  142, 190, 151, 156, 137, 106, 121, 91,  127, 124, 120};
  const Image thumbnail = pillow_thumbnail(pattern_7x5(), 4);
  EXPECT_EQ(thumbnail.width, 4);
  EXPECT_EQ(thumbnail.height, 3);
  EXPECT_EQ(thumbnail.rgb, golden);
  EXPECT_EQ(pillow_thumbnail(pattern_7x5(), 7).rgb, pattern_7x5().rgb);
}

}  // namespace
}  // namespace feu::image
