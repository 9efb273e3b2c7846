#include "tensor/winograd.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.h"
#include "tensor/gemm.h"
#include "tensor/parallel.h"

namespace feu {
namespace {

// F(2×2, 3×3): a 4×4 input tile (stride 2) gives a 2×2 output tile.
constexpr int64_t kTile = 4, kOut = 2, kPoints = kTile * kTile;
// The transform-domain arrays of a batch chunk stay below this (the
// input-tile and product arrays are each 16 / 4 = 4× the input's size).
constexpr int64_t kChunkBytes = int64_t{32} << 20;

// F(2×2, 3×3)'s filter transform G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]].
at::Tensor filter_transform() {
  return at::tensor({1.0, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0.0, 0.0, 1.0}, at::kDouble).view({4, 3});
}

// V = Bᵀ·d·B with Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0], [0, −1, 1, 0], [0, 1, 0, −1]]
// for every tile of one input plane and tile row: rows first (over the whole
// padded width, vectorizable), then columns per tile.
// `rows`: the tile row's 4 zero-padded input rows, each `width` long (padded
// column q holds input column q − 1); `combined`: scratch of the same size;
// `out[p]`: where transform point p of tile tx goes (out[p][tx]).
void transform_input_row(const float* rows, int64_t width, int64_t tiles, float* combined, float* const out[kPoints]) {
  const float* d0 = rows;
  const float* d1 = rows + width;
  const float* d2 = rows + 2 * width;
  const float* d3 = rows + 3 * width;
  float* e0 = combined;
  float* e1 = combined + width;
  float* e2 = combined + 2 * width;
  float* e3 = combined + 3 * width;
  for (int64_t q = 0; q < width; ++q) {
    e0[q] = d0[q] - d2[q];
    e1[q] = d1[q] + d2[q];
    e2[q] = d2[q] - d1[q];
    e3[q] = d1[q] - d3[q];
  }
  for (int64_t i = 0; i < kTile; ++i) {
    const float* e = combined + i * width;
    float* v0 = out[i * kTile];
    float* v1 = out[i * kTile + 1];
    float* v2 = out[i * kTile + 2];
    float* v3 = out[i * kTile + 3];
    for (int64_t tx = 0; tx < tiles; ++tx) {
      const float a = e[2 * tx], b = e[2 * tx + 1], c = e[2 * tx + 2], d = e[2 * tx + 3];
      v0[tx] = a - c;
      v1[tx] = b + c;
      v2[tx] = c - b;
      v3[tx] = b - d;
    }
  }
}

// Y = Aᵀ·M·A with Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]] for every tile of one
// output plane and tile row: `m[p][tx]` is transform point p of tile tx;
// writes the 2 output rows (2·tiles wide) with `bias` added.
void transform_output_row(const float* const m[kPoints], int64_t tiles, float bias, float* row0, float* row1) {
  for (int64_t tx = 0; tx < tiles; ++tx) {
    float s0[kTile], s1[kTile];  // per row i of M: its columns combined by A
    for (int64_t i = 0; i < kTile; ++i) {
      const float a = m[i * kTile][tx], b = m[i * kTile + 1][tx], c = m[i * kTile + 2][tx], d = m[i * kTile + 3][tx];
      s0[i] = a + b + c;
      s1[i] = b - c - d;
    }
    row0[2 * tx] = bias + s0[0] + s0[1] + s0[2];
    row0[2 * tx + 1] = bias + s1[0] + s1[1] + s1[2];
    row1[2 * tx] = bias + s0[1] - s0[2] - s0[3];
    row1[2 * tx + 1] = bias + s1[1] - s1[2] - s1[3];
  }
}

void check_filters(const at::Tensor& weight, const at::Tensor& bias) {
  check(weight.dim() == 4 && weight.size(2) == 3 && weight.size(3) == 3 && weight.is_cpu() &&
            weight.is_floating_point(),
        ErrorCode::kInvalidArgument,
        "a Winograd 3×3 convolution takes floating CPU weights [C_out, C_in, 3, 3], not " + weight.toString() + " " +
            std::to_string(weight.dim()) + "-D");
  check(!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)), ErrorCode::kInvalidArgument,
        "a Winograd 3×3 convolution's bias must be [C_out] = [" + std::to_string(weight.size(0)) + "]");
}

