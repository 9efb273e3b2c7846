// PNG/JPEG decoding of every pixel format feu meets, encoding, atomic writes,
// and clear errors for broken files.
#include <cstdio>  // before jpeglib.h, which needs FILE and size_t
#include <cstdlib>
#include <cstring>

#include <sys/resource.h>
#include <zlib.h>

#include <jpeglib.h>
#include <png.h>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "core/files.h"
#include "image/codec.h"
#include "test_images.h"
#include "test_support.h"

namespace feu::image {
namespace {

using test::make_jpeg;
using test::make_png;

Image random_image(int width, int height, uint32_t seed) {
  std::mt19937 rng(seed);
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(static_cast<size_t>(width) * height * 3);
  for (auto& v : image.rgb) v = static_cast<uint8_t>(rng() & 0xff);
  return image;
}

void expect_corrupt(const std::vector<uint8_t>& bytes, const std::string& name) {
  try {
    decode_bytes(bytes.data(), bytes.size(), name);
    FAIL() << "expected corrupt_file for " << name;
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile) << e.what();
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(ImageCodec, PngRoundTripIsLossless) {
  Image image = random_image(37, 21, 1);
  for (int level : {0, 1, 6, 9}) {
    std::vector<uint8_t> png = encode_png(image, level);
    Image back = decode_bytes(png.data(), png.size(), "round-trip.png");
    EXPECT_EQ(back.width, 37);
    EXPECT_EQ(back.height, 21);
    EXPECT_EQ(back.rgb, image.rgb) << "level " << level;
  }
}

TEST(ImageCodec, PngGrayPaletteAlphaAnd16Bit) {
  const int w = 5, h = 3;
  std::vector<uint8_t> gray(w * h);
  for (int i = 0; i < w * h; ++i) gray[i] = static_cast<uint8_t>(i * 17);
  Image g = decode_bytes(make_png(w, h, PNG_COLOR_TYPE_GRAY, 8, gray).data(),
                         make_png(w, h, PNG_COLOR_TYPE_GRAY, 8, gray).size(), "gray.png");
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) ASSERT_EQ(g.rgb[i * 3 + c], gray[i]);

  // 1-bit gray: 0 -> 0, 1 -> 255. Row of 5 pixels packed in one byte: 10110.
  std::vector<uint8_t> bits(h, 0xB0);
  auto png1 = make_png(w, h, PNG_COLOR_TYPE_GRAY, 1, bits);
  Image g1 = decode_bytes(png1.data(), png1.size(), "gray1.png");
  const uint8_t expect1[5] = {255, 0, 255, 255, 0};
  for (int x = 0; x < w; ++x) EXPECT_EQ(g1.rgb[x * 3], expect1[x]);

  // Gray + alpha: alpha dropped.
  std::vector<uint8_t> ga;
  for (int i = 0; i < w * h; ++i) ga.insert(ga.end(), {gray[i], static_cast<uint8_t>(255 - gray[i])});
  auto png_ga = make_png(w, h, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga);
  Image gai = decode_bytes(png_ga.data(), png_ga.size(), "ga.png");
  for (int i = 0; i < w * h; ++i) ASSERT_EQ(gai.rgb[i * 3 + 1], gray[i]);

  // RGBA: alpha dropped (PIL convert("RGB") semantics), colour kept even where transparent.
  Image rgb = random_image(w, h, 2);
  std::vector<uint8_t> rgba;
  for (int i = 0; i < w * h; ++i)
    rgba.insert(rgba.end(), {rgb.rgb[i * 3], rgb.rgb[i * 3 + 1], rgb.rgb[i * 3 + 2], static_cast<uint8_t>(i * 10)});
  auto png_rgba = make_png(w, h, PNG_COLOR_TYPE_RGBA, 8, rgba);
  EXPECT_EQ(decode_bytes(png_rgba.data(), png_rgba.size(), "rgba.png").rgb, rgb.rgb);

  // Palette (with a tRNS chunk, ignored): indices -> palette colours.
  std::vector<uint8_t> palette = {10, 20, 30, 200, 100, 50, 0, 255, 0};
  std::vector<uint8_t> indices(w * h);
  for (int i = 0; i < w * h; ++i) indices[i] = static_cast<uint8_t>(i % 3);
  auto png_p = make_png(w, h, PNG_COLOR_TYPE_PALETTE, 8, indices, palette, {0, 128});
  Image p = decode_bytes(png_p.data(), png_p.size(), "palette.png");
  for (int i = 0; i < w * h; ++i)
    for (int c = 0; c < 3; ++c) ASSERT_EQ(p.rgb[i * 3 + c], palette[indices[i] * 3 + c]);

  // 16-bit RGB: the high byte of each big-endian sample.
  std::vector<uint8_t> rgb16;
  for (int i = 0; i < w * h * 3; ++i) rgb16.insert(rgb16.end(), {rgb.rgb[i], static_cast<uint8_t>(255 - rgb.rgb[i])});
  auto png16 = make_png(w, h, PNG_COLOR_TYPE_RGB, 16, rgb16);
  EXPECT_EQ(decode_bytes(png16.data(), png16.size(), "rgb16.png").rgb, rgb.rgb);
}

TEST(ImageCodec, JpegRoundTripAndGrayscale) {
  // A smooth image survives JPEG at high quality within a few levels.
  Image image;
  image.width = 64;
  image.height = 48;
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 64; ++x) image.rgb.insert(image.rgb.end(), {uint8_t(x * 4), uint8_t(y * 5), uint8_t(128)});
  std::vector<uint8_t> jpeg = encode_jpeg(image, 95);
  Image back = decode_bytes(jpeg.data(), jpeg.size(), "smooth.jpg");
  ASSERT_EQ(back.width, 64);
  ASSERT_EQ(back.height, 48);
  int max_diff = 0;
  for (size_t i = 0; i < image.rgb.size(); ++i) max_diff = std::max(max_diff, std::abs(int(image.rgb[i]) - int(back.rgb[i])));
  EXPECT_LE(max_diff, 12);

