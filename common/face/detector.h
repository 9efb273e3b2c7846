// Faces and their 68 landmarks with dlib, as encoder4editing's
// utils/alignment.py finds them: the HOG frontal_face_detector on the photo
// upsampled once (pyramid_up), boxes scaled back, then the 68-point shape
// predictor on the photo itself. dlib stays inside detector.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "face/landmarks.h"
#include "image/codec.h"

namespace feu::face {

// Debian's libdlib-data. Its training data (iBUG 300-W) excludes commercial
// use: operators choose their own model file (README, "Face alignment").
constexpr const char* kDefaultPredictorPath = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";

struct DetectorOptions {
  std::string predictor_path = kDefaultPredictorPath;
  // Times the photo is doubled before the HOG scan (finds faces down to about
  // 40 px instead of 80); e4e and FFHQ use 1.
  int upsample = 1;
  // 0: detect on the photo itself (the reference's results, exactly). Above 0:
  // photos with more pixels are detected on a copy scaled down to at most this
  // many pixels, the boxes scaled back, and the landmarks found on the photo
  // itself: much faster on 12 MP photos, with boxes (hence landmarks) that
  // can differ from the reference's by a few pixels.
  int64_t detect_max_pixels = 0;
};

struct DetectedFace {
  FaceBox box;
  Landmarks landmarks;
};

class FaceDetector {
 public:
  // Loads the shape predictor. Errors: not_found (no file), corrupt_file (not
  // a dlib shape predictor), invalid_argument (options out of range).
  explicit FaceDetector(const DetectorOptions& options = {});
  ~FaceDetector();
  FaceDetector(FaceDetector&&) noexcept;
  FaceDetector& operator=(FaceDetector&&) noexcept;

  const DetectorOptions& options() const;

  // Face boxes in the detector's order (most confident first). Not
  // thread-safe: one detector per thread.
  std::vector<FaceBox> detect(const image::Image& photo);
  // The 68 landmarks inside one box.
  Landmarks landmarks(const image::Image& photo, const FaceBox& box) const;
  // Both, for every face.
  std::vector<DetectedFace> find_faces(const image::Image& photo);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace feu::face
