#include "edit/request.h"

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
  }
  return "seed";
}

const char* image_format_name(ImageFormat format) {
  return format == ImageFormat::kPng ? "png" : "jpeg";
}

}  // namespace feu::edit
