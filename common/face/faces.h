// Every face of a photo, found, landmarked and aligned: the face module's one
// call. encoder4editing aligns only the last face dlib finds; feu keeps them all,
// in the detector's order.
#pragma once

#include <string>
#include <vector>

#include "face/align.h"
#include "face/detector.h"
#include "face/landmarks.h"
#include "face/photo.h"

namespace feu::face {

struct Face {
  FaceBox box;
  Landmarks landmarks;
  AlignedFace aligned;
};

// Errors: no_face naming `name` when the detector finds no face; those of
// align_face.
std::vector<Face> align_faces(FaceDetector& detector, const image::Image& photo, const std::string& name,
                              const AlignSettings& settings = kE4eAlign);

}  // namespace feu::face