void check_input(const at::Tensor& input, int64_t channels) {
  check(input.dim() == 4 && input.size(1) == channels && input.is_cpu() && input.scalar_type() == at::kFloat,
        ErrorCode::kInvalidArgument,
        "a Winograd 3×3 convolution reads CPU float32 [N, " + std::to_string(channels) + ", H, W], not " +
            input.toString() + " " + std::to_string(input.dim()) + "-D");
}

}  // namespace

Winograd3x3::Winograd3x3(const at::Tensor& weight, const at::Tensor& bias) {
  check_filters(weight, bias);
  out_channels_ = weight.size(0);
  in_channels_ = weight.size(1);
  const at::Tensor g = filter_transform();
  // U = G·g·Gᵀ per channel pair: [C_out, C_in, 4, 4] -> [16, C_out, C_in].
  const at::Tensor u = at::matmul(at::matmul(g, weight.to(at::kDouble)), g.t());
  filters_ = u.permute({2, 3, 0, 1}).reshape({kPoints, out_channels_, in_channels_}).to(at::kFloat).contiguous();
  if (bias.defined()) bias_ = bias.to(at::kFloat).contiguous();
}

at::Tensor Winograd3x3::operator()(const at::Tensor& input_any) const {
  check_input(input_any, in_channels_);
  const at::Tensor input = input_any.contiguous();
  const int64_t n_images = input.size(0), height = input.size(2), width = input.size(3);
  const int64_t channels = in_channels_, outputs = out_channels_;
  at::Tensor output = at::empty({n_images, outputs, height, width}, input.options());
  if (n_images == 0 || height == 0 || width == 0) return output;
  const int64_t tile_rows = (height + kOut - 1) / kOut, tile_cols = (width + kOut - 1) / kOut;
  const int64_t tiles_per_image = tile_rows * tile_cols;
  const int64_t padded_width = kOut * tile_cols + 2;
  const int64_t image_bytes = kPoints * std::max(channels, outputs) * tiles_per_image * int64_t{sizeof(float)};
  const int64_t chunk = std::max<int64_t>(1, std::min(n_images, kChunkBytes / image_bytes));
  const float* in = input.data_ptr<float>();
  float* out = output.data_ptr<float>();
  const float* bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;

  for (int64_t first = 0; first < n_images; first += chunk) {
    const int64_t count = std::min(chunk, n_images - first);
    const int64_t tiles = count * tiles_per_image;
    at::Tensor v = at::empty({kPoints, channels, tiles}, input.options());  // V, point-major
    float* v_data = v.data_ptr<float>();
    parallel_for(0, count * channels, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> rows(kTile * padded_width), combined(kTile * padded_width);
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t image = plane / channels, c = plane % channels;
        const float* source = in + ((first + image) * channels + c) * height * width;
        for (int64_t ty = 0; ty < tile_rows; ++ty) {
          for (int64_t k = 0; k < kTile; ++k) {
            float* row = rows.data() + k * padded_width;
            const int64_t y = kOut * ty - 1 + k;
            std::fill(row, row + padded_width, 0.0f);
            if (y >= 0 && y < height) std::copy(source + y * width, source + (y + 1) * width, row + 1);
          }
          const int64_t tile0 = image * tiles_per_image + ty * tile_cols;
          float* targets[kPoints];
          for (int64_t p = 0; p < kPoints; ++p) targets[p] = v_data + (p * channels + c) * tiles + tile0;
          transform_input_row(rows.data(), padded_width, tile_cols, combined.data(), targets);
        }
      }
    });
    // M[p] = U[p]·V[p]: 16 independent GEMMs, spread over the threads (each
    // single-threaded inside the parallel region).
    at::Tensor m = at::empty({kPoints, outputs, tiles}, input.options());
    parallel_for(0, kPoints, 1, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        at::Tensor product = m.select(0, p);
        gemm(product, filters_.select(0, p), v.select(0, p));
      }
    });
    const float* m_data = m.data_ptr<float>();
    parallel_for(0, count * outputs, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> rows(2 * kOut * tile_cols);
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t image = plane / outputs, k = plane % outputs;
        float* target = out + ((first + image) * outputs + k) * height * width;
        for (int64_t ty = 0; ty < tile_rows; ++ty) {
          const int64_t tile0 = image * tiles_per_image + ty * tile_cols;
          const float* sources[kPoints];
          for (int64_t p = 0; p < kPoints; ++p) sources[p] = m_data + (p * outputs + k) * tiles + tile0;
          float* row0 = rows.data();
          float* row1 = rows.data() + kOut * tile_cols;
          transform_output_row(sources, tile_cols, bias ? bias[k] : 0.0f, row0, row1);
          const int64_t y = kOut * ty;
          std::copy(row0, row0 + width, target + y * width);
          if (y + 1 < height) std::copy(row1, row1 + width, target + (y + 1) * width);
        }
      }
    });
  }
  return output;
}

