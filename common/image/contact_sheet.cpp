#include "image/contact_sheet.h"

#include <algorithm>

#include "core/error.h"
#include "image/pillow_resample.h"

namespace feu::image {

Image contact_sheet(const std::vector<SheetItem>& items, int thumb, int columns) {
  check(!items.empty(), ErrorCode::kInvalidArgument, "contact sheet: no images");
  check(thumb >= 8 && columns >= 1, ErrorCode::kInvalidArgument, "contact sheet: thumb >= 8 and columns >= 1");
  constexpr int kFrame = 3, kGap = 4;
  const int cell = thumb + 2 * kFrame + kGap;
  // Place every item: (row, column).
  std::vector<std::pair<int, int>> places;
  int row = 0, column = 0;
  for (const SheetItem& item : items) {
    if ((item.new_row && column > 0) || column == columns) {
      ++row;
      column = 0;
    }
    places.emplace_back(row, column++);
  }
  Image sheet;
  sheet.width = columns * cell + kGap;
  sheet.height = (row + 1) * cell + kGap;
  sheet.rgb.assign(static_cast<size_t>(sheet.width) * sheet.height * 3, 40);
  auto fill = [&](int x0, int y0, int w, int h, const std::array<uint8_t, 3>& rgb) {
    for (int y = y0; y < y0 + h; ++y)
      for (int x = x0; x < x0 + w; ++x)
        std::copy(rgb.begin(), rgb.end(), sheet.rgb.begin() + (static_cast<size_t>(y) * sheet.width + x) * 3);
  };
  for (size_t i = 0; i < items.size(); ++i) {
    const int x0 = kGap + places[i].second * cell, y0 = kGap + places[i].first * cell;
    fill(x0, y0, thumb + 2 * kFrame, thumb + 2 * kFrame, items[i].frame);
    fill(x0 + kFrame, y0 + kFrame, thumb, thumb, {128, 128, 128});
    if (!items[i].image || items[i].image->width == 0) continue;
    const Image& source = *items[i].image;
    const double scale = std::min(static_cast<double>(thumb) / source.width, static_cast<double>(thumb) / source.height);
    const int w = std::max(1, static_cast<int>(source.width * scale + 0.5));
    const int h = std::max(1, static_cast<int>(source.height * scale + 0.5));
    const Image small = pillow_resize(source, w, h, PillowFilter::kLanczos);
    const int ox = x0 + kFrame + (thumb - w) / 2, oy = y0 + kFrame + (thumb - h) / 2;
    for (int y = 0; y < h; ++y)
      std::copy(small.rgb.begin() + static_cast<size_t>(y) * w * 3, small.rgb.begin() + static_cast<size_t>(y + 1) * w * 3,
                sheet.rgb.begin() + (static_cast<size_t>(oy + y) * sheet.width + ox) * 3);
  }
  return sheet;
}

}  // namespace feu::image
