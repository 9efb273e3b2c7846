#include "edit/photo_inversion.h"

#include "core/error.h"
#include "core/files.h"
#include "face/photo.h"

namespace feu::edit {

nlohmann::json PhotoInversion::describe() const {
  nlohmann::json quad_json = nlohmann::json::array();
  for (size_t i = 0; i < quad.xy.size(); i += 2) quad_json.push_back({quad.xy[i], quad.xy[i + 1]});
  return {{"face", face},
          {"faces_found", faces_found},
          {"box", {box.left, box.top, box.right, box.bottom}},
          {"quad", quad_json},
          {"photo_size", {photo_width, photo_height}}};
}

PhotoInverter::PhotoInverter(std::shared_ptr<FaceEncoder> encoder, const face::DetectorOptions& detector,
                             size_t cache_size, int64_t max_pixels)
    : encoder_(std::move(encoder)), max_pixels_(max_pixels), detector_(detector), cache_(cache_size) {
  check(encoder_ != nullptr, ErrorCode::kInternal, "PhotoInverter needs a face encoder");
}

image::Image PhotoInverter::decode(const std::vector<uint8_t>& photo) const {
  return face::decode_photo(photo.data(), photo.size(), "the photo", max_pixels_);
}

PhotoInversion PhotoInverter::invert(const std::vector<uint8_t>& photo, std::optional<int64_t> face,
                                     image::Image* photo_out, bool* cache_hit) {
  const std::string key = sha256_bytes(photo.data(), photo.size()) + '/' +
                          (face ? std::to_string(*face) : std::string("largest"));
  if (std::optional<PhotoInversion> cached = cache_.get(key)) {
    if (cache_hit) *cache_hit = true;
    if (photo_out) *photo_out = decode(photo);
    return *cached;
  }
  if (cache_hit) *cache_hit = false;
  image::Image upright = decode(photo);
  std::vector<face::DetectedFace> found;
  {
    std::lock_guard<std::mutex> lock(detector_mutex_);
    found = detector_.find_faces(upright);
  }
  check(!found.empty(), ErrorCode::kNoFace,
        "no face found in the photo (" + std::to_string(upright.width) + "x" + std::to_string(upright.height) +
            " pixels; expected at least one roughly frontal face)");
  int64_t chosen = 0;
  if (face) {
    check(*face >= 0 && *face < static_cast<int64_t>(found.size()), ErrorCode::kInvalidArgument,
          "face " + std::to_string(*face) + " was asked for, the photo has " + std::to_string(found.size()) +
              " face(s) (expected 0.." + std::to_string(found.size() - 1) + ")");
    chosen = *face;
  } else {
    auto area = [](const face::FaceBox& b) { return (b.right - b.left + 1) * (b.bottom - b.top + 1); };
    for (size_t i = 1; i < found.size(); ++i)
      if (area(found[i].box) > area(found[chosen].box)) chosen = static_cast<int64_t>(i);
  }
  const face::AlignedFace aligned = face::align_face(upright, found[chosen].landmarks, face::kE4eAlign);

  PhotoInversion out;
  out.wplus = encoder_->encode({aligned.image});
  check(static_cast<int64_t>(out.wplus.size()) == encoder_->num_ws() * encoder_->w_dim(), ErrorCode::kInternal,
        "the face encoder returned a W+ of the wrong size");
  out.face = chosen;
  out.faces_found = static_cast<int64_t>(found.size());
  out.box = found[chosen].box;
  out.quad = aligned.quad;
  out.photo_width = upright.width;
  out.photo_height = upright.height;
  cache_.put(key, out);
  if (photo_out) *photo_out = std::move(upright);
  return out;
}

nlohmann::json PhotoInverter::info() const {
  return {{"encoder", {{"sha256", encoder_->fingerprint()}, {"num_ws", encoder_->num_ws()},
                       {"w_dim", encoder_->w_dim()}}},
          {"inversion_cache", {{"size", cache_.size()}, {"hits", cache_.hits()}, {"misses", cache_.misses()}}}};
}

}  // namespace feu::edit