// ---------------------------------------------------------------- stride 2

namespace {

// Winograd F(2, 2) for a two-tap filter (u0, u1) over s[i − 1], s[i]:
// Bᵀ = [[1, −1, 0], [0, 1, 0], [0, −1, 1]], G = [[1, 0], [1, 1], [0, 1]],
// Aᵀ = [[1, 1, 0], [0, 1, 1]].
at::Tensor two_tap_filter_transform() {
  return at::tensor({1.0, 0.0, 1.0, 1.0, 0.0, 1.0}, at::kDouble).view({3, 2});
}

// Transform points per phase, in filters_ order.
constexpr int64_t kEvenEven = 0, kEvenOdd = 1, kOddEven = 4, kOddOdd = 7;
// Output channels per task: its products (6.25 values per output pixel and
// channel) stay near its core's cache.
constexpr int64_t kOutputBlock = 256;

}  // namespace

StridedWinograd3x3::StridedWinograd3x3(const at::Tensor& weight, const at::Tensor& bias) {
  check_filters(weight, bias);
  out_channels_ = weight.size(0);
  in_channels_ = weight.size(1);
  const at::Tensor w = weight.to(at::kDouble);
  const at::Tensor g = two_tap_filter_transform();
  auto tap = [&](int64_t a, int64_t b) { return w.select(3, b).select(2, a); };  // [C_out, C_in]
  // Two taps along one axis -> 3 points: G·(u0, u1).
  auto two_tap = [&](const at::Tensor& u0, const at::Tensor& u1) {
    return at::matmul(g, at::stack({u0, u1}, 0).flatten(1)).view({3, out_channels_, in_channels_});
  };
  // The corners as a 2×2 filter -> 3×3 points: G·g·Gᵀ.
  const at::Tensor corners = at::stack({tap(0, 0), tap(0, 2), tap(2, 0), tap(2, 2)}, -1)
                                 .view({out_channels_, in_channels_, 2, 2});
  const at::Tensor odd_odd = at::matmul(at::matmul(g, corners), g.t()).permute({2, 3, 0, 1}).reshape(
      {9, out_channels_, in_channels_});
  filters_ = at::cat({tap(1, 1).unsqueeze(0),    // even rows, even columns: the centre tap
                      two_tap(tap(1, 0), tap(1, 2)),  // even rows, odd columns: taps left and right
                      two_tap(tap(0, 1), tap(2, 1)),  // odd rows, even columns: taps above and below
                      odd_odd},
                     0)
                 .to(at::kFloat)
                 .contiguous();
  if (bias.defined()) bias_ = bias.to(at::kFloat).contiguous();
}

