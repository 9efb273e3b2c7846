#include "tensor/gemm.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <string>

#include "core/error.h"

#ifdef FEU_ONEDNN_GEMM
#include <oneapi/dnnl/dnnl.h>
#endif

namespace feu {
namespace {

void check_shapes(const at::Tensor& out, const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() == 2 && b.dim() == 2 && out.dim() == 2 && a.size(1) == b.size(0) && out.size(0) == a.size(0) &&
      out.size(1) == b.size(1))
    return;
  throw Error(ErrorCode::kShapeMismatch, "gemm: expected a [M, K], b [K, N] and out [M, N], got a " +
                                             c10::str(a.sizes()) + ", b " + c10::str(b.sizes()) + ", out " +
                                             c10::str(out.sizes()));
}

// A [rows, cols] view as a row-major BLAS operand: 'N' with its row stride, or
// 'T' (stored as the transpose) with its column stride. False for any other
// layout. A dimension of size 1 takes any stride.
bool blas_operand(const at::Tensor& t, char* trans, int64_t* ld) {
  const int64_t rows = t.size(0), cols = t.size(1);
  if (t.stride(1) == 1 || cols == 1) {
    *ld = rows == 1 ? std::max<int64_t>(cols, 1) : t.stride(0);
    if (*ld >= std::max<int64_t>(cols, 1)) {
      *trans = 'N';
      return true;
    }
  }
  if (t.stride(0) == 1 || rows == 1) {
    *ld = cols == 1 ? std::max<int64_t>(rows, 1) : t.stride(1);
    if (*ld >= std::max<int64_t>(rows, 1)) {
      *trans = 'T';
      return true;
    }
  }
  return false;
}

bool cpu_float(const at::Tensor& t) { return t.is_cpu() && t.scalar_type() == at::kFloat && !t.is_mkldnn(); }

// A raw row-major operand as a [rows, cols] tensor view.
at::Tensor view_of(const float* data, char trans, int64_t rows, int64_t cols, int64_t ld) {
  auto* p = const_cast<float*>(data);
  return trans == 'N' ? at::from_blob(p, {rows, cols}, {ld, 1}, at::kFloat)
                      : at::from_blob(p, {cols, rows}, {ld, 1}, at::kFloat).t();
}

}  // namespace

void gemm(char trans_a, char trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: c = beta·c
    at::Tensor target = view_of(c, 'N', m, n, ldc);
    if (beta == 0.0f) target.zero_(); else target.mul_(beta);
    return;
  }
#ifdef FEU_ONEDNN_GEMM
  const dnnl_status_t status = dnnl_sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  if (status != dnnl_success)
    throw Error(ErrorCode::kInternal, "gemm: oneDNN's sgemm failed (status " + std::to_string(static_cast<int>(status)) +
                                          ") for m " + std::to_string(m) + ", n " + std::to_string(n) + ", k " +
                                          std::to_string(k));
#else
  at::Tensor target = view_of(c, 'N', m, n, ldc);
  target.addmm_(view_of(a, trans_a, m, k, lda), view_of(b, trans_b, k, n, ldb), beta, alpha);
#endif
}

void gemm(at::Tensor& out, const at::Tensor& a, const at::Tensor& b, float beta) {
  check_shapes(out, a, b);
  if (!cpu_float(out) || !cpu_float(a) || !cpu_float(b)) {
    if (beta == 0.0f) {
      at::mm_out(out, a, b);
    } else {
      out.addmm_(a, b, beta, 1.0);
    }
    return;
  }
  char trans_a = 'N', trans_b = 'N', trans_out = 'N';
  int64_t lda = 0, ldb = 0, ldc = 0;
  const at::Tensor a_plain = blas_operand(a, &trans_a, &lda) ? a : a.contiguous();
  if (!a_plain.is_same(a)) blas_operand(a_plain, &trans_a, &lda);
  const at::Tensor b_plain = blas_operand(b, &trans_b, &ldb) ? b : b.contiguous();
  if (!b_plain.is_same(b)) blas_operand(b_plain, &trans_b, &ldb);
  // The result is written row-major: an out of any other layout gets it through a copy.
  const bool out_in_place = blas_operand(out, &trans_out, &ldc) && trans_out == 'N';
  at::Tensor target = out_in_place ? out : (beta == 0.0f ? at::empty(out.sizes(), out.options()) : out.contiguous());
  if (!out_in_place) ldc = std::max<int64_t>(out.size(1), 1);
  gemm(trans_a, trans_b, out.size(0), out.size(1), a.size(1), 1.0f, a_plain.data_ptr<float>(), lda,
       b_plain.data_ptr<float>(), ldb, beta, target.data_ptr<float>(), ldc);
  if (!out_in_place) out.copy_(target);
}

at::Tensor gemm(const at::Tensor& a, const at::Tensor& b) {
  check(a.dim() == 2 && b.dim() == 2, ErrorCode::kShapeMismatch,
        "gemm: expected a [M, K] and b [K, N], got a " + c10::str(a.sizes()) + ", b " + c10::str(b.sizes()));
  at::Tensor out = at::empty({a.size(0), b.size(1)}, a.options());
  gemm(out, a, b);
  return out;
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  if (!(x.dim() >= 1 && weight.dim() == 2 && x.size(-1) == weight.size(1) &&
        (!bias.defined() || (bias.dim() == 1 && bias.size(0) == weight.size(0)))))
    throw Error(ErrorCode::kShapeMismatch,
        "linear: expected x [..., in], weight [out, in] and bias [out], got x " + c10::str(x.sizes()) + ", weight " +
            c10::str(weight.sizes()) + ", bias " + (bias.defined() ? c10::str(bias.sizes()) : std::string("none")));
#ifdef FEU_ONEDNN_GEMM
  const bool onednn = cpu_float(x) && cpu_float(weight) && (!bias.defined() || cpu_float(bias));
#else
  const bool onednn = false;
#endif
  if (!onednn) return at::linear(x, weight, bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt);
  std::vector<int64_t> sizes = x.sizes().vec();
  sizes.back() = weight.size(0);
  at::Tensor out = at::empty(sizes, x.options());
  at::Tensor rows = out.view({-1, weight.size(0)});
  if (bias.defined()) rows.copy_(bias.expand_as(rows));
  gemm(rows, x.reshape({-1, x.size(-1)}), weight.t(), bias.defined() ? 1.0f : 0.0f);
  return out;
}

}  // namespace feu
