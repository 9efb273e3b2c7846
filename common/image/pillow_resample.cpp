// Pillow 9.4's ImagingResample re-expressed for 8-bit RGB (specs/clip.md §6).
#include "image/pillow_resample.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/cpu_clone.h"
#include "core/error.h"

namespace feu::image {
namespace {

// Pillow's kernels, with its comparisons and operation order (the weights are
// compared to the last bit through the fixed-point rounding).
double bilinear_kernel(double x) {
  if (x < 0.0) x = -x;
  if (x < 1.0) return 1.0 - x;
  return 0.0;
}

double bicubic_kernel(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}

double sinc(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}

double lanczos_kernel(double x) {
  if (-3.0 <= x && x < 3.0) return sinc(x) * sinc(x / 3);
  return 0.0;
}

struct Kernel {
  double (*weight)(double);
  double support;
};

Kernel kernel_of(PillowFilter filter) {
  switch (filter) {
    case PillowFilter::kBilinear: return {bilinear_kernel, 1.0};
    case PillowFilter::kBicubic: return {bicubic_kernel, 2.0};
    case PillowFilter::kLanczos: return {lanczos_kernel, 3.0};
  }
  throw Error(ErrorCode::kInternal, "unknown Pillow filter");
}

void check_rgb(const Image& image, const char* what) {
  check(image.width > 0 && image.height > 0 &&
            image.rgb.size() == static_cast<size_t>(image.width) * image.height * 3,
        ErrorCode::kInvalidArgument,
        std::string(what) + ": expected a non-empty RGB8 image with width*height*3 bytes (got " +
            std::to_string(image.width) + "x" + std::to_string(image.height) + ", " +
            std::to_string(image.rgb.size()) + " bytes)");
}

constexpr int32_t kRoundingBias = 1 << (kPillowPrecisionBits - 1);

inline uint8_t clip8(int32_t sum) {
  const int32_t v = sum >> kPillowPrecisionBits;  // arithmetic shift, as Pillow's lookup
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// The horizontal pass works on blocks of kBlockRows rows, transposed so that
// the rows of a block are the inner dimension: each output pixel's taps then
// update 3 x kBlockRows sums with whole-vector multiply-adds. Integer
// arithmetic: the same sums as Pillow's in any order.
constexpr int kBlockRows = 8;

// block[(column * 3 + channel) * kBlockRows + row] for input columns from
// `first_column`; out_rows[row] receives the block's output row.
FEU_X86_64_V3_CLONE void horizontal_block(const int32_t* block, int first_column, const PillowAxis& axis, int x0,
                                          int x1, int rows, uint8_t* const* out_rows) {
  constexpr int kLanes = 3 * kBlockRows;
  for (int x = x0; x < x1; ++x) {
    int32_t sums[kLanes];
    for (int i = 0; i < kLanes; ++i) sums[i] = kRoundingBias;
    const int32_t* w = axis.weights.data() + static_cast<size_t>(x) * axis.taps;
    const int32_t* src = block + static_cast<size_t>(axis.first[x] - first_column) * kLanes;
    for (int k = 0, n = axis.count[x]; k < n; ++k, src += kLanes) {
      const int32_t weight = w[k];
      for (int i = 0; i < kLanes; ++i) sums[i] += src[i] * weight;
    }
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < 3; ++c) out_rows[r][(x - x0) * 3 + c] = clip8(sums[c * kBlockRows + r]);
  }
}

// Work (multiply-adds) above which a pass is split between threads; the rows
// are independent, so the results do not depend on the split.
constexpr int64_t kParallelWork = int64_t{1} << 22;

// Horizontal pass over rows [row_first, row_last) of `in`, output columns
// [x0, x1).
void horizontal_pass(const Image& in, int row_first, int row_last, const PillowAxis& axis, int x0, int x1,
                     std::vector<uint8_t>* out) {
  const size_t out_row_bytes = static_cast<size_t>(x1 - x0) * 3;
  out->resize(static_cast<size_t>(row_last - row_first) * out_row_bytes);
  const int first_column = axis.first[x0];
  int last_column = first_column;
  for (int x = x0; x < x1; ++x) last_column = std::max(last_column, axis.first[x] + axis.count[x]);
  const size_t values = static_cast<size_t>(last_column - first_column) * 3;
  const int blocks = (row_last - row_first + kBlockRows - 1) / kBlockRows;
  const int64_t work = static_cast<int64_t>(row_last - row_first) * static_cast<int64_t>(out_row_bytes) * axis.taps;
#pragma omp parallel if (work >= kParallelWork)
  {
    std::vector<int32_t> block(values * kBlockRows, 0);
#pragma omp for schedule(static)
    for (int b = 0; b < blocks; ++b) {
      const int y = row_first + b * kBlockRows;
      const int rows = std::min(kBlockRows, row_last - y);
      const uint8_t* sources[kBlockRows];
      uint8_t* out_rows[kBlockRows];
      for (int r = 0; r < kBlockRows; ++r) {
        // A last, partial block repeats its last row (its sums are not stored).
        const int source_row = y + std::min(r, rows - 1);
        sources[r] = in.rgb.data() + (static_cast<size_t>(source_row) * in.width + first_column) * 3;
        out_rows[r] = out->data() + static_cast<size_t>(source_row - row_first) * out_row_bytes;
      }
      for (size_t i = 0; i < values; ++i)
        for (int r = 0; r < kBlockRows; ++r) block[i * kBlockRows + r] = sources[r][i];
      horizontal_block(block.data(), first_column, axis, x0, x1, rows, out_rows);
    }
  }
}

FEU_X86_64_V3_CLONE void accumulate_row(int32_t* sums, const uint8_t* src, int32_t weight, size_t n) {
  for (size_t i = 0; i < n; ++i) sums[i] += src[i] * weight;
}

// Vertical pass: output row y of the region sums whole input rows, which
// vectorizes along the row. `in` holds rows from `in_first_row` on.
void vertical_pass(const uint8_t* in, int in_first_row, size_t row_bytes, const PillowAxis& axis, int y0,
                   int y1, uint8_t* out) {
  const int64_t work = static_cast<int64_t>(y1 - y0) * static_cast<int64_t>(row_bytes) * axis.taps;
#pragma omp parallel if (work >= kParallelWork)
  {
    std::vector<int32_t> sums(row_bytes);
#pragma omp for schedule(static)
    for (int y = y0; y < y1; ++y) {
      std::fill(sums.begin(), sums.end(), kRoundingBias);
      const int32_t* w = axis.weights.data() + static_cast<size_t>(y) * axis.taps;
      const uint8_t* src = in + static_cast<size_t>(axis.first[y] - in_first_row) * row_bytes;
      for (int k = 0, n = axis.count[y]; k < n; ++k, src += row_bytes)
        accumulate_row(sums.data(), src, w[k], row_bytes);
      uint8_t* out_row = out + static_cast<size_t>(y - y0) * row_bytes;
      for (size_t i = 0; i < row_bytes; ++i) out_row[i] = clip8(sums[i]);
    }
  }
}

}  // namespace

PillowAxis pillow_axis(int in_size, int out_size, PillowFilter filter) {
  check(in_size > 0 && out_size > 0, ErrorCode::kInvalidArgument,
        "resize: sizes must be positive (got " + std::to_string(in_size) + " -> " +
            std::to_string(out_size) + ")");
  const Kernel kernel = kernel_of(filter);
  // precompute_coeffs: the kernel is stretched by the scale when downscaling.
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0);
  const double support = kernel.support * filter_scale;
  const double inverse_scale = 1.0 / filter_scale;
  PillowAxis axis;
  axis.taps = static_cast<int>(std::ceil(support)) * 2 + 1;
  axis.first.resize(out_size);
  axis.count.resize(out_size);
  axis.weights.assign(static_cast<size_t>(out_size) * axis.taps, 0);
  axis.normalized.assign(static_cast<size_t>(out_size) * axis.taps, 0.0);
  std::vector<double> w(axis.taps);
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const int xmin = std::max(static_cast<int>(center - support + 0.5), 0);  // truncation, as Pillow
    const int xmax = std::min(static_cast<int>(center + support + 0.5), in_size);
    const int count = xmax - xmin;
    double total = 0.0;
    for (int x = 0; x < count; ++x) {
      w[x] = kernel.weight((x + xmin - center + 0.5) * inverse_scale);
      total += w[x];
    }
    int32_t* fixed = axis.weights.data() + static_cast<size_t>(i) * axis.taps;
    for (int x = 0; x < count; ++x) {
      const double normalized = total != 0.0 ? w[x] / total : w[x];
      axis.normalized[static_cast<size_t>(i) * axis.taps + x] = normalized;
      // normalize_coeffs_8bpc: rounded half away from zero.
      fixed[x] = normalized < 0 ? static_cast<int32_t>(-0.5 + normalized * (1 << kPillowPrecisionBits))
                                : static_cast<int32_t>(0.5 + normalized * (1 << kPillowPrecisionBits));
    }
    axis.first[i] = xmin;
    axis.count[i] = count;
  }
  return axis;
}

