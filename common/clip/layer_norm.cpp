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
// With `residual_bias` (else null), in's rows first get it added in place.
FEU_X86_64_V3_CLONE void normalize_rows(float* in, float* out, int64_t count, int64_t width, const float* weight,
                                        const float* bias, const float* residual_bias) {
  const float n = static_cast<float>(width);
  for (int64_t r = 0; r < count; ++r) {
    float* x = in + r * width;
    float* y = out + r * width;
    float sum = 0.0f;
    if (residual_bias != nullptr) {
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < width; ++j) {
        x[j] += residual_bias[j];
        sum += x[j];
      }
    } else {
#pragma omp simd reduction(+ : sum)
      for (int64_t j = 0; j < width; ++j) sum += x[j];
    }
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

void check_shapes(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t width = x.dim() > 0 ? x.size(-1) : 0;
  if (!(x.dim() > 0 && weight.dim() == 1 && bias.dim() == 1 && weight.size(0) == width && bias.size(0) == width))
    throw Error(ErrorCode::kShapeMismatch, "layer_norm: expected x [..., D], weight [D] and bias [D], got x " +
                                               c10::str(x.sizes()) + ", weight " + c10::str(weight.sizes()) +
                                               ", bias " + c10::str(bias.sizes()));
}

bool cpu_float(const at::Tensor& t) { return t.is_cpu() && t.scalar_type() == at::kFloat; }

// layer_norm on contiguous CPU float32 rows; with residual_bias (else null),
// in's rows get it first, in place.
at::Tensor normalize(const at::Tensor& in, const at::Tensor& weight, const at::Tensor& bias,
                     const float* residual_bias) {
  const int64_t width = in.size(-1);
  const at::Tensor w = weight.contiguous(), b = bias.contiguous();
  at::Tensor out = at::empty_like(in);
  float *in_data = in.data_ptr<float>(), *out_data = out.data_ptr<float>();
  const float *w_data = w.data_ptr<float>(), *b_data = b.data_ptr<float>();
  const int64_t rows = width == 0 ? 0 : in.numel() / width;
  parallel_for(0, rows, 8, [&](int64_t begin, int64_t end) {
    normalize_rows(in_data + begin * width, out_data + begin * width, end - begin, width, w_data, b_data,
                   residual_bias);
  });
  return out;
}

}  // namespace

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  check_shapes(x, weight, bias);
  if (!(cpu_float(x) && cpu_float(weight) && cpu_float(bias)))
    return at::layer_norm(x.to(at::kFloat), {x.size(-1)}, weight.to(at::kFloat), bias.to(at::kFloat), kEps)
        .to(x.scalar_type());
  return normalize(x.contiguous(), weight, bias, nullptr);
}

at::Tensor add_bias_layer_norm_(at::Tensor& x, const at::Tensor& residual_bias, const at::Tensor& weight,
                                const at::Tensor& bias) {
  check_shapes(x, weight, bias);
  if (!(x.is_contiguous() && residual_bias.dim() == 1 && residual_bias.size(0) == x.size(-1) &&
        residual_bias.device() == x.device() && residual_bias.scalar_type() == x.scalar_type()))
    throw Error(ErrorCode::kShapeMismatch,
                "add_bias_layer_norm_: expected a contiguous x [..., D] and residual_bias [" +
                    std::to_string(x.size(-1)) + "] of its device and dtype, got x " + c10::str(x.sizes()) +
                    ", residual_bias " + c10::str(residual_bias.sizes()));
  if (!(cpu_float(x) && cpu_float(weight) && cpu_float(bias)))
    return layer_norm(x.add_(residual_bias), weight, bias);
  const at::Tensor rb = residual_bias.contiguous();
  return normalize(x, weight, bias, rb.data_ptr<float>());
}

}  // namespace feu::clip
