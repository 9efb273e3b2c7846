// The face module against the reference (parity/face_align.h5, "Real photos"):
// dlib's landmarks from Python on every face, e4e's 256 crops and FFHQ's 1024
// crops from Pillow 9.4 / scipy / numpy.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "core/h5.h"
#include "face/faces.h"
#include "test_support.h"

namespace feu::face {
namespace {

constexpr const char* kParityFile = "parity/face_align.h5";

struct ReferencePhoto {
  std::string name;
  std::vector<uint8_t> file;
  std::vector<Landmarks> landmarks;
  std::vector<uint8_t> aligned256;  // [F, 256, 256, 3]
  std::vector<int64_t> shrink;
  std::vector<int64_t> padded;
  std::vector<uint8_t> aligned1024;  // [1024, 1024, 3] of face 0, or empty
};

std::vector<ReferencePhoto> read_reference(const std::string& path) {
  h5::File file = h5::File::open_read(path);
  std::vector<ReferencePhoto> photos;
  for (const std::string& name : file.list("/")) {
    ReferencePhoto photo;
    photo.name = name;
    photo.file = file.read_uint8(name + "/file");
    h5::Shape shape;
    const std::vector<int64_t> points = file.read_int64(name + "/landmarks", &shape);
    for (int64_t f = 0; f < shape[0]; ++f) {
      Landmarks landmarks;
      for (int i = 0; i < kLandmarkCount; ++i)
        landmarks[i] = {static_cast<int>(points[(f * kLandmarkCount + i) * 2]),
                        static_cast<int>(points[(f * kLandmarkCount + i) * 2 + 1])};
      photo.landmarks.push_back(landmarks);
    }
    photo.aligned256 = file.read_uint8(name + "/aligned256");
    photo.shrink = file.read_int64(name + "/shrink");
    photo.padded = file.read_int64(name + "/padded");
    if (file.has(name + "/aligned1024_face0")) photo.aligned1024 = file.read_uint8(name + "/aligned1024_face0");
    photos.push_back(std::move(photo));
  }
  return photos;
}

struct Agreement {
  int max_diff = 0;
  double within_one = 0.0;  // fraction of values that differ by at most 1
};

Agreement compare(const uint8_t* ours, const uint8_t* reference, size_t n) {
  Agreement a;
  size_t close = 0;
  for (size_t i = 0; i < n; ++i) {
    const int d = std::abs(static_cast<int>(ours[i]) - static_cast<int>(reference[i]));
    a.max_diff = std::max(a.max_diff, d);
    close += d <= 1;
  }
  a.within_one = static_cast<double>(close) / n;
  return a;
}

class FaceParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = test::shared_file(kParityFile);
    if (!path.empty()) photos_ = new std::vector<ReferencePhoto>(read_reference(path));
  }
  static void TearDownTestSuite() {
    delete photos_;
    photos_ = nullptr;
  }
  static std::vector<ReferencePhoto>* photos_;
};
std::vector<ReferencePhoto>* FaceParity::photos_ = nullptr;

// The fixture's landmarks are those of dlib's boxes without upsampling: with
// upsample 0 every reference face is reproduced to the pixel, while e4e's
// upsample 1 (the default, DetectorOptions) moves them by 1-7 px and reorders
// two faces. The reference also lacks one detection dlib finds here on
// astronaut_x6.jpg (score 0.07, last in the order, robust to the JPEG decoder's
// settings): reference faces must come first, in order, and anything after
// them must score below all of them.
TEST_F(FaceParity, LandmarksAreDlibsOnEveryFace) {
  FEU_SHARED_FILE_OR_SKIP(path, kParityFile);
  DetectorOptions options;
  options.upsample = 0;
  FaceDetector detector(options);
  int faces = 0;
  for (const ReferencePhoto& photo : *photos_) {
    const image::Image image = decode_photo(photo.file.data(), photo.file.size(), photo.name);
    const std::vector<DetectedFace> found = detector.find_faces(image);
    ASSERT_GE(found.size(), photo.landmarks.size()) << photo.name;
    double lowest_matched = 1e9;
    for (size_t f = 0; f < photo.landmarks.size(); ++f) {
      int max_diff = 0;
      for (int i = 0; i < kLandmarkCount; ++i) {
        max_diff = std::max({max_diff, std::abs(found[f].landmarks[i].x - photo.landmarks[f][i].x),
                             std::abs(found[f].landmarks[i].y - photo.landmarks[f][i].y)});
      }
      EXPECT_EQ(max_diff, 0) << photo.name << " face " << f;
      lowest_matched = std::min(lowest_matched, found[f].box.confidence);
      ++faces;
    }
    for (size_t f = photo.landmarks.size(); f < found.size(); ++f) {
      std::printf("  %s: extra detection %zu, score %.4f\n", photo.name.c_str(), f, found[f].box.confidence);
      EXPECT_LT(found[f].box.confidence, 0.5 * lowest_matched) << photo.name << " face " << f;
    }
  }
  EXPECT_GE(faces, 8);
}

