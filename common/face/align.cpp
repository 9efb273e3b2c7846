// FFHQ's alignment, step by step as the reference computes it. The comments
// name the reference's expression where the precision or the order of
// operations decides the last bit: numpy float64 for the geometry, float32 for
// the padded image, scipy's float64 line buffers for the blur, Pillow's double
// bilinear sampling with truncation to uint8.
#include "face/align.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/cpu_clone.h"
#include "core/error.h"
#include "image/pillow_resample.h"

namespace feu::face {
namespace {

// The quad as numpy holds it (rows NW, SW, SE, NE of (x, y)) and its side.
struct Square {
  double quad[4][2];
  double qsize;
};

Square oriented_square(const Landmarks& lm) {
  // np.mean(lm[36:42], axis=0): an exact integer sum divided by 6.
  auto mean_of = [&](int first, int count, int axis) {
    double sum = 0.0;
    for (int i = first; i < first + count; ++i) sum += axis == 0 ? lm[i].x : lm[i].y;
    return sum / count;
  };
  const double eye_left[2] = {mean_of(36, 6, 0), mean_of(36, 6, 1)};
  const double eye_right[2] = {mean_of(42, 6, 0), mean_of(42, 6, 1)};
  double eye_avg[2], eye_to_eye[2], mouth_avg[2], eye_to_mouth[2];
  for (int a = 0; a < 2; ++a) {
    eye_avg[a] = (eye_left[a] + eye_right[a]) * 0.5;
    eye_to_eye[a] = eye_right[a] - eye_left[a];
  }
  // mouth_left + mouth_right is an integer sum, then * 0.5.
  mouth_avg[0] = static_cast<double>(lm[48].x + lm[54].x) * 0.5;
  mouth_avg[1] = static_cast<double>(lm[48].y + lm[54].y) * 0.5;
  for (int a = 0; a < 2; ++a) eye_to_mouth[a] = mouth_avg[a] - eye_avg[a];

  // x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
  double x[2] = {eye_to_eye[0] - (-eye_to_mouth[1]), eye_to_eye[1] - eye_to_mouth[0]};
  const double length = std::hypot(x[0], x[1]);
  x[0] /= length;
  x[1] /= length;
  const double scale = std::max(std::hypot(eye_to_eye[0], eye_to_eye[1]) * 2.0,
                                std::hypot(eye_to_mouth[0], eye_to_mouth[1]) * 1.8);
  x[0] *= scale;
  x[1] *= scale;
  const double y[2] = {-x[1], x[0]};  // np.flipud(x) * [-1, 1]
  double c[2];
  for (int a = 0; a < 2; ++a) c[a] = eye_avg[a] + eye_to_mouth[a] * 0.1;

  Square square;
  for (int a = 0; a < 2; ++a) {
    square.quad[0][a] = c[a] - x[a] - y[a];
    square.quad[1][a] = c[a] - x[a] + y[a];
    square.quad[2][a] = c[a] + x[a] + y[a];
    square.quad[3][a] = c[a] + x[a] - y[a];
  }
  square.qsize = std::hypot(x[0], x[1]) * 2;
  return square;
}

// int(np.floor(min(quad[:, axis]))) and int(np.ceil(max(...))).
int quad_floor_min(const Square& s, int axis) {
  double v = s.quad[0][axis];
  for (int i = 1; i < 4; ++i) v = std::min(v, s.quad[i][axis]);
  return static_cast<int>(std::floor(v));
}
int quad_ceil_max(const Square& s, int axis) {
  double v = s.quad[0][axis];
  for (int i = 1; i < 4; ++i) v = std::max(v, s.quad[i][axis]);
  return static_cast<int>(std::ceil(v));
}

// np.rint: round half to even (the default rounding mode).
int rint_int(double v) { return static_cast<int>(std::nearbyint(v)); }

// np.pad's 'reflect' (edge not repeated) as an index map onto 0..n-1.
int reflect_index(int i, int n) {
  if (n == 1) return 0;
  const int period = 2 * (n - 1);
  int m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - m;
}
// scipy.ndimage's 'reflect' (edge repeated) as an index map onto 0..n-1.
int mirror_index(int i, int n) {
  const int period = 2 * n;
  int m = i % period;
  if (m < 0) m += period;
  return m < n ? m : period - 1 - m;
}

// numpy's pairwise summation (np.sum of a contiguous float64 array).
double pairwise_sum(const double* a, int n) {
  if (n < 8) {
    double sum = 0.0;
    for (int i = 0; i < n; ++i) sum += a[i];
    return sum;
  }
  if (n <= 128) {
    double r[8];
    for (int j = 0; j < 8; ++j) r[j] = a[j];
    int i = 8;
    for (; i < n - n % 8; i += 8)
      for (int j = 0; j < 8; ++j) r[j] += a[i + j];
    double sum = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) sum += a[i];
    return sum;
  }
  int half = n / 2;
  half -= half % 8;
  return pairwise_sum(a, half) + pairwise_sum(a + half, n - half);
}

// scipy's _gaussian_kernel1d(sigma, 0, radius) with radius int(4 * sigma + 0.5).
std::vector<double> gaussian_kernel(double sigma) {
  const int radius = static_cast<int>(4.0 * sigma + 0.5);
  const double coefficient = -0.5 / (sigma * sigma);
  std::vector<double> phi(2 * radius + 1);
  for (int i = -radius; i <= radius; ++i)
    phi[i + radius] = std::exp(coefficient * static_cast<double>(static_cast<int64_t>(i) * i));
  const double total = pairwise_sum(phi.data(), static_cast<int>(phi.size()));
  for (double& v : phi) v = v / total;
  return phi;
}

// scipy's correlate1d with a symmetric kernel (NI_Correlate1D) at one output
// sample: acc = in[0] * w[0], then acc += (in[-d] + in[+d]) * w[d] for d from
// the radius down to 1, in float64, stored as float32. Here for the elements
// [begin, end) of a run: pair p (d = radius - p) reads before[p][i] and
// after[p][i], weighted kernel[p]; the centre is center[i], weighted
// kernel[radius]. Strips of kStrip elements keep their sums in registers.
template <typename T>
inline void correlate_body(const T* const* before, const T* const* after, const T* center, const double* kernel,
                           int radius, size_t begin, size_t end, float* out) {
  constexpr size_t kStrip = 16;
  const double w0 = kernel[radius];
  size_t i = begin;
  for (; i + kStrip <= end; i += kStrip) {
    double acc[kStrip];
    for (size_t s = 0; s < kStrip; ++s) acc[s] = static_cast<double>(center[i + s]) * w0;
    for (int p = 0; p < radius; ++p) {
      const T* b = before[p] + i;
      const T* a = after[p] + i;
      const double wp = kernel[p];
      for (size_t s = 0; s < kStrip; ++s) acc[s] += (static_cast<double>(b[s]) + static_cast<double>(a[s])) * wp;
    }
    for (size_t s = 0; s < kStrip; ++s) out[i + s] = static_cast<float>(acc[s]);
  }
  for (; i < end; ++i) {
    double acc = static_cast<double>(center[i]) * w0;
    for (int p = 0; p < radius; ++p)
      acc += (static_cast<double>(before[p][i]) + static_cast<double>(after[p][i])) * kernel[p];
    out[i] = static_cast<float>(acc);
  }
}
FEU_X86_64_V3_CLONE void correlate_run(const float* const* before, const float* const* after, const float* center,
                                       const double* kernel, int radius, size_t begin, size_t end, float* out) {
  correlate_body(before, after, center, kernel, radius, begin, end, out);
}
FEU_X86_64_V3_CLONE void correlate_run(const double* const* before, const double* const* after, const double* center,
                                       const double* kernel, int radius, size_t begin, size_t end, float* out) {
  correlate_body(before, after, center, kernel, radius, begin, end, out);
}

// Column spans [first, last) of one row (at most two: the pad band's left and
// right parts, or the whole row).
struct Spans {
  int count = 0;
  int first[2] = {0, 0};
  int last[2] = {0, 0};
};
Spans row_spans(bool whole, int left_end, int right_begin, int w) {
  Spans spans;
  if (whole || left_end >= right_begin) {
    spans.count = 1;
    spans.last[0] = w;
    return spans;
  }
  spans.count = 2;
  spans.last[0] = left_end;
  spans.first[1] = right_begin;
  spans.last[1] = w;
  return spans;
}

// scipy.ndimage.gaussian_filter(img, [sigma, sigma, 0]) on an [h][w][3] float32
// image (mode 'reflect', truncate 4): axis 0, stored as float32, then axis 1.
// Only the samples the blend reads are computed: those of rows with
// row_blended[y], and columns [0, left_end) and [right_begin, w) of the others.
std::vector<float> gaussian_blur(const std::vector<float>& img, int h, int w, double sigma,
                                 const std::vector<bool>& row_blended, int left_end, int right_begin) {
  const std::vector<double> kernel = gaussian_kernel(sigma);
  const int radius = static_cast<int>(kernel.size() / 2);
  const size_t row = static_cast<size_t>(w) * 3;

  // Axis 0 over the blended samples' neighbourhoods along axis 1, in column
  // chunks that threads share: every sample is computed alone, so the split
  // changes no bit.
  constexpr size_t kChunk = 512;
  const bool parallel = img.size() * radius >= (size_t{1} << 22);
  std::vector<float> vertical(img.size());
  const int dilated_left = std::min(w, left_end + radius), dilated_right = std::max(0, right_begin - radius);
  const int chunks = static_cast<int>((row + kChunk - 1) / kChunk);
#pragma omp parallel if (parallel)
  {
    std::vector<const float*> before(radius), after(radius);
#pragma omp for schedule(dynamic)
    for (int chunk = 0; chunk < chunks; ++chunk) {
      const size_t chunk_begin = chunk * kChunk, chunk_end = std::min(row, chunk_begin + kChunk);
      for (int y = 0; y < h; ++y) {
        const Spans spans = row_spans(row_blended[y], dilated_left, dilated_right, w);
        for (int p = 0; p < radius; ++p) {
          const int d = radius - p;
          before[p] = img.data() + static_cast<size_t>(mirror_index(y - d, h)) * row;
          after[p] = img.data() + static_cast<size_t>(mirror_index(y + d, h)) * row;
        }
        for (int k = 0; k < spans.count; ++k) {
          const size_t begin = std::max(chunk_begin, spans.first[k] * size_t{3});
          const size_t end = std::min(chunk_end, spans.last[k] * size_t{3});
          if (begin < end)
            correlate_run(before.data(), after.data(), img.data() + static_cast<size_t>(y) * row, kernel.data(),
                          radius, begin, end, vertical.data() + static_cast<size_t>(y) * row);
        }
      }
    }
  }

  // Axis 1: each row in float64, extended by `radius` mirrored pixels each
  // side: scipy's line buffer.
  std::vector<float> blurred(img.size());
#pragma omp parallel if (parallel)
  {
    std::vector<double> line(static_cast<size_t>(w + 2 * radius) * 3);
    std::vector<const double*> before(radius), after(radius);
    const double* center = line.data() + static_cast<size_t>(radius) * 3;
    for (int p = 0; p < radius; ++p) {
      const int d = radius - p;
      before[p] = center - static_cast<ptrdiff_t>(d) * 3;
      after[p] = center + static_cast<ptrdiff_t>(d) * 3;
    }
#pragma omp for schedule(static)
    for (int y = 0; y < h; ++y) {
      const float* pixels = vertical.data() + static_cast<size_t>(y) * row;
      for (int x = -radius; x < w + radius; ++x) {
        const float* src = pixels + static_cast<size_t>(mirror_index(x, w)) * 3;
        double* dst = line.data() + static_cast<size_t>(x + radius) * 3;
        dst[0] = src[0];
        dst[1] = src[1];
        dst[2] = src[2];
      }
      const Spans spans = row_spans(row_blended[y], left_end, right_begin, w);
      for (int k = 0; k < spans.count; ++k)
        correlate_run(before.data(), after.data(), center, kernel.data(), radius, spans.first[k] * size_t{3},
                      spans.last[k] * size_t{3}, blurred.data() + static_cast<size_t>(y) * row);
    }
  }
  return blurred;
}

// A float's bits turned into an unsigned key with the same order.
inline uint32_t order_key(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof(bits));
  return bits & 0x80000000u ? ~bits : bits | 0x80000000u;
}

