// A user's photo to a W+ code: decode (EXIF upright), find every face (dlib),
// align the chosen one as e4e was trained (FFHQ alignment, 256²) and invert it
// with a FaceEncoder. Plain C++: the encoder sits behind edit/models.h.
//
// Photos repeat in production (a user tries several instructions on one
// picture), so inversions are cached by the photo's content hash and the face
// asked for: a repeat skips decoding, detection, alignment and the encoder.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edit/lru_cache.h"
#include "edit/models.h"
#include "face/align.h"
#include "face/detector.h"
#include "image/codec.h"

namespace feu::edit {

struct PhotoInversion {
  std::vector<float> wplus;    // [num_ws, w_dim] row-major
  int64_t face = 0;            // the face inverted, in the detector's order
  int64_t faces_found = 0;
  face::FaceBox box;
  face::Quad quad;             // where the aligned square lies in the photo (for pasting back)
  int photo_width = 0;         // the upright photo
  int photo_height = 0;
  // {face, faces_found, box, quad, photo_size}
  nlohmann::json describe() const;
};

class PhotoInverter {
 public:
  PhotoInverter(std::shared_ptr<FaceEncoder> encoder,    // aligned 256² faces -> W+ (e4e)
                const face::DetectorOptions& detector,   // landmark model, upsampling
                size_t cache_size,                       // inversions kept (LRU); 0 disables the cache
                int64_t max_pixels = image::kDefaultMaxPixels);  // larger photos are refused before decoding

  // Inverts face `face` (detector order; unset: the largest box) of the
  // encoded photo. `photo_out`, when given, receives the decoded upright photo
  // (decoded again on a cache hit). `cache_hit` tells whether the inversion
  // came from the cache. Errors: corrupt_file (not a PNG/JPEG, truncated),
  // invalid_argument (over the pixel limit; a face index the photo does not
  // have), no_face. Thread-safe (one detector, serialized).
  PhotoInversion invert(const std::vector<uint8_t>& photo, std::optional<int64_t> face,
                        image::Image* photo_out = nullptr, bool* cache_hit = nullptr);

  const FaceEncoder& encoder() const { return *encoder_; }
  // {cache: {size, hits, misses}, encoder}
  nlohmann::json info() const;

 private:
  image::Image decode(const std::vector<uint8_t>& photo) const;

  std::shared_ptr<FaceEncoder> encoder_;
  int64_t max_pixels_;
  std::mutex detector_mutex_;  // dlib's detector is not thread-safe
  face::FaceDetector detector_;
  LruCache<PhotoInversion> cache_;
};

}  // namespace feu::edit
