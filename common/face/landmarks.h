// What the face module finds in a photo: the detector's box and dlib's 68
// landmarks (iBUG 300-W order: jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
// mouth 48-67), in the upright photo's pixel coordinates.
#pragma once

#include <array>

namespace feu::face {

struct Point {
  int x = 0;
  int y = 0;
};

constexpr int kLandmarkCount = 68;
using Landmarks = std::array<Point, kLandmarkCount>;

// dlib's rectangle: the pixels left..right, top..bottom, inclusive (they may
// reach outside the photo). `confidence` is the HOG detector's score.
struct FaceBox {
  long left = 0;
  long top = 0;
  long right = 0;
  long bottom = 0;
  double confidence = 0.0;
};

}  // namespace feu::face
