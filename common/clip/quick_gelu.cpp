// Compiled with -fopenmp-simd -fno-math-errno -ffp-contract=off
// (common/clip/CMakeLists.txt): the loop below becomes calls to glibc's
// libmvec expf (8 lanes in the x86-64-v3 clone, 4 in the baseline).
#include "clip/quick_gelu.h"

#include <cmath>
#include <cstdint>

#include "core/cpu_clone.h"
#include "core/error.h"
#include "tensor/parallel.h"

// What glibc's <bits/math-vector.h> declares only under -ffast-math: expf has
// SIMD variants (_ZGVdN8v_expf ...). Declared here so that nothing else of
// -ffast-math (no infinities, reassociation) comes with it.
extern "C" __attribute__((simd("notinbranch"))) float expf(float) noexcept;

namespace feu::clip {
namespace {

FEU_X86_64_V3_CLONE void add_bias_quick_gelu_rows(float* rows, const float* bias, int64_t count, int64_t width) {
  for (int64_t r = 0; r < count; ++r) {
    float* row = rows + r * width;
#pragma omp simd
    for (int64_t j = 0; j < width; ++j) {
      const float x = row[j] + bias[j];
      row[j] = x / (1.0f + expf(-1.702f * x));
    }
  }
}

}  // namespace

void add_bias_quick_gelu_(at::Tensor& h, const at::Tensor& bias) {
  check(h.is_cpu() && h.scalar_type() == at::kFloat && h.dim() == 2 && h.is_contiguous() && bias.is_cpu() &&
            bias.scalar_type() == at::kFloat && bias.dim() == 1 && bias.size(0) == h.size(1) && bias.is_contiguous(),
        ErrorCode::kInvalidArgument,
        "add_bias_quick_gelu_: expected contiguous CPU float32 h [rows, width] and bias [width]");
  const int64_t width = h.size(1);
  float* rows = h.data_ptr<float>();
  const float* b = bias.data_ptr<float>();
  parallel_for(0, h.size(0), 16, [&](int64_t begin, int64_t end) {
    add_bias_quick_gelu_rows(rows + begin * width, b, end - begin, width);
  });
}

}  // namespace feu::clip
