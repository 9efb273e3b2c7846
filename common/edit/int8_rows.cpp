#include "edit/int8_rows.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "edit/vectors.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace feu::edit {
namespace {

// The largest query code magnitude for which every dot product of `dim`
// int8 codes (|code| <= 127) with the query fits in int32.
int max_query_code(int64_t dim) {
  const int64_t limit = std::numeric_limits<int32_t>::max() / (127 * std::max<int64_t>(dim, 1));
  return static_cast<int>(std::clamp<int64_t>(limit, 1, std::numeric_limits<int16_t>::max()));
}

// Symmetric integer code of a vector: v ≈ scale · code, |code| <= limit.
template <typename Code>
float quantize(const float* v, int64_t dim, int limit, Code* code) {
  float largest = 0;
  for (int64_t k = 0; k < dim; ++k) largest = std::max(largest, std::fabs(v[k]));
  const float scale = largest > 0 ? largest / static_cast<float>(limit) : 1.0f;
  const float bound = static_cast<float>(limit);
  for (int64_t k = 0; k < dim; ++k) {
    code[k] = static_cast<Code>(std::lround(std::clamp(v[k] / scale, -bound, bound)));
  }
  return scale;
}

template <typename Code>
double residual_norm(const float* v, const Code* code, float scale, int64_t dim) {
  double sum = 0;
  for (int64_t k = 0; k < dim; ++k) {
    const double e = static_cast<double>(v[k]) - static_cast<double>(scale) * code[k];
    sum += e * e;
  }
  return std::sqrt(sum);
}

// Exact int8 · int16 dot products of code rows with the query code. Plain
// loops: the compiler vectorizes them (pmaddwd) well enough that DRAM, not
// arithmetic, bounds the scan; hand-written AVX2 measured no faster. Asking
// for the row four ahead (up to `end`, the end of all codes) does help:
// 70k x 512 went 3.9 -> 3.3 ms on one core of the 2-core EPYC VM, 2.1 -> 1.8
// ms on two.
void dot_codes(const int8_t* codes, const int16_t* query, int64_t rows, int64_t dim, const int8_t* end,
               int32_t* out) {
  constexpr int64_t kAhead = 4;
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* row = codes + r * dim;
    if (end - row > kAhead * dim) {
      for (int64_t byte = 0; byte < dim; byte += 64) __builtin_prefetch(row + kAhead * dim + byte);
    }
    int32_t sum = 0;
    for (int64_t k = 0; k < dim; ++k) sum += static_cast<int32_t>(row[k]) * query[k];
    out[r] = sum;
  }
}

// Each row's estimate and bound from its integer dot, and the extremes of
// the interval ends over the rows: {lower max, lower min, upper max, upper
// min}. Float arithmetic: its few roundings, < 4·2^-24·|v|, are inside the
// |v|·1e-6 term, and the bound's own inside (1 + 1e-5).
struct BoundTerms {
  float query_scale;     // q ≈ query_scale · code
  float code_norm;       // |q̂|, rounded up
  float error_per_norm;  // |q - q̂| + the float-sum rounding allowance, per unit |row|
};

void finish_rows(const int32_t* __restrict dots, const float* __restrict scales, const float* __restrict residuals,
                 const float* __restrict norms, int64_t count, const BoundTerms& terms, float* __restrict value,
                 float* __restrict bound, float extremes[4]) {
  const float inf = std::numeric_limits<float>::infinity();
  float lower_max = -inf, lower_min = inf, upper_max = -inf, upper_min = inf;
#pragma omp simd reduction(max : lower_max, upper_max) reduction(min : lower_min, upper_min)
  for (int64_t j = 0; j < count; ++j) {
    const float v = scales[j] * terms.query_scale * static_cast<float>(dots[j]);
    const float b =
        (terms.code_norm * residuals[j] + terms.error_per_norm * norms[j] + std::fabs(v) * 1e-6f + 1e-12f) *
        (1 + 1e-5f);
    value[j] = v;
    bound[j] = b;
    const float lower = v - b, upper = v + b;
    lower_max = std::max(lower_max, lower);
    lower_min = std::min(lower_min, lower);
    upper_max = std::max(upper_max, upper);
    upper_min = std::min(upper_min, upper);
  }
  extremes[0] = lower_max;
  extremes[1] = lower_min;
  extremes[2] = upper_max;
  extremes[3] = upper_min;
}

}  // namespace

