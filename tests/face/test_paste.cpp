// Pasting an edited face back into its photo (the --paste result).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "face/faces.h"
#include "core/error.h"
#include "face/paste.h"
#include "test_support.h"

namespace feu::face {
namespace {

image::Image inverted(const image::Image& image) {
  image::Image out = image;
  for (uint8_t& v : out.rgb) v = static_cast<uint8_t>(255 - v);
  return out;
}

TEST(Paste, ChangesThePhotoOnlyInsideTheFaceSquareAndRestoresAnUneditedFace) {
  FEU_SHARED_FILE_OR_SKIP(path, "faces/astronaut.png");
  const image::Image photo = load_photo(path);
  FaceDetector detector;
  const std::vector<Face> faces = align_faces(detector, photo, "astronaut.png");
  ASSERT_FALSE(faces.empty());
  const Face& face = faces.front();
  const auto& q = face.aligned.quad.xy;
  const double min_x = std::min({q[0], q[2], q[4], q[6]}), max_x = std::max({q[0], q[2], q[4], q[6]});
  const double min_y = std::min({q[1], q[3], q[5], q[7]}), max_y = std::max({q[1], q[3], q[5], q[7]});
  const double cx = (q[0] + q[4]) / 2, cy = (q[1] + q[5]) / 2;

  // An edit that changes every pixel of the face: inside the square the photo
  // changes, outside it not one byte does, and the result has the photo's size.
  const image::Image edited = paste_face(photo, inverted(face.aligned.image), face.aligned.quad);
  ASSERT_EQ(edited.width, photo.width);
  ASSERT_EQ(edited.height, photo.height);
  size_t changed_outside = 0, changed_inside = 0;
  for (int y = 0; y < photo.height; ++y)
    for (int x = 0; x < photo.width; ++x) {
      const size_t i = (static_cast<size_t>(y) * photo.width + x) * 3;
      const bool differs = edited.rgb[i] != photo.rgb[i] || edited.rgb[i + 1] != photo.rgb[i + 1] ||
                           edited.rgb[i + 2] != photo.rgb[i + 2];
      const bool in_box = x >= min_x - 1 && x <= max_x + 1 && y >= min_y - 1 && y <= max_y + 1;
      if (differs && !in_box) ++changed_outside;
      if (differs && in_box) ++changed_inside;
    }
  EXPECT_EQ(changed_outside, 0u);
  EXPECT_GT(changed_inside, 1000u);
  const size_t centre = (static_cast<size_t>(std::lround(cy)) * photo.width + std::lround(cx)) * 3;
  EXPECT_GT(std::abs(int(edited.rgb[centre]) - int(photo.rgb[centre])), 30);

  // The unedited crop pasted back gives the photo again, up to resampling twice.
  const image::Image same = paste_face(photo, face.aligned.image, face.aligned.quad);
  double sum = 0;
  size_t count = 0;
  for (int y = static_cast<int>(cy) - 30; y <= static_cast<int>(cy) + 30; ++y)
    for (int x = static_cast<int>(cx) - 30; x <= static_cast<int>(cx) + 30; ++x)
      for (int c = 0; c < 3; ++c, ++count) {
        const size_t i = (static_cast<size_t>(y) * photo.width + x) * 3 + c;
        sum += std::abs(int(same.rgb[i]) - int(photo.rgb[i]));
      }
  EXPECT_LT(sum / count, 8.0) << "mean level difference around the face centre";
}

TEST(Paste, RefusesBadInput) {
  image::Image photo{8, 8, std::vector<uint8_t>(8 * 8 * 3, 0)};
  image::Image face{4, 4, std::vector<uint8_t>(4 * 4 * 3, 0)};
  Quad quad;
  quad.xy = {1, 1, 1, 5, 5, 5, 5, 1};
  EXPECT_NO_THROW(paste_face(photo, face, quad));
  EXPECT_THROW(paste_face(photo, image::Image{4, 2, std::vector<uint8_t>(24, 0)}, quad), Error);
  EXPECT_THROW(paste_face(photo, face, quad, 0.0), Error);
  Quad flat;
  flat.xy = {1, 1, 1, 1, 1, 1, 1, 1};
  EXPECT_THROW(paste_face(photo, face, flat), Error);
}

}  // namespace
}  // namespace feu::face