// np.median over one channel of an [n][3] float32 image: the middle value, or
// the float32 mean of the two middle values. A histogram of the keys' top 16
// bits finds the bucket of each middle rank; only that bucket is sorted.
float channel_median(const std::vector<float>& image, int channel) {
  const size_t n = image.size() / 3;
  std::vector<uint32_t> histogram(1 << 16, 0);
  for (size_t i = 0; i < n; ++i) ++histogram[order_key(image[i * 3 + channel]) >> 16];
  auto value_of_rank = [&](size_t rank) {
    uint32_t bucket = 0;
    size_t below = 0;
    while (below + histogram[bucket] <= rank) below += histogram[bucket++];
    std::vector<float> members;
    members.reserve(histogram[bucket]);
    for (size_t i = 0; i < n; ++i) {
      const float v = image[i * 3 + channel];
      if (order_key(v) >> 16 == bucket) members.push_back(v);
    }
    std::nth_element(members.begin(), members.begin() + (rank - below), members.end());
    return members[rank - below];
  };
  const float upper = value_of_rank(n / 2);
  if (n % 2 == 1) return upper;
  return (value_of_rank(n / 2 - 1) + upper) / 2.0f;
}

// np.rint in float32 (round half to even) for values in [0, 2^22]: adding and
// removing 1.5 * 2^23 leaves the float rounded to an integer, and vectorizes.
inline float rint_small(float v) {
  constexpr float kMagic = 12582912.0f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

// The reflect pad, blur and median blend of FFHQ's "Pad" step, on the cropped
// photo; returns the padded uint8 image.
image::Image pad_and_blend(const image::Image& crop, const int pad[4], double qsize) {
  const int pad_left = pad[0], pad_top = pad[1], pad_right = pad[2], pad_bottom = pad[3];
  const int w = crop.width + pad_left + pad_right;
  const int h = crop.height + pad_top + pad_bottom;
  const size_t pixels = static_cast<size_t>(w) * h;

  // np.pad(np.float32(img), ..., 'reflect')
  std::vector<float> img(pixels * 3);
  for (int y = 0; y < h; ++y) {
    const int sy = reflect_index(y - pad_top, crop.height);
    for (int x = 0; x < w; ++x) {
      const int sx = reflect_index(x - pad_left, crop.width);
      const uint8_t* src = crop.rgb.data() + (static_cast<size_t>(sy) * crop.width + sx) * 3;
      float* dst = img.data() + (static_cast<size_t>(y) * w + x) * 3;
      for (int c = 0; c < 3; ++c) dst[c] = src[c];
    }
  }

  // mask = np.maximum(1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
  //                   1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]))
  // all float32. A zero pad (a face under 2 px) would divide by zero in the
  // reference; it is taken as 1 here.
  auto edge_weight = [](int i, int n, int before, int after) {
    const float a = static_cast<float>(i) / static_cast<float>(std::max(before, 1));
    const float b = static_cast<float>(n - 1 - i) / static_cast<float>(std::max(after, 1));
    return 1.0f - std::min(a, b);
  };
  std::vector<float> mask_x(w), mask_y(h);
  for (int x = 0; x < w; ++x) mask_x[x] = edge_weight(x, w, pad_left, pad_right);
  for (int y = 0; y < h; ++y) mask_y[y] = edge_weight(y, h, pad_top, pad_bottom);

  // img += (gaussian_filter(img, [blur, blur, 0]) - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
  // The weight is 0 inside the pad band (mask below -1/3), where the sum adds
  // an exact zero: the blur is computed for the band only. mask is the larger
  // of its row and column parts, so a row whose own part weighs is blended
  // whole, and the others on a prefix and a suffix of columns (the column part
  // falls, then rises: one minus the smaller of a rising and a falling ratio).
  auto blend_weight = [](float mask) { return std::clamp(mask * 3.0f + 1.0f, 0.0f, 1.0f); };
  std::vector<bool> row_blended(h);
  for (int y = 0; y < h; ++y) row_blended[y] = blend_weight(mask_y[y]) > 0.0f;
  int left_end = 0, right_begin = w;
  while (left_end < w && blend_weight(mask_x[left_end]) > 0.0f) ++left_end;
  while (right_begin > left_end && blend_weight(mask_x[right_begin - 1]) > 0.0f) --right_begin;
  const std::vector<float> blurred =
      gaussian_blur(img, h, w, qsize * 0.02, row_blended, left_end, right_begin);
  for (int y = 0; y < h; ++y) {
    const Spans spans = row_spans(row_blended[y], left_end, right_begin, w);
    for (int k = 0; k < spans.count; ++k) {
      for (int x = spans.first[k]; x < spans.last[k]; ++x) {
        const float weight = blend_weight(std::max(mask_x[x], mask_y[y]));
        const size_t i = (static_cast<size_t>(y) * w + x) * 3;
        for (int c = 0; c < 3; ++c) img[i + c] += (blurred[i + c] - img[i + c]) * weight;
      }
    }
  }

  // img += (np.median(img, axis=(0, 1)) - img) * np.clip(mask, 0.0, 1.0)
  float median[3];
  for (int c = 0; c < 3; ++c) median[c] = channel_median(img, c);
  image::Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(pixels * 3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x) {
      const float weight = std::clamp(std::max(mask_x[x], mask_y[y]), 0.0f, 1.0f);
      const size_t i = (static_cast<size_t>(y) * w + x) * 3;
      for (int c = 0; c < 3; ++c) {
        const float v = img[i + c] + (median[c] - img[i + c]) * weight;
        // np.uint8(np.clip(np.rint(img), 0, 255))
        // (v is a convex combination of 0..255 values, well inside rint_small's range.)
        out.rgb[i + c] = static_cast<uint8_t>(std::clamp(rint_small(v), 0.0f, 255.0f));
      }
    }
  }
  return out;
}

