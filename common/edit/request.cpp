#include "edit/request.h"

#include "core/error.h"
#include "core/text.h"

namespace feu::edit {

const char* method_name(Method method) {
  return method == Method::kFeu ? "feu" : "global";
}

const char* latent_kind_name(LatentKind kind) {
  switch (kind) {
    case LatentKind::kSeed: return "seed";
    case LatentKind::kW: return "w";
    case LatentKind::kWPlus: return "wplus";
    case LatentKind::kS: return "s";
    case LatentKind::kPhoto: return "photo";
  }
  return "seed";
}

const char* image_format_name(ImageFormat format) {
  return format == ImageFormat::kPng ? "png" : "jpeg";
}

Method parse_method(const std::string& name) {
  if (name == "feu") return Method::kFeu;
  if (name == "global") return Method::kGlobal;
  throw Error(ErrorCode::kInvalidArgument, "unknown method " + quote_text(name) + " (expected feu or global)");
}

LatentKind parse_latent_kind(const std::string& name) {
  if (name == "seed") return LatentKind::kSeed;
  if (name == "w") return LatentKind::kW;
  if (name == "wplus") return LatentKind::kWPlus;
  if (name == "s") return LatentKind::kS;
  if (name == "photo") return LatentKind::kPhoto;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown latent kind " + quote_text(name) + " (expected seed, w, wplus, s or photo)");
}

ImageFormat parse_image_format(const std::string& name) {
  if (name == "png") return ImageFormat::kPng;
  if (name == "jpeg" || name == "jpg") return ImageFormat::kJpeg;
  throw Error(ErrorCode::kInvalidArgument, "unknown image format " + quote_text(name) + " (expected png or jpeg)");
}

}  // namespace feu::edit
