// Photos (the HTTP front's uploads, `photo` frames, the indexer's corpus): a PNG or JPEG of any
// kind decodes in its own mode and converts to RGB, or is a typed error; then the thumbnail the
// HTTP front makes of it. The pixel limit is lowered so a declared size stays within the
// sanitizers' memory.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "image/codec.h"
#include "image/pillow_resample.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const feu::image::Image rgb = feu::image::decode_bytes(data, size, "fuzz input", 1 << 22);
    (void)feu::image::pillow_thumbnail(rgb, 64);
  } catch (const feu::Error&) {
  }
  return 0;
}