// The crops from the reference's landmarks, so that a detection difference
// cannot hide an alignment one.
TEST_F(FaceParity, E4eCropsMatchThePillowReference) {
  FEU_SHARED_FILE_OR_SKIP(path, kParityFile);
  constexpr size_t kCrop = 256 * 256 * 3;
  int faces = 0;
  bool saw_padded = false, saw_shrunk = false;
  for (const ReferencePhoto& photo : *photos_) {
    const image::Image image = decode_photo(photo.file.data(), photo.file.size(), photo.name);
    for (size_t f = 0; f < photo.landmarks.size(); ++f) {
      const AlignedFace aligned = align_face(image, photo.landmarks[f], kE4eAlign);
      ASSERT_EQ(aligned.image.width, 256);
      ASSERT_EQ(aligned.image.height, 256);
      EXPECT_EQ(aligned.shrink, photo.shrink[f]) << photo.name << " face " << f;
      EXPECT_EQ(aligned.padded, photo.padded[f] != 0) << photo.name << " face " << f;
      const Agreement a = compare(aligned.image.rgb.data(), photo.aligned256.data() + f * kCrop, kCrop);
      std::printf("  aligned256 %s face %zu (shrink %d, padded %d): max |diff| %d, %.4f%% within 1\n",
                  photo.name.c_str(), f, aligned.shrink, aligned.padded ? 1 : 0, a.max_diff, 100 * a.within_one);
      EXPECT_LE(a.max_diff, 4) << photo.name << " face " << f;
      EXPECT_GE(a.within_one, 0.99) << photo.name << " face " << f;
      saw_padded |= aligned.padded;
      saw_shrunk |= aligned.shrink > 1;
      ++faces;
    }
  }
  EXPECT_GE(faces, 8);
  EXPECT_TRUE(saw_padded) << "the fixtures should exercise the reflect-pad branch";
  EXPECT_TRUE(saw_shrunk) << "the fixtures should exercise the shrink branch";
}

TEST_F(FaceParity, FfhqCropsMatchThePillowReference) {
  FEU_SHARED_FILE_OR_SKIP(path, kParityFile);
  int faces = 0;
  for (const ReferencePhoto& photo : *photos_) {
    if (photo.aligned1024.empty()) continue;
    const image::Image image = decode_photo(photo.file.data(), photo.file.size(), photo.name);
    const AlignedFace aligned = align_face(image, photo.landmarks[0], kFfhqAlign);
    ASSERT_EQ(aligned.image.width, 1024);
    ASSERT_EQ(aligned.image.rgb.size(), photo.aligned1024.size());
    const Agreement a = compare(aligned.image.rgb.data(), photo.aligned1024.data(), photo.aligned1024.size());
    std::printf("  aligned1024 %s face 0: max |diff| %d, %.4f%% within 1\n", photo.name.c_str(), a.max_diff,
                100 * a.within_one);
    EXPECT_LE(a.max_diff, 4) << photo.name;
    EXPECT_GE(a.within_one, 0.99) << photo.name;
    ++faces;
  }
  EXPECT_GE(faces, 1);
}

}  // namespace
}  // namespace feu::face
