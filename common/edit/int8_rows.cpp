#include "edit/int8_rows.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

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

double norm(const float* v, int64_t dim) {
  double sum = 0;
  for (int64_t k = 0; k < dim; ++k) sum += static_cast<double>(v[k]) * v[k];
  return std::sqrt(sum);
}

// Exact int8 · int16 dot products of code rows with the query code. Plain
// loops: the compiler vectorizes them (pmaddwd) well enough that DRAM, not
// arithmetic, bounds the scan; hand-written AVX2 measured no faster.
void dot_codes(const int8_t* codes, const int16_t* query, int64_t rows, int64_t dim, int32_t* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const int8_t* row = codes + r * dim;
    int32_t sum = 0;
    for (int64_t k = 0; k < dim; ++k) sum += static_cast<int32_t>(row[k]) * query[k];
    out[r] = sum;
  }
}

}  // namespace

Int8Rows::Int8Rows(const float* data, int64_t rows, int64_t dim) : dim_(dim) {
  check(rows >= 0 && dim > 0, ErrorCode::kInvalidArgument, "Int8Rows needs a positive dimension");
  codes_.resize(static_cast<size_t>(rows * dim));
  scales_.resize(static_cast<size_t>(rows));
  residuals_.resize(static_cast<size_t>(rows));
  norms_.resize(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = data + r * dim;
    int8_t* code = codes_.data() + r * dim;
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
  std::vector<int32_t> dots(static_cast<size_t>(n));
  if (threads > 1 && n * dim >= (int64_t{1} << 22)) {
#pragma omp parallel num_threads(threads)
    {
#ifdef _OPENMP
      const int64_t parts = omp_get_num_threads(), part = omp_get_thread_num();
#else
      const int64_t parts = 1, part = 0;
#endif
      const int64_t begin = n * part / parts, end = n * (part + 1) / parts;
      dot_codes(codes_.data() + begin * dim, query_code.data(), end - begin, dim, dots.data() + begin);
    }
  } else {
    dot_codes(codes_.data(), query_code.data(), n, dim, dots.data());
  }
  Estimates out;
  out.value.resize(static_cast<size_t>(n));
  out.bound.resize(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    const double value = static_cast<double>(scales_[r]) * query_scale * dots[r];
    out.value[r] = static_cast<float>(value);
    const double bound =
        code_norm * residuals_[r] + (query_error + rounding) * norms_[r] + std::fabs(value) * 1e-6 + 1e-12;
    out.bound[r] = static_cast<float>(bound * (1 + 1e-6));
  }
  return out;
}

}  // namespace feu::edit
