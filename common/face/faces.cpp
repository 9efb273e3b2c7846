#include "face/faces.h"

#include "core/error.h"

namespace feu::face {

std::vector<Face> align_faces(FaceDetector& detector, const image::Image& photo, const std::string& name,
                              const AlignSettings& settings) {
  std::vector<Face> faces;
  for (DetectedFace& found : detector.find_faces(photo))
    faces.push_back({found.box, found.landmarks, align_face(photo, found.landmarks, settings)});
  check(!faces.empty(), ErrorCode::kNoFace,
        "no face found in " + name + " (" + std::to_string(photo.width) + "x" + std::to_string(photo.height) +
            " pixels; expected at least one roughly frontal face)");
  return faces;
}

}  // namespace feu::face
