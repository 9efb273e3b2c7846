// Photos for face edits (`latent: photo`, the HTTP front's uploads): the header walk that reads
// the EXIF orientation (a hand-written JPEG marker, PNG chunk and TIFF IFD reader) and the upright
// RGB image, or a typed error. The pixel limit is lowered so a declared size stays within the
// sanitizers' memory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "core/error.h"
#include "face/photo.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int orientation = feu::face::exif_orientation(data, size);
  if (orientation < 1 || orientation > 8) std::abort();
  try {
    const feu::image::Image upright = feu::face::decode_photo(data, size, "fuzz input", 1 << 22);
    if (upright.rgb.size() != static_cast<size_t>(upright.width) * upright.height * 3) std::abort();
  } catch (const feu::Error&) {
  }
  return 0;
}
