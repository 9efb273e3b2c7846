// Compiled with -ffp-contract=off (common/clip/CMakeLists.txt): the two
// builds of the row loop (core/cpu_clone.h) give the same results.
#include "clip/layer_norm.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "core/cpu_clone.h"
#include "core/error.h"
#include "tensor/parallel.h"

namespace feu::clip {
namespace {

constexpr double kEps = 1e-5;

// Rows of `width` floats from `in` to `out`, normalised. The deviations are
// taken from a first float mean m and corrected by their own mean δ (the
// corrected two-pass algorithm): x − m is exact near m, where the mean
// itself rounded to float could be off by an ulp of the row's offset, which
// for rows far from zero would be a sizeable part of their spread.
FEU_X86_64_V3_CLONE void normalize_rows(const float* in, float* out, int64_t count, int64_t width,
                                        const float* weight, const float* bias) {
  const float n = static_cast<float>(width);
  for (int64_t r = 0; r < count; ++r) {
    const float* x = in + r * width;
    float* y = out + r * width;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < width; ++j) sum += x[j];
    const float mean = sum / n;
    float deviations = 0.0f, squares = 0.0f;
#pragma omp simd reduction(+ : deviations, squares)
    for (int64_t j = 0; j < width; ++j) {
      deviations += x[j] - mean;
      squares += (x[j] - mean) * (x[j] - mean);
    }
    const float shift = deviations / n;
    const double variance = std::max(0.0, static_cast<double>(squares) / width - static_cast<double>(shift) * shift);
    const float rstd = static_cast<float>(1.0 / std::sqrt(variance + kEps));
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) y[j] = ((x[j] - mean) - shift) * rstd * weight[j] + bias[j];
  }
}

}  // namespace

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t width = x.dim() > 0 ? x.size(-1) : 0;
  if (!(x.dim() > 0 && weight.dim() == 1 && bias.dim() == 1 && weight.size(0) == width && bias.size(0) == width))
    throw Error(ErrorCode::kShapeMismatch, "layer_norm: expected x [..., D], weight [D] and bias [D], got x " +
                                               c10::str(x.sizes()) + ", weight " + c10::str(weight.sizes()) +
                                               ", bias " + c10::str(bias.sizes()));
  const bool cpu_float = x.is_cpu() && x.scalar_type() == at::kFloat && weight.is_cpu() &&
                         weight.scalar_type() == at::kFloat && bias.is_cpu() && bias.scalar_type() == at::kFloat;
  if (!cpu_float)
    return at::layer_norm(x.to(at::kFloat), {width}, weight.to(at::kFloat), bias.to(at::kFloat), kEps)
        .to(x.scalar_type());
  const at::Tensor in = x.contiguous(), w = weight.contiguous(), b = bias.contiguous();
  at::Tensor out = at::empty_like(in);
  const float *in_data = in.data_ptr<float>(), *w_data = w.data_ptr<float>(), *b_data = b.data_ptr<float>();
  float* out_data = out.data_ptr<float>();
  const int64_t rows = width == 0 ? 0 : in.numel() / width;
  parallel_for(0, rows, 8, [&](int64_t begin, int64_t end) {
    normalize_rows(in_data + begin * width, out_data + begin * width, end - begin, width, w_data, b_data);
  });
  return out;
}

}  // namespace feu::clip