// Pillow's im.transform(size, QUAD, data, BILINEAR) on an RGB image (Image.py
// __transformer, Geometry.c quad_transform and bilinear_filter32RGB); pixels
// whose source lies outside the image are black.
image::Image quad_transform(const image::Image& in, int size, const double data[8]) {
  const double nw_x = data[0], nw_y = data[1], sw_x = data[2], sw_y = data[3];
  const double se_x = data[4], se_y = data[5], ne_x = data[6], ne_y = data[7];
  const double as = 1.0 / size, at = 1.0 / size;
  const double a[8] = {nw_x,
                       (ne_x - nw_x) * as,
                       (sw_x - nw_x) * at,
                       (se_x - sw_x - ne_x + nw_x) * as * at,
                       nw_y,
                       (ne_y - nw_y) * as,
                       (sw_y - nw_y) * at,
                       (se_y - sw_y - ne_y + nw_y) * as * at};
  image::Image out;
  out.width = out.height = size;
  out.rgb.assign(static_cast<size_t>(size) * size * 3, 0);
  const int width = in.width, height = in.height;
  const size_t stride = static_cast<size_t>(width) * 3;
  // Output rows are independent (FFHQ's 4096 x 4096 is worth two threads).
#pragma omp parallel for schedule(static) if (size >= 1024)
  for (int oy = 0; oy < size; ++oy) {
    uint8_t* dst = out.rgb.data() + static_cast<size_t>(oy) * size * 3;
    const double yin = oy + 0.5;
    for (int ox = 0; ox < size; ++ox, dst += 3) {
      const double xin = ox + 0.5;
      double xx = a[0] + a[1] * xin + a[2] * yin + a[3] * xin * yin;
      double yy = a[4] + a[5] * xin + a[6] * yin + a[7] * xin * yin;
      if (xx < 0.0 || xx >= width || yy < 0.0 || yy >= height) continue;
      xx -= 0.5;
      yy -= 0.5;
      const int x = xx < 0.0 ? static_cast<int>(std::floor(xx)) : static_cast<int>(xx);
      const int y = yy < 0.0 ? static_cast<int>(std::floor(yy)) : static_cast<int>(yy);
      const double dx = xx - x, dy = yy - y;
      const size_t x0 = static_cast<size_t>(std::clamp(x, 0, width - 1)) * 3;
      const size_t x1 = static_cast<size_t>(std::clamp(x + 1, 0, width - 1)) * 3;
      const uint8_t* row0 = in.rgb.data() + static_cast<size_t>(std::clamp(y, 0, height - 1)) * stride;
      const bool has_row1 = y + 1 >= 0 && y + 1 < height;
      const uint8_t* row1 = has_row1 ? in.rgb.data() + static_cast<size_t>(y + 1) * stride : nullptr;
      for (int c = 0; c < 3; ++c) {
        double v1 = row0[x0 + c] + (row0[x1 + c] - row0[x0 + c]) * dx;
        double v2 = v1;
        if (has_row1) v2 = row1[x0 + c] + (row1[x1 + c] - row1[x0 + c]) * dx;
        v1 = v1 + (v2 - v1) * dy;
        dst[c] = static_cast<uint8_t>(v1);
      }
    }
  }
  return out;
}

}  // namespace

