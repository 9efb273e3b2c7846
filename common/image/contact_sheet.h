// A contact sheet: many images as small framed thumbnails on one page, e.g.
// the corpus images an FEU direction was learned from (positives framed
// green, negatives red).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <vector>

#include "image/codec.h"

namespace feu::image {

struct SheetItem {
  std::optional<Image> image;             // nullopt: a grey placeholder (the file was unreadable)
  std::array<uint8_t, 3> frame{0, 0, 0};  // the thumbnail's 3 px frame colour
  bool new_row = false;                   // start a new row with this item (e.g. the negatives)
};

// Each image Lanczos-resized to fit `thumb` x `thumb` (aspect kept, centred),
// framed, `columns` per row, on a dark grey page. Errors: invalid_argument
// for no items, thumb < 8 or columns < 1.
Image contact_sheet(const std::vector<SheetItem>& items, int thumb, int columns);

}  // namespace feu::image