Int8Rows::Int8Rows(const float* data, int64_t rows, int64_t dim) : dim_(dim) {
  check(rows >= 0 && dim > 0, ErrorCode::kInvalidArgument, "Int8Rows needs a positive dimension");
  codes_ = HugePageBuffer(static_cast<size_t>(rows * dim));
  scales_.resize(static_cast<size_t>(rows));
  residuals_.resize(static_cast<size_t>(rows));
  norms_.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = data + r * dim;
    int8_t* code = reinterpret_cast<int8_t*>(codes_.data()) + r * dim;
    scales_[r] = quantize(row, dim, 127, code);
    residuals_[r] = static_cast<float>(residual_norm(row, code, scales_[r], dim) * (1 + 1e-6) + 1e-9);
    norms_[r] = static_cast<float>(norm(row, dim) * (1 + 1e-6));
  }
}

Int8Rows::Estimates Int8Rows::estimate(const float* query, int threads) const {
  const int64_t n = rows(), dim = dim_;
  // The query in int16 (not int8): its quantization error, a term of every
  // row's bound, becomes ~256x smaller, so fewer rows need rescoring.
  std::vector<int16_t> query_code(static_cast<size_t>(dim));
  const float query_scale = quantize(query, dim, max_query_code(dim), query_code.data());
  double code_sq = 0;
  for (int64_t k = 0; k < dim; ++k) code_sq += static_cast<double>(query_code[k]) * query_code[k];
  const double code_norm = query_scale * std::sqrt(code_sq);                              // |q̂|
  const double query_error = residual_norm(query, query_code.data(), query_scale, dim);  // |q - q̂|
  const double query_norm = norm(query, dim);                                             // |q|
  // x·q - x̂·q̂ = (x - x̂)·q̂ + x·(q - q̂), so |x·q - x̂·q̂| <= res_x |q̂| + |x| |q - q̂|.
  // The exact float sum of 8 lanes of dim/8 products then 7 adds is within
  // (dim/8 + 7)·u·|x|·|q| of x·q (u = 2^-24; doubled here, plus a floor).
  const double rounding = ((dim / 8.0 + 8.0) * 1.2e-7 * 1.0001 + 1e-6) * query_norm;
  const BoundTerms terms{query_scale, static_cast<float>(code_norm * (1 + 1e-6)),
                         static_cast<float>((query_error + rounding) * (1 + 1e-6))};
  constexpr int64_t kBlock = Estimates::kBlock;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  Estimates out;
  out.value.resize(static_cast<size_t>(n));
  out.bound.resize(static_cast<size_t>(n));
  out.lower_max.resize(static_cast<size_t>(blocks));
  out.lower_min.resize(static_cast<size_t>(blocks));
  out.upper_max.resize(static_cast<size_t>(blocks));
  out.upper_min.resize(static_cast<size_t>(blocks));
  const int8_t* codes = reinterpret_cast<const int8_t*>(codes_.data());
  // Blocks [first_block, last_block): integer dots (in L1), then the rows'
  // estimates and bounds and the block's extremes.
  auto scan = [&](int64_t first_block, int64_t last_block) {
    int32_t dots[kBlock];
    float extremes[4];
    for (int64_t block = first_block; block < last_block; ++block) {
      const int64_t first = block * kBlock, count = std::min(kBlock, n - first);
      dot_codes(codes + first * dim, query_code.data(), count, dim, codes + n * dim, dots);
      finish_rows(dots, &scales_[first], &residuals_[first], &norms_[first], count, terms, &out.value[first],
                  &out.bound[first], extremes);
      out.lower_max[block] = extremes[0];
      out.lower_min[block] = extremes[1];
      out.upper_max[block] = extremes[2];
      out.upper_min[block] = extremes[3];
    }
  };
  if (threads > 1 && n * dim >= (int64_t{1} << 22)) {
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
      const int64_t parts = omp_get_num_threads(), part = omp_get_thread_num();
#else
      const int64_t parts = 1, part = 0;
#endif
      scan(blocks * part / parts, blocks * (part + 1) / parts);
    }
  } else {
    scan(0, blocks);
  }
  return out;
}

}  // namespace feu::edit
