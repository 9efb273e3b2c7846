// Matrix products for feu's models (CLIP's linear layers, the Winograd
// convolutions' transformed GEMMs). On a float32 CPU they run on oneDNN's
// sgemm where the build has it (FEU_ONEDNN_GEMM, the libdnnl that Debian's
// libtorch links). Against the OpenBLAS that ATen's CPU matmuls use, on CLIP
// ViT-B/32's shapes (2-core Zen 3, 2 threads): at 400 rows (batch 8) 1.16×
// the throughput for the packed q/k/v projection, 1.08× for the output
// projection, 1.04× for c_fc, 0.98× for c_proj; at 50 rows (batch 1)
// 1.13–1.34×. Elsewhere (CUDA, other dtypes, a build without it) they are
// ATen's.
#pragma once

#include <ATen/core/Tensor.h>

namespace feu {

// out = a·b + beta·out, in place. a: [M, K]; b: [K, N]; out: [M, N] on their
// device and dtype. a and b may be transposed views (a weight's .t()); out's
// rows are read and written through its strides (a view into a wider buffer
// is fine). beta 0 ignores out's contents, NaNs included.
void gemm(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, float beta = 0.0f);

// The same product on raw float32 CPU matrices, in BLAS's row-major terms:
// c = alpha·op(a)·op(b) + beta·c with c [m, n] (leading dimension ldc), op(a)
// [m, k] and op(b) [k, n], each stored as itself ('N') or as its transpose
// ('T') with its leading dimension, for callers that hold raw rows (the
// tensor form above ends here). beta 0 ignores c's contents.
void gemm(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// a·b as a new contiguous [M, N] tensor.
at::Tensor gemm(const at::Tensor& a, const at::Tensor& b);

// nn.Linear: x [..., in] · weightᵀ + bias, as a new contiguous [..., out].
// weight: [out, in]; bias: [out] or undefined.
at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

}  // namespace feu