  std::vector<uint8_t> gray(32 * 16);
  for (size_t i = 0; i < gray.size(); ++i) gray[i] = static_cast<uint8_t>(i % 32 * 8);
  auto gjpeg = make_jpeg(32, 16, JCS_GRAYSCALE, gray);
  Image g = decode_bytes(gjpeg.data(), gjpeg.size(), "gray.jpg");
  for (size_t i = 0; i < gray.size(); ++i) {
    ASSERT_EQ(g.rgb[i * 3], g.rgb[i * 3 + 1]);
    ASSERT_EQ(g.rgb[i * 3], g.rgb[i * 3 + 2]);
    ASSERT_NEAR(g.rgb[i * 3], gray[i], 3);
  }
}

TEST(ImageCodec, BrokenFilesAreCorruptFileErrorsNamingTheFile) {
  Image image = random_image(40, 40, 3);
  std::vector<uint8_t> png = encode_png(image);
  std::vector<uint8_t> jpeg = encode_jpeg(image);
  expect_corrupt(std::vector<uint8_t>(png.begin(), png.begin() + png.size() / 2), "truncated.png");
  expect_corrupt(std::vector<uint8_t>(png.begin(), png.begin() + 20), "header-only.png");
  expect_corrupt(std::vector<uint8_t>(jpeg.begin(), jpeg.begin() + jpeg.size() / 2), "truncated.jpg");
  expect_corrupt(std::vector<uint8_t>(jpeg.begin(), jpeg.begin() + 4), "header-only.jpg");
  std::vector<uint8_t> flipped = png;
  flipped[png.size() / 2] ^= 0x5a;  // CRC / zlib data error
  expect_corrupt(flipped, "bitflip.png");
  std::string text = "hello, this is not an image";
  expect_corrupt(std::vector<uint8_t>(text.begin(), text.end()), "notes.txt");
  expect_corrupt({}, "empty.png");

  test::TempDir dir;
  write_file_atomic(dir.file("cut.png"), png.data(), png.size() / 3);
  try {
    decode_file(dir.file("cut.png"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
    EXPECT_NE(std::string(e.what()).find(dir.file("cut.png")), std::string::npos);
  }
  try {
    decode_file(dir.file("missing.png"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  }
}

// Peak resident memory of this process so far, in bytes.
int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

// A real small PNG whose IHDR now declares width x height (CRC fixed).
std::vector<uint8_t> png_declaring(uint32_t width, uint32_t height) {
  std::vector<uint8_t> png = encode_png(random_image(16, 16, 5));
  auto put_be32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) png[at + i] = static_cast<uint8_t>(v >> (24 - 8 * i));
  };
  put_be32(16, width);  // IHDR data starts at 16: signature 8, length 4, "IHDR" 4
  put_be32(20, height);
  put_be32(29, static_cast<uint32_t>(crc32(0, png.data() + 12, 17)));  // over "IHDR" + 13 data bytes
  return png;
}

// A real small JPEG whose SOF0 now declares width x height.
std::vector<uint8_t> jpeg_declaring(uint16_t width, uint16_t height) {
  std::vector<uint8_t> jpeg = encode_jpeg(random_image(16, 16, 6));
  for (size_t i = 2; i + 9 < jpeg.size(); ++i)
    if (jpeg[i] == 0xff && jpeg[i + 1] == 0xc0) {
      jpeg[i + 5] = height >> 8;
      jpeg[i + 6] = height & 0xff;
      jpeg[i + 7] = width >> 8;
      jpeg[i + 8] = width & 0xff;
      return jpeg;
    }
  ADD_FAILURE() << "no SOF0 marker";
  return jpeg;
}

TEST(ImageCodec, DecompressionBombsAreRefusedBeforeDecoding) {
  const int64_t before = peak_rss_bytes();
  const std::vector<std::pair<std::string, std::vector<uint8_t>>> bombs = {
      {"bomb.jpg", jpeg_declaring(30000, 30000)},  // 900 MP from a file of about 1 KB
      {"bomb.png", png_declaring(16000, 16000)},   // 256 MP
  };
  for (const auto& [name, bytes] : bombs) {
    EXPECT_LT(bytes.size(), 4096u);
    try {
      decode_bytes(bytes.data(), bytes.size(), name);
      FAIL() << name << " was decoded";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << e.what();
      const std::string what = e.what();
      EXPECT_NE(what.find(name), std::string::npos) << what;
      EXPECT_NE(what.find("over the limit of 50000000"), std::string::npos) << what;
    }
  }
  EXPECT_LT(peak_rss_bytes() - before, 64 << 20) << "the bombs were allocated before being refused";
  // A caller's own limit applies too; an image within it decodes.
  const std::vector<uint8_t> small = encode_png(random_image(100, 100, 7));
  EXPECT_THROW(decode_bytes(small.data(), small.size(), "small.png", 9999), Error);
  EXPECT_EQ(decode_bytes(small.data(), small.size(), "small.png", 10000).width, 100);
}

TEST(ImageCodec, WriteImageIsAtomicAndPicksTheFormat) {
  test::TempDir dir;
  Image image = random_image(16, 8, 4);
  write_image(dir.file("a.png"), image);
  write_image(dir.file("b.JPG"), image);
  write_image(dir.file("c.jpeg"), image);
  EXPECT_EQ(decode_file(dir.file("a.png")).rgb, image.rgb);
  auto jpg = read_file(dir.file("b.JPG"));
  EXPECT_EQ(jpg[0], 0xff);
  EXPECT_EQ(decode_file(dir.file("c.jpeg")).width, 16);
  EXPECT_THROW(write_image(dir.file("d.bmp"), image), Error);
  Image broken = image;
  broken.rgb.resize(10);
  EXPECT_THROW(write_image(dir.file("e.png"), broken), Error);
  // Nothing but the three good files: no temporaries, no partial outputs.
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 3);
}

TEST(ImageCodec, HstackPlacesImagesSideBySide) {
  Image a = random_image(3, 2, 5), b = random_image(4, 3, 6);
  Image s = hstack({a, b});
  ASSERT_EQ(s.width, 7);
  ASSERT_EQ(s.height, 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 7; ++x)
      for (int c = 0; c < 3; ++c) {
        uint8_t expected = x < 3 ? (y < 2 ? a.rgb[(y * 3 + x) * 3 + c] : 0) : b.rgb[(y * 4 + x - 3) * 3 + c];
        ASSERT_EQ(s.rgb[(y * 7 + x) * 3 + c], expected) << x << "," << y;
      }
  EXPECT_THROW(hstack({}), Error);
}

}  // namespace
}  // namespace feu::image