at::Tensor StridedWinograd3x3::operator()(const at::Tensor& input_any) const {
  check_input(input_any, in_channels_);
  const at::Tensor input = input_any.contiguous();
  const int64_t n_images = input.size(0), height = input.size(2), width = input.size(3);
  const int64_t channels = in_channels_, outputs = out_channels_;
  const int64_t out_h = (height + 1) / 2, out_w = (width + 1) / 2;
  at::Tensor output = at::empty({n_images, outputs, out_h, out_w}, input.options());
  if (n_images == 0 || height == 0 || width == 0) return output;
  // Tiles per image of each phase: single outputs (even-even), 1×2 and 2×1
  // output pairs, 2×2 output blocks (odd-odd).
  const int64_t tile_h = (out_h + 1) / 2, tile_w = (out_w + 1) / 2;
  const int64_t per_image[4] = {out_h * out_w, out_h * tile_w, tile_h * out_w, tile_h * tile_w};
  const int64_t points[4] = {1, 3, 3, 9};
  const int64_t first_point[4] = {kEvenEven, kEvenOdd, kOddEven, kOddOdd};
  // The input zero-padded by one above and left and enough below and right
  // for every tile: padded (y + 1, x + 1) holds x[y, x].
  const int64_t padded_h = 4 * tile_h + 2, padded_w = 4 * tile_w + 2;

  // Batches run in chunks of images whose transformed input stays below kChunkBytes.
  int64_t values_per_image = 0;
  for (int phase = 0; phase < 4; ++phase) values_per_image += points[phase] * per_image[phase];
  const int64_t chunk = std::max<int64_t>(
      1, std::min(n_images, kChunkBytes / (values_per_image * channels * int64_t{sizeof(float)})));
  const float* in = input.data_ptr<float>();
  float* out = output.data_ptr<float>();
  const float* bias = bias_.defined() ? bias_.data_ptr<float>() : nullptr;
  for (int64_t first = 0; first < n_images; first += chunk) {
    const int64_t count = std::min(chunk, n_images - first);
    at::Tensor v[4];  // per phase: [points, C_in, images · tiles]
    for (int phase = 0; phase < 4; ++phase)
      v[phase] = at::empty({points[phase], channels, count * per_image[phase]}, input.options());
    float* v_data[4];
    for (int phase = 0; phase < 4; ++phase) v_data[phase] = v[phase].data_ptr<float>();
    parallel_for(0, count * channels, 1, [&](int64_t begin, int64_t end) {
      std::vector<float> padded(padded_h * padded_w);
      for (int64_t plane = begin; plane < end; ++plane) {
        const int64_t image = plane / channels, c = plane % channels;
        std::fill(padded.begin(), padded.end(), 0.0f);
        const float* source = in + (first * channels + plane) * height * width;
        for (int64_t y = 0; y < height; ++y)
          std::copy(source + y * width, source + (y + 1) * width, padded.data() + (y + 1) * padded_w + 1);
        // Phase (r, c) at (i, j) = x[2i + r, 2j + c]: padded (2i + r + 1, 2j + c + 1).
        auto at_ = [&](int64_t y, int64_t x) { return padded[(y + 1) * padded_w + x + 1]; };
        auto target = [&](int phase, int64_t point) {
          return v_data[phase] + (point * channels + c) * count * per_image[phase] + image * per_image[phase];
        };
        float* even_even = target(0, 0);
        for (int64_t i = 0; i < out_h; ++i)
          for (int64_t j = 0; j < out_w; ++j) even_even[i * out_w + j] = at_(2 * i, 2 * j);
        // Even rows, odd columns: tile (i, t) reads columns 2(2t − 1) + 1 .. 2(2t + 1) + 1.
        float* eo[3] = {target(1, 0), target(1, 1), target(1, 2)};
        for (int64_t i = 0; i < out_h; ++i)
          for (int64_t t = 0; t < tile_w; ++t) {
            const float d0 = at_(2 * i, 4 * t - 1), d1 = at_(2 * i, 4 * t + 1), d2 = at_(2 * i, 4 * t + 3);
            eo[0][i * tile_w + t] = d0 - d1;
            eo[1][i * tile_w + t] = d1;
            eo[2][i * tile_w + t] = d2 - d1;
          }
        float* oe[3] = {target(2, 0), target(2, 1), target(2, 2)};
        for (int64_t t = 0; t < tile_h; ++t)
          for (int64_t j = 0; j < out_w; ++j) {
            const float d0 = at_(4 * t - 1, 2 * j), d1 = at_(4 * t + 1, 2 * j), d2 = at_(4 * t + 3, 2 * j);
            oe[0][t * out_w + j] = d0 - d1;
            oe[1][t * out_w + j] = d1;
            oe[2][t * out_w + j] = d2 - d1;
          }
        float* oo[9];
        for (int64_t p = 0; p < 9; ++p) oo[p] = target(3, p);
        for (int64_t ti = 0; ti < tile_h; ++ti)
          for (int64_t tj = 0; tj < tile_w; ++tj) {
            float d[3][3], e[3][3];
            for (int64_t a = 0; a < 3; ++a)
              for (int64_t b = 0; b < 3; ++b) d[a][b] = at_(4 * ti + 2 * a - 1, 4 * tj + 2 * b - 1);
            for (int64_t b = 0; b < 3; ++b) {  // rows: Bᵀ·d
              e[0][b] = d[0][b] - d[1][b];
              e[1][b] = d[1][b];
              e[2][b] = d[2][b] - d[1][b];
            }
            const int64_t tile = ti * tile_w + tj;
            for (int64_t a = 0; a < 3; ++a) {  // columns: ·B
              oo[3 * a][tile] = e[a][0] - e[a][1];
              oo[3 * a + 1][tile] = e[a][1];
              oo[3 * a + 2][tile] = e[a][2] - e[a][1];
            }
          }
      }
    });

    // Each task owns blocks of output channels: their 16 GEMMs (single-threaded
    // inside the parallel region) and their output pass, so that the products
    // stay in its core's cache.
    const int64_t blocks = (outputs + kOutputBlock - 1) / kOutputBlock;
    parallel_for(0, blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t block_index = begin; block_index < end; ++block_index) {
        const int64_t k0 = block_index * kOutputBlock, block = std::min(kOutputBlock, outputs - k0);
        at::Tensor m[4];  // per phase: [points, block, N · tiles]
        const float* m_data[4];
        for (int phase = 0; phase < 4; ++phase) {
          m[phase] = at::empty({points[phase], block, count * per_image[phase]}, input.options());
          for (int64_t p = 0; p < points[phase]; ++p) {
            at::Tensor product = m[phase].select(0, p);
            gemm(product, filters_.select(0, first_point[phase] + p).slice(0, k0, k0 + block),
                 v[phase].select(0, p));
          }
          m_data[phase] = m[phase].data_ptr<float>();
        }
        for (int64_t plane = 0; plane < count * block; ++plane) {
          const int64_t image = plane / block, k = plane % block;
          auto source = [&](int phase, int64_t point) {
            return m_data[phase] + (point * block + k) * count * per_image[phase] + image * per_image[phase];
          };
          const float* ee = source(0, 0);
          const float* eo[3] = {source(1, 0), source(1, 1), source(1, 2)};
          const float* oe[3] = {source(2, 0), source(2, 1), source(2, 2)};
          const float* oo[9];
          for (int64_t p = 0; p < 9; ++p) oo[p] = source(3, p);
          float* target = out + ((first + image) * outputs + k0 + k) * out_h * out_w;
          const float b = bias ? bias[k0 + k] : 0.0f;
          for (int64_t i = 0; i < out_h; ++i) {
            const int64_t ti = i / 2, r = i % 2;
            for (int64_t j = 0; j < out_w; ++j) {
              const int64_t tj = j / 2, q = j % 2;
              // Aᵀ = [[1, 1, 0], [0, 1, 1]]: output r of a two-tap tile sums points r and r + 1.
              const int64_t row_tile = i * tile_w + tj, column_tile = ti * out_w + j, block_tile = ti * tile_w + tj;
              float sum = b + ee[i * out_w + j];
              sum += eo[q][row_tile] + eo[q + 1][row_tile];
              sum += oe[r][column_tile] + oe[r + 1][column_tile];
              sum += oo[3 * r + q][block_tile] + oo[3 * r + q + 1][block_tile] + oo[3 * (r + 1) + q][block_tile] +
                     oo[3 * (r + 1) + q + 1][block_tile];
              target[i * out_w + j] = sum;
            }
          }
        }
      }
    });
  }
  return output;
}

}  // namespace feu
