// Photos as phones and the web deliver them: EXIF orientation, pixel formats,
// decompression bombs, broken files, photos without faces; and the alignment's
// edge cases (a face larger than its photo, bad settings).
#include <cstdio>  // before jpeglib.h, which needs FILE and size_t
#include <jpeglib.h>
#include <png.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "face/faces.h"
#include "test_images.h"
#include "test_support.h"

namespace feu::face {
namespace {

using test::make_jpeg;
using test::make_png;

image::Image load_shared_photo(const std::string& path) { return load_photo(path); }

// Expects `body` to throw feu::Error with `code` and a message containing `part`.
template <typename Body>
void expect_error(Body body, ErrorCode code, const std::string& part) {
  try {
    body();
    ADD_FAILURE() << "expected error " << error_code_name(code);
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// ------------------------------------------------------------ fixtures ----

void append_u16(std::vector<uint8_t>* out, uint32_t v, bool big_endian) {
  if (big_endian) {
    out->push_back(v >> 8);
    out->push_back(v & 0xff);
  } else {
    out->push_back(v & 0xff);
    out->push_back(v >> 8);
  }
}
void append_u32(std::vector<uint8_t>* out, uint32_t v, bool big_endian) {
  append_u16(out, big_endian ? v >> 16 : v & 0xffff, big_endian);
  append_u16(out, big_endian ? v & 0xffff : v >> 16, big_endian);
}

// A TIFF structure with one IFD holding only the Orientation tag.
std::vector<uint8_t> exif_tiff(int orientation, bool big_endian) {
  std::vector<uint8_t> t = big_endian ? std::vector<uint8_t>{'M', 'M', 0, 42} : std::vector<uint8_t>{'I', 'I', 42, 0};
  append_u32(&t, 8, big_endian);       // IFD0 offset
  append_u16(&t, 1, big_endian);       // one entry
  append_u16(&t, 0x0112, big_endian);  // Orientation
  append_u16(&t, 3, big_endian);       // SHORT
  append_u32(&t, 1, big_endian);       // count
  append_u16(&t, orientation, big_endian);
  append_u16(&t, 0, big_endian);
  append_u32(&t, 0, big_endian);  // no next IFD
  return t;
}

// The JPEG with an APP1 "Exif" segment right after SOI, as cameras write it.
std::vector<uint8_t> with_jpeg_exif(const std::vector<uint8_t>& jpeg, int orientation, bool big_endian) {
  std::vector<uint8_t> payload = {'E', 'x', 'i', 'f', 0, 0};
  const std::vector<uint8_t> tiff = exif_tiff(orientation, big_endian);
  payload.insert(payload.end(), tiff.begin(), tiff.end());
  std::vector<uint8_t> out(jpeg.begin(), jpeg.begin() + 2);
  out.push_back(0xff);
  out.push_back(0xe1);
  append_u16(&out, static_cast<uint32_t>(payload.size() + 2), true);
  out.insert(out.end(), payload.begin(), payload.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

// The PNG with an eXIf chunk before IEND (the last 12 bytes).
std::vector<uint8_t> with_png_exif(const std::vector<uint8_t>& png, int orientation) {
  const std::vector<uint8_t> tiff = exif_tiff(orientation, true);
  std::vector<uint8_t> chunk;
  append_u32(&chunk, static_cast<uint32_t>(tiff.size()), true);
  chunk.insert(chunk.end(), {'e', 'X', 'I', 'f'});
  chunk.insert(chunk.end(), tiff.begin(), tiff.end());
  append_u32(&chunk, crc32(crc32(0, nullptr, 0), chunk.data() + 4, static_cast<uInt>(chunk.size() - 4)), true);
  std::vector<uint8_t> out(png.begin(), png.end() - 12);
  out.insert(out.end(), chunk.begin(), chunk.end());
  out.insert(out.end(), png.end() - 12, png.end());
  return out;
}

image::Image numbered_3x2() {
  image::Image image;
  image.width = 3;
  image.height = 2;
  for (int v = 1; v <= 6; ++v) image.rgb.insert(image.rgb.end(), {uint8_t(v), uint8_t(10 * v), uint8_t(255 - v)});
  return image;
}

// The red channel row by row, e.g. {{1, 2, 3}, {4, 5, 6}}.
std::vector<std::vector<int>> red_rows(const image::Image& image) {
  std::vector<std::vector<int>> rows(image.height);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) rows[y].push_back(image.rgb[(static_cast<size_t>(y) * image.width + x) * 3]);
  return rows;
}

// What Pillow's ImageOps.exif_transpose shows for orientations 1..8 of
// [[1, 2, 3], [4, 5, 6]].
const std::vector<std::vector<int>> kUpright[9] = {
    {},
    {{1, 2, 3}, {4, 5, 6}},
    {{3, 2, 1}, {6, 5, 4}},
    {{6, 5, 4}, {3, 2, 1}},
    {{4, 5, 6}, {1, 2, 3}},
    {{1, 4}, {2, 5}, {3, 6}},
    {{4, 1}, {5, 2}, {6, 3}},
    {{6, 3}, {5, 2}, {4, 1}},
    {{3, 6}, {2, 5}, {1, 4}},
};

// ---------------------------------------------------------- orientation ----

TEST(PhotoOrientation, EveryExifOrientationShowsWhatPillowShows) {
  const image::Image stored = numbered_3x2();
  const std::vector<uint8_t> png = image::encode_png(stored);
  for (int orientation = 1; orientation <= 8; ++orientation) {
    EXPECT_EQ(red_rows(apply_orientation(stored, orientation)), kUpright[orientation]) << orientation;
    const std::vector<uint8_t> tagged = with_png_exif(png, orientation);
    EXPECT_EQ(exif_orientation(tagged.data(), tagged.size()), orientation);
    const image::Image shown = decode_photo(tagged.data(), tagged.size(), "tagged.png");
    EXPECT_EQ(red_rows(shown), kUpright[orientation]) << orientation;
    // The other channels travel with the pixel.
    for (size_t i = 0; i < shown.rgb.size(); i += 3) EXPECT_EQ(shown.rgb[i + 1], 10 * shown.rgb[i]);
  }
  expect_error([&] { apply_orientation(stored, 9); }, ErrorCode::kInvalidArgument, "1..8");
}

TEST(PhotoOrientation, JpegExifInEitherByteOrder) {
  const std::vector<uint8_t> jpeg = image::encode_jpeg(numbered_3x2(), 100);
  const image::Image plain = image::decode_bytes(jpeg.data(), jpeg.size(), "plain.jpg");
  EXPECT_EQ(exif_orientation(jpeg.data(), jpeg.size()), 1);
  for (bool big_endian : {true, false}) {
    for (int orientation : {3, 6, 8}) {
      const std::vector<uint8_t> tagged = with_jpeg_exif(jpeg, orientation, big_endian);
      EXPECT_EQ(exif_orientation(tagged.data(), tagged.size()), orientation);
      const image::Image shown = decode_photo(tagged.data(), tagged.size(), "tagged.jpg");
      EXPECT_EQ(shown.rgb, apply_orientation(plain, orientation).rgb);
    }
  }
  // A tag value outside 1..8 is ignored, as viewers do.
  const std::vector<uint8_t> odd = with_jpeg_exif(jpeg, 42, true);
  EXPECT_EQ(exif_orientation(odd.data(), odd.size()), 1);
}

// A phone held in portrait stores the pixels sideways and says so in EXIF:
// the faces are found only when the tag is honoured.
TEST(PhotoOrientation, SidewaysPhonePhotoIsAlignedUpright) {
  FEU_SHARED_FILE_OR_SKIP(path, "faces/2008_001009.jpg");
  const image::Image upright = load_shared_photo(path);
  const image::Image sideways = apply_orientation(upright, 8);  // what the sensor stored
  const std::vector<uint8_t> stored = with_jpeg_exif(image::encode_jpeg(sideways, 95), 6, true);

  FaceDetector detector;
  const image::Image shown = decode_photo(stored.data(), stored.size(), "phone.jpg");
  ASSERT_EQ(shown.width, upright.width);
  ASSERT_EQ(shown.height, upright.height);
  const std::vector<Face> faces = align_faces(detector, shown, "phone.jpg");
  const std::vector<DetectedFace> expected = detector.find_faces(upright);
  ASSERT_EQ(faces.size(), expected.size());
  for (size_t f = 0; f < faces.size(); ++f) {
    int max_diff = 0;
    for (int i = 0; i < kLandmarkCount; ++i)
      max_diff = std::max({max_diff, std::abs(faces[f].landmarks[i].x - expected[f].landmarks[i].x),
                           std::abs(faces[f].landmarks[i].y - expected[f].landmarks[i].y)});
    EXPECT_LE(max_diff, 4) << "face " << f << " (the JPEG round trip moves landmarks a little)";
  }
  const image::Image ignored = image::decode_bytes(stored.data(), stored.size(), "phone.jpg");
  EXPECT_TRUE(detector.find_faces(ignored).empty()) << "sideways faces should not be found";
}

// -------------------------------------------------------------- limits ----

TEST(PhotoLimits, DecompressionBombsAreRefusedBeforeDecoding) {
  // An 8-byte signature and a 100000 x 100000 IHDR: 10 gigapixels promised,
  // nothing decodable behind them.
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  append_u32(&png, 13, true);
  png.insert(png.end(), {'I', 'H', 'D', 'R'});
  append_u32(&png, 100000, true);
  append_u32(&png, 100000, true);
  png.insert(png.end(), {8, 2, 0, 0, 0});
  append_u32(&png, crc32(crc32(0, nullptr, 0), png.data() + 12, 17), true);  // a valid IHDR: only its size lies
  expect_error([&] { decode_photo(png.data(), png.size(), "bomb.png"); }, ErrorCode::kInvalidArgument,
               "bomb.png declares 100000x100000 = 10000000000 pixels");

  // A JPEG whose frame header claims 60000 x 60000.
  std::vector<uint8_t> jpeg = image::encode_jpeg(numbered_3x2(), 90);
  for (size_t i = 2; i + 9 < jpeg.size(); ++i) {
    if (jpeg[i] == 0xff && jpeg[i + 1] == 0xc0) {
      jpeg[i + 5] = 60000 >> 8;
      jpeg[i + 6] = 60000 & 0xff;
      jpeg[i + 7] = 60000 >> 8;
      jpeg[i + 8] = 60000 & 0xff;
      break;
    }
  }
  expect_error([&] { decode_photo(jpeg.data(), jpeg.size(), "bomb.jpg"); }, ErrorCode::kInvalidArgument,
               "over the limit of 50000000");

  // The limit is the caller's.
  const std::vector<uint8_t> small = image::encode_png(numbered_3x2());
  EXPECT_NO_THROW(decode_photo(small.data(), small.size(), "small.png", 6));
  expect_error([&] { decode_photo(small.data(), small.size(), "small.png", 5); }, ErrorCode::kInvalidArgument,
               "over the limit of 5");
}

TEST(PhotoErrors, BrokenFilesAreTypedErrorsNamingTheFile) {
  test::TempDir dir;
  const std::string text = dir.file("notes.jpg");
  write_file_atomic(text, std::string("not an image at all"));
  expect_error([&] { load_photo(text); }, ErrorCode::kCorruptFile, "notes.jpg");

  std::vector<uint8_t> jpeg = image::encode_jpeg(numbered_3x2(), 90);
  jpeg.resize(jpeg.size() / 2);
  expect_error([&] { decode_photo(jpeg.data(), jpeg.size(), "cut.jpg"); }, ErrorCode::kCorruptFile, "cut.jpg");

  expect_error([&] { decode_photo(nullptr, 0, "empty.png"); }, ErrorCode::kCorruptFile, "empty.png");
  expect_error([&] { load_photo(dir.file("missing.png")); }, ErrorCode::kNotFound, "missing.png");
}

// ------------------------------------------------------------- formats ----

TEST(PhotoFormats, GrayPaletteAnd16BitPhotosAreAligned) {
  FEU_SHARED_FILE_OR_SKIP(path, "faces/astronaut.png");
  const image::Image rgb = load_shared_photo(path);
  const int w = rgb.width, h = rgb.height;
  std::vector<uint8_t> gray(static_cast<size_t>(w) * h), gray16, rgb16;
  for (size_t i = 0; i < gray.size(); ++i)
    gray[i] = static_cast<uint8_t>((rgb.rgb[i * 3] * 299 + rgb.rgb[i * 3 + 1] * 587 + rgb.rgb[i * 3 + 2] * 114) / 1000);
  for (uint8_t v : gray) gray16.insert(gray16.end(), {v, uint8_t(255 - v)});  // high byte first
  for (uint8_t v : rgb.rgb) rgb16.insert(rgb16.end(), {v, 0x80});
  std::vector<uint8_t> palette;  // the gray ramp
  for (int i = 0; i < 256; ++i) palette.insert(palette.end(), {uint8_t(i), uint8_t(i), uint8_t(i)});

  struct Variant {
    const char* name;
    std::vector<uint8_t> bytes;
  };
  const std::vector<Variant> grays = {
      {"gray8.png", make_png(w, h, PNG_COLOR_TYPE_GRAY, 8, gray)},
      {"palette.png", make_png(w, h, PNG_COLOR_TYPE_PALETTE, 8, gray, palette)},
      {"gray16.png", make_png(w, h, PNG_COLOR_TYPE_GRAY, 16, gray16)},
  };
  FaceDetector detector;
  image::Image gray_rgb;
  for (const Variant& v : grays) {
    const image::Image decoded = decode_photo(v.bytes.data(), v.bytes.size(), v.name);
    if (gray_rgb.rgb.empty()) gray_rgb = decoded;
    EXPECT_EQ(decoded.rgb, gray_rgb.rgb) << v.name << " decodes to the same gray photo";
  }
  const std::vector<Face> faces = align_faces(detector, gray_rgb, "gray8.png");
  const image::Image& aligned = faces.front().aligned.image;
  for (size_t i = 0; i < aligned.rgb.size(); i += 3) {
    ASSERT_EQ(aligned.rgb[i], aligned.rgb[i + 1]);
    ASSERT_EQ(aligned.rgb[i], aligned.rgb[i + 2]);
  }

  const std::vector<uint8_t> png16 = make_png(w, h, PNG_COLOR_TYPE_RGB, 16, rgb16);
  EXPECT_EQ(decode_photo(png16.data(), png16.size(), "rgb16.png").rgb, rgb.rgb) << "16-bit keeps the high byte";

  const std::vector<uint8_t> gray_jpeg = make_jpeg(w, h, JCS_GRAYSCALE, gray, 95);
  const image::Image gray_photo = decode_photo(gray_jpeg.data(), gray_jpeg.size(), "gray.jpg");
  EXPECT_FALSE(align_faces(detector, gray_photo, "gray.jpg").empty());
}

// A print shop's CMYK JPEG (Adobe marker, inverted ink, as Photoshop and
// Pillow write it) decodes to what Pillow's convert("RGB") gives, exactly.
// The fixture and Pillow 9.4's RGB of it: tests/face/data (made by
// Image.fromarray(cmyk, "CMYK").save(quality=95)).
TEST(PhotoFormats, CmykJpegFixtureMatchesPillowExactly) {
  const std::string data = std::string(FEU_SOURCE_DIR) + "/tests/face/data/";
  const image::Image got = load_photo(data + "cmyk_adobe.jpg");
  const image::Image pillow = image::decode_file(data + "cmyk_adobe_pillow_rgb.png");
  ASSERT_EQ(got.width, 16);
  ASSERT_EQ(got.height, 12);
  EXPECT_EQ(got.rgb, pillow.rgb);
}

// A CMYK JPEG (print workflows) decodes as Pillow's convert("RGB") does:
// samples read with Adobe polarity, stored 100 -> ink 155 of each of C, M, Y, K,
// (255 - 155) - (255 - 155) * 155 / 255 = 39 per channel.
TEST(PhotoFormats, CmykJpegDecodesAsPillowConvertsIt) {
  const std::vector<uint8_t> cmyk(8 * 8 * 4, 100);
  const std::vector<uint8_t> jpeg = make_jpeg(8, 8, JCS_CMYK, cmyk, 95);
  const image::Image photo = decode_photo(jpeg.data(), jpeg.size(), "print.jpg");
  ASSERT_EQ(photo.rgb.size(), 8u * 8 * 3);
  for (uint8_t v : photo.rgb) EXPECT_NEAR(v, 39, 2);
}

// --------------------------------------------------------------- faces ----

TEST(FaceErrors, PhotoWithoutFaceIsNoFaceNamingIt) {
  FEU_SHARED_FILE_OR_SKIP(path, "faces/dogs.jpg");
  FaceDetector detector;
  const image::Image photo = load_photo(path);
  expect_error([&] { align_faces(detector, photo, path); }, ErrorCode::kNoFace, "no face found in " + path);
  EXPECT_STREQ(error_code_name(ErrorCode::kNoFace), "no_face");
}

TEST(FaceErrors, MissingOrForeignLandmarkModel) {
  test::TempDir dir;
  DetectorOptions options;
  options.predictor_path = dir.file("nowhere.dat");
  expect_error([&] { FaceDetector{options}; }, ErrorCode::kNotFound, "nowhere.dat");
  options.predictor_path = dir.file("foreign.dat");
  write_file_atomic(options.predictor_path, std::string(4096, 'x'));
  expect_error([&] { FaceDetector{options}; }, ErrorCode::kCorruptFile, "foreign.dat");
  options.predictor_path = kDefaultPredictorPath;
  options.upsample = -1;
  expect_error([&] { FaceDetector{options}; }, ErrorCode::kInvalidArgument, "upsample");
}

// A face far larger than its 14 x 10 photo: the reflect pad wraps several
// times and the blur reaches across it. The digest is that of the reference
// (ffhq-dataset's code with numpy 1.24, scipy 1.10, Pillow 9.4) on the same
// pixels and landmarks.
TEST(FaceAlign, FaceLargerThanItsPhotoMatchesTheReference) {
  image::Image photo;
  photo.width = 14;
  photo.height = 10;
  for (int y = 0; y < photo.height; ++y)
    for (int x = 0; x < photo.width; ++x)
      for (int c = 0; c < 3; ++c) photo.rgb.push_back(static_cast<uint8_t>((x * 29 + y * 17 + c * 60 + (x * y) % 13) % 256));
  const int points[136] = {
      -14, -3,  -14, 3,   -13, 8,   -13, 14,  -11, 20,  -8,  25, -3, 29, 1,  33, 7,  34, 13, 33, 18, 30, 23,
      27,  27,  22,  29,  17,  31,  11,  32,  5,   33,  -1,  -10, -8, -7, -11, -3, -12, 1, -11, 5, -9, 15, -9,
      19,  -10, 23,  -10, 27,  -9,  29,  -6,  9,   -4,  9,   0,  9,  4,  9,  8,  4,  10, 6,  11, 9,  12, 11,
      11,  14,  11,  -6,  -5,  -3,  -6,  0,   -6,  3,   -3,  0,  -3, -4, -3, 16, -3, 19, -5, 22, -5, 24, -3,
      22,  -2,  19,  -2,  -3,  15,  1,   14,  6,   14,  8,   15, 11, 15, 15, 15, 19, 15, 15, 20, 11, 22, 8,
      23,  5,   22,  1,   20,  -1,  15,  5,   16,  8,   17,  11, 16, 18, 16, 11, 20, 8,  20, 5,  20};
  Landmarks landmarks;
  for (int i = 0; i < kLandmarkCount; ++i) landmarks[i] = {points[i * 2], points[i * 2 + 1]};
  const AlignedFace aligned = align_face(photo, landmarks, kE4eAlign);
  EXPECT_TRUE(aligned.padded);
  EXPECT_EQ(aligned.shrink, 0);
  EXPECT_EQ(sha256_bytes(aligned.image.rgb.data(), aligned.image.rgb.size()),
            "cf536b1329a1f3e5a15a447f9af2048c05ebd27a37a0eb4c14707dd7d9c9f1f0");
}

TEST(FaceAlign, BadSettingsAndFacesOffThePhotoAreRefused) {
  image::Image photo;
  photo.width = photo.height = 16;
  photo.rgb.assign(16 * 16 * 3, 128);
  Landmarks landmarks;
  for (int i = 0; i < kLandmarkCount; ++i) landmarks[i] = {4 + i % 8, 4 + i / 8};
  expect_error([&] { align_face(photo, landmarks, {512, 256, true}); }, ErrorCode::kInvalidArgument, "transform");
  expect_error([&] { align_face(image::Image{}, landmarks); }, ErrorCode::kInvalidArgument, "RGB8");
  Landmarks far_away = landmarks;
  for (Point& p : far_away) p = {p.x + 100000, p.y + 100000};
  expect_error([&] { align_face(photo, far_away); }, ErrorCode::kInvalidArgument, "outside");
}

// Detection on a scaled copy (the fast path for 12 MP photos) finds the same
// face, with landmarks a few pixels from those of the exact path.
TEST(FaceDetect, ScaledCopyDetectionFindsTheSameFaces) {
  FEU_SHARED_FILE_OR_SKIP(path, "parity/face_align.h5");
  h5::File reference = h5::File::open_read(path);
  const std::vector<uint8_t> bytes = reference.read_uint8("astronaut_x6.jpg/file");
  const std::vector<int64_t> expected = reference.read_int64("astronaut_x6.jpg/landmarks");
  const image::Image photo = decode_photo(bytes.data(), bytes.size(), "astronaut_x6.jpg");
  DetectorOptions options;
  options.detect_max_pixels = 1 << 20;
  FaceDetector detector(options);
  const std::vector<DetectedFace> faces = detector.find_faces(photo);
  ASSERT_GE(faces.size(), 1u);
  int max_diff = 0;
  for (int i = 0; i < kLandmarkCount; ++i)
    max_diff = std::max({max_diff, std::abs(faces[0].landmarks[i].x - static_cast<int>(expected[i * 2])),
                         std::abs(faces[0].landmarks[i].y - static_cast<int>(expected[i * 2 + 1]))});
  std::printf("  scaled-copy detection on a 9.4 MP photo: landmarks within %d px of the reference\n", max_diff);
  EXPECT_LE(max_diff, 12) << "under 0.5% of the 3072 px photo";
}

}  // namespace
}  // namespace feu::face
