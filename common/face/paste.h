// The edited face back in its photo: what a user wants from a photo edit.
#pragma once

#include "face/align.h"
#include "image/codec.h"

namespace feu::face {

// Warps `face` (the edited aligned face, any square size) back through the
// inverse of the alignment `quad` into a copy of `photo`, at the photo's
// resolution, blended with a mask that is 1 inside the square and falls to 0
// over its outer `feather` (a fraction of the side) so no seam shows where the
// generator's background differs from the photo's. Pixels outside the square
// are the photo's, unchanged. Errors: invalid_argument (empty images, a face
// that is not square, feather outside (0, 0.5], a degenerate quad).
image::Image paste_face(const image::Image& photo,
                        const image::Image& face,
                        const Quad& quad,
                        double feather = 0.1);

}  // namespace feu::face
