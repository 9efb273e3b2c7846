// dlib's HOG face detector and 68-point shape predictor, called the way dlib's
// Python binding calls them for `detector(img, 1)` and `predictor(img, box)`
// (tools/python/src/simple_object_detector_py.h, run_detector_with_upscale1),
// so that the boxes and landmarks are dlib's own.
#include "face/detector.h"

#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>
#include <dlib/serialize.h>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "image/pillow_resample.h"

namespace feu::face {

// dlib's generic image interface over image::Image without a copy: rgb_pixel
// is three bytes, the layout of Image::rgb.
struct DlibRgbView {
  const image::Image* image;
};
static_assert(sizeof(dlib::rgb_pixel) == 3, "dlib::rgb_pixel must be packed RGB");
inline long num_rows(const DlibRgbView& view) { return view.image->height; }
inline long num_columns(const DlibRgbView& view) { return view.image->width; }
inline long width_step(const DlibRgbView& view) { return view.image->width * 3L; }
inline const void* image_data(const DlibRgbView& view) { return view.image->rgb.data(); }

}  // namespace feu::face

namespace dlib {
template <>
struct image_traits<feu::face::DlibRgbView> {
  typedef rgb_pixel pixel_type;
};
}  // namespace dlib

namespace feu::face {

struct FaceDetector::Impl {
  DetectorOptions options;
  dlib::frontal_face_detector detector = dlib::get_frontal_face_detector();
  dlib::shape_predictor predictor;
};

FaceDetector::FaceDetector(const DetectorOptions& options) : impl_(std::make_unique<Impl>()) {
  check(options.upsample >= 0 && options.upsample <= 3, ErrorCode::kInvalidArgument,
        "face detector upsample must be 0..3, got " + std::to_string(options.upsample));
  check(options.detect_max_pixels >= 0, ErrorCode::kInvalidArgument,
        "detect_max_pixels must be 0 (off) or positive, got " + std::to_string(options.detect_max_pixels));
  impl_->options = options;
  check(std::ifstream(options.predictor_path).good(), ErrorCode::kNotFound,
        "cannot open the landmark model " + options.predictor_path +
            " (expected dlib's shape_predictor_68_face_landmarks.dat: apt-get install libdlib-data, or "
            "give its path)");
  try {
    dlib::deserialize(options.predictor_path) >> impl_->predictor;
  } catch (const std::exception& e) {
    throw Error(ErrorCode::kCorruptFile, "cannot read the landmark model " + options.predictor_path +
                                             " (expected a dlib shape predictor): " + e.what());
  }
  check(impl_->predictor.num_parts() == static_cast<unsigned long>(kLandmarkCount), ErrorCode::kCorruptFile,
        "the landmark model " + options.predictor_path + " predicts " +
            std::to_string(impl_->predictor.num_parts()) + " points, expected " +
            std::to_string(kLandmarkCount) + " (the iBUG 300-W layout)");
}

FaceDetector::~FaceDetector() = default;
FaceDetector::FaceDetector(FaceDetector&&) noexcept = default;
FaceDetector& FaceDetector::operator=(FaceDetector&&) noexcept = default;

const DetectorOptions& FaceDetector::options() const { return impl_->options; }

namespace {

void check_photo(const image::Image& photo) {
  check(photo.width > 0 && photo.height > 0 &&
            photo.rgb.size() == static_cast<size_t>(photo.width) * photo.height * 3,
        ErrorCode::kInvalidArgument,
        "face detection: expected a non-empty RGB8 image (got " + std::to_string(photo.width) + "x" +
            std::to_string(photo.height) + ", " + std::to_string(photo.rgb.size()) + " bytes)");
}

// run_detector_with_upscale1 for an RGB image, adjust_threshold 0.
std::vector<FaceBox> run_detector(dlib::frontal_face_detector& detector, const image::Image& photo,
                                  int upsample) {
  const DlibRgbView view{&photo};
  std::vector<dlib::rect_detection> detections;
  if (upsample == 0) {
    detector(view, detections, 0.0);
  } else {
    dlib::pyramid_down<2> pyramid;
    dlib::array2d<dlib::rgb_pixel> upsampled;
    dlib::pyramid_up(view, upsampled, pyramid);
    for (int level = 1; level < upsample; ++level) dlib::pyramid_up(upsampled);
    detector(upsampled, detections, 0.0);
    for (dlib::rect_detection& detection : detections)
      detection.rect = pyramid.rect_down(detection.rect, upsample);
  }
  std::vector<FaceBox> boxes;
  for (const dlib::rect_detection& d : detections)
    boxes.push_back({d.rect.left(), d.rect.top(), d.rect.right(), d.rect.bottom(), d.detection_confidence});
  return boxes;
}

}  // namespace

std::vector<FaceBox> FaceDetector::detect(const image::Image& photo) {
  check_photo(photo);
  const DetectorOptions& options = impl_->options;
  const int64_t pixels = static_cast<int64_t>(photo.width) * photo.height;
  if (options.detect_max_pixels == 0 || pixels <= options.detect_max_pixels)
    return run_detector(impl_->detector, photo, options.upsample);

  const double scale = std::sqrt(static_cast<double>(options.detect_max_pixels) / pixels);
  const int small_width = std::max(1, static_cast<int>(photo.width * scale));
  const int small_height = std::max(1, static_cast<int>(photo.height * scale));
  const image::Image small =
      image::pillow_resize(photo, small_width, small_height, image::PillowFilter::kBilinear);
  std::vector<FaceBox> boxes = run_detector(impl_->detector, small, options.upsample);
  // A box covers pixels [left, right + 1) of the copy: the same span of the photo.
  const double sx = static_cast<double>(photo.width) / small_width;
  const double sy = static_cast<double>(photo.height) / small_height;
  for (FaceBox& box : boxes) {
    box.left = std::lround(box.left * sx);
    box.top = std::lround(box.top * sy);
    box.right = std::lround((box.right + 1) * sx) - 1;
    box.bottom = std::lround((box.bottom + 1) * sy) - 1;
  }
  return boxes;
}

Landmarks FaceDetector::landmarks(const image::Image& photo, const FaceBox& box) const {
  check_photo(photo);
  const dlib::full_object_detection shape =
      impl_->predictor(DlibRgbView{&photo}, dlib::rectangle(box.left, box.top, box.right, box.bottom));
  Landmarks points;
  for (int i = 0; i < kLandmarkCount; ++i)
    points[i] = {static_cast<int>(shape.part(i).x()), static_cast<int>(shape.part(i).y())};
  return points;
}

std::vector<DetectedFace> FaceDetector::find_faces(const image::Image& photo) {
  std::vector<DetectedFace> faces;
  for (const FaceBox& box : detect(photo)) faces.push_back({box, landmarks(photo, box)});
  return faces;
}

}  // namespace feu::face