Image pillow_resize(const Image& image, int out_width, int out_height, PillowFilter filter) {
  return pillow_resize_region(image, out_width, out_height, filter, {0, 0, out_width, out_height});
}

Image pillow_resize_region(const Image& image, int out_width, int out_height, PillowFilter filter,
                           const PixelRect& region) {
  check_rgb(image, "resize");
  check(out_width > 0 && out_height > 0, ErrorCode::kInvalidArgument,
        "resize: the output size must be positive (got " + std::to_string(out_width) + "x" +
            std::to_string(out_height) + ")");
  check(region.x0 >= 0 && region.y0 >= 0 && region.x1 <= out_width && region.y1 <= out_height &&
            region.x0 < region.x1 && region.y0 < region.y1,
        ErrorCode::kInvalidArgument,
        "resize: the region [" + std::to_string(region.x0) + ", " + std::to_string(region.x1) + ") x [" +
            std::to_string(region.y0) + ", " + std::to_string(region.y1) +
            ") must be non-empty and inside the " + std::to_string(out_width) + "x" +
            std::to_string(out_height) + " output");
  const bool need_horizontal = out_width != image.width;
  const bool need_vertical = out_height != image.height;

  // Input rows the vertical pass reads for the region's rows (Pillow's
  // ybox_first .. ybox_last, restricted to the region).
  PillowAxis vertical;
  int row_first = region.y0, row_last = region.y1;
  if (need_vertical) {
    vertical = pillow_axis(image.height, out_height, filter);
    row_first = vertical.first[region.y0];
    row_last = row_first;
    for (int y = region.y0; y < region.y1; ++y)
      row_last = std::max(row_last, vertical.first[y] + vertical.count[y]);
  }

  const size_t row_bytes = static_cast<size_t>(region.width()) * 3;
  std::vector<uint8_t> rows;  // rows [row_first, row_last), the region's columns
  if (need_horizontal) {
    horizontal_pass(image, row_first, row_last, pillow_axis(image.width, out_width, filter), region.x0,
                    region.x1, &rows);
  } else {
    rows.resize(static_cast<size_t>(row_last - row_first) * row_bytes);
    for (int y = row_first; y < row_last; ++y)
      std::copy_n(image.rgb.data() + (static_cast<size_t>(y) * image.width + region.x0) * 3, row_bytes,
                  rows.data() + static_cast<size_t>(y - row_first) * row_bytes);
  }

  Image out;
  out.width = region.width();
  out.height = region.height();
  if (need_vertical) {
    out.rgb.resize(static_cast<size_t>(out.height) * row_bytes);
    vertical_pass(rows.data(), row_first, row_bytes, vertical, region.y0, region.y1, out.rgb.data());
  } else {
    out.rgb = std::move(rows);
  }
  return out;
}