Quad ffhq_quad(const Landmarks& landmarks) {
  const Square square = oriented_square(landmarks);
  Quad quad;
  for (int i = 0; i < 4; ++i) {
    quad.xy[i * 2] = square.quad[i][0];
    quad.xy[i * 2 + 1] = square.quad[i][1];
  }
  return quad;
}

AlignedFace align_face(const image::Image& photo, const Landmarks& landmarks, const AlignSettings& settings) {
  check(photo.width > 0 && photo.height > 0 &&
            photo.rgb.size() == static_cast<size_t>(photo.width) * photo.height * 3,
        ErrorCode::kInvalidArgument, "align_face: expected a non-empty RGB8 image");
  check(settings.output_size > 0 && settings.transform_size >= settings.output_size,
        ErrorCode::kInvalidArgument,
        "align_face: expected 0 < output size <= transform size, got " + std::to_string(settings.output_size) +
            " and " + std::to_string(settings.transform_size));
  Square square = oriented_square(landmarks);
  AlignedFace result;
  result.quad = ffhq_quad(landmarks);

  // Shrink: the whole photo Lanczos-resized by an integer factor. Only the
  // crop below is computed (the same pixels as resizing all and cropping).
  result.shrink = static_cast<int>(std::floor(square.qsize / settings.output_size * 0.5));
  int width = photo.width, height = photo.height;
  if (result.shrink > 1) {
    width = rint_int(static_cast<double>(photo.width) / result.shrink);
    height = rint_int(static_cast<double>(photo.height) / result.shrink);
    for (auto& corner : square.quad)
      for (double& v : corner) v /= result.shrink;
    square.qsize /= result.shrink;
  }

  // Crop: the square's bounding box plus a border, inside the photo.
  const int border = std::max(rint_int(square.qsize * 0.1), 3);
  image::PixelRect crop{std::max(quad_floor_min(square, 0) - border, 0),
                        std::max(quad_floor_min(square, 1) - border, 0),
                        std::min(quad_ceil_max(square, 0) + border, width),
                        std::min(quad_ceil_max(square, 1) + border, height)};
  check(crop.width() > 0 && crop.height() > 0, ErrorCode::kInvalidArgument,
        "align_face: the face square lies outside the " + std::to_string(photo.width) + "x" +
            std::to_string(photo.height) + " photo (landmarks from another photo?)");
  for (auto& corner : square.quad) {
    corner[0] -= crop.x0;
    corner[1] -= crop.y0;
  }
  image::Image img;
  if (result.shrink > 1) {
    img = image::pillow_resize_region(photo, width, height, image::PillowFilter::kLanczos, crop);
  } else {
    img.width = crop.width();
    img.height = crop.height();
    img.rgb.resize(static_cast<size_t>(img.width) * img.height * 3);
    for (int y = 0; y < img.height; ++y)
      std::copy_n(photo.rgb.data() + (static_cast<size_t>(y + crop.y0) * photo.width + crop.x0) * 3,
                  static_cast<size_t>(img.width) * 3, img.rgb.data() + static_cast<size_t>(y) * img.width * 3);
  }

  // Pad: where the square (plus border) leaves the crop.
  int pad[4] = {std::max(-quad_floor_min(square, 0) + border, 0), std::max(-quad_floor_min(square, 1) + border, 0),
                std::max(quad_ceil_max(square, 0) - img.width + border, 0),
                std::max(quad_ceil_max(square, 1) - img.height + border, 0)};
  if (settings.enable_padding && *std::max_element(pad, pad + 4) > border - 4) {
    const int minimum = rint_int(square.qsize * 0.3);
    for (int& p : pad) p = std::max(p, minimum);
    img = pad_and_blend(img, pad, square.qsize);
    for (auto& corner : square.quad) {
      corner[0] += pad[0];
      corner[1] += pad[1];
    }
    result.padded = true;
  }

  // Transform: (quad + 0.5).flatten() as Pillow's QUAD data.
  double data[8];
  for (int i = 0; i < 4; ++i) {
    data[i * 2] = square.quad[i][0] + 0.5;
    data[i * 2 + 1] = square.quad[i][1] + 0.5;
  }
  result.image = quad_transform(img, settings.transform_size, data);
  if (settings.output_size < settings.transform_size)
    result.image = image::pillow_resize(result.image, settings.output_size, settings.output_size,
                                        image::PillowFilter::kLanczos);
  return result;
}

}  // namespace feu::face