PixelSize pillow_thumbnail_size(int width, int height, int max_width, int max_height) {
  check(width > 0 && height > 0 && max_width > 0 && max_height > 0, ErrorCode::kInvalidArgument,
        "thumbnail: sizes must be positive (got " + std::to_string(width) + "x" + std::to_string(height) +
            " into " + std::to_string(max_width) + "x" + std::to_string(max_height) + ")");
  if (max_width >= width && max_height >= height) return {width, height};
  const double aspect = static_cast<double>(width) / height;
  // round_aspect: floor or ceil of `exact`, the one whose `error` is smaller
  // (floor on a tie, as Python's min), at least 1.
  auto round_aspect = [](double exact, const auto& error) {
    const double low = std::floor(exact), high = std::ceil(exact);
    return static_cast<int>(std::max(error(high) < error(low) ? high : low, 1.0));
  };
  PixelSize size{max_width, max_height};
  if (static_cast<double>(max_width) / max_height >= aspect) {
    size.width = round_aspect(max_height * aspect,
                              [&](double n) { return std::abs(aspect - n / max_height); });
  } else {
    size.height = round_aspect(max_width / aspect, [&](double n) {
      return n == 0 ? 0.0 : std::abs(aspect - max_width / n);
    });
  }
  return size;
}

Image pillow_thumbnail(const Image& image, int max_side) {
  check_rgb(image, "thumbnail");
  const PixelSize size = pillow_thumbnail_size(image.width, image.height, max_side, max_side);
  if (size.width == image.width && size.height == image.height) return image;
  return pillow_resize(image, size.width, size.height, kPillowThumbnailFilter);
}

}  // namespace feu::image
