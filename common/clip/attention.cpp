// Compiled with -fopenmp-simd -fno-math-errno -ffp-contract=fast
// (common/clip/CMakeLists.txt): the softmax's exp becomes glibc's libmvec
// vector expf, and the x86-64-v3 clone's products fused multiply-adds.
#include "clip/attention.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/cpu_clone.h"
#include "core/error.h"
#include "tensor/parallel.h"

// What glibc's <bits/math-vector.h> declares only under -ffast-math (see quick_gelu.cpp).
extern "C" __attribute__((simd("notinbranch"))) float expf(float) noexcept;

namespace feu::clip {
namespace {

// Eight floats at any float-aligned address; may_alias: it reads float arrays.
typedef float Lanes __attribute__((vector_size(32), aligned(4), may_alias));
constexpr int64_t kLanes = 8;

// c[R, 8·V] = alpha · a[R, k] · b[k, 8·V], rows at strides lda, ldb and ldc.
// R·V accumulators stay in registers (12 at 6×2, the most AVX2's 16 leave
// room for), so each b row loaded serves R rows of a.
template <int R, int V>
inline __attribute__((always_inline)) void product_block(int64_t k, float alpha, const float* a, int64_t lda,
                                                         const float* b, int64_t ldb, float* c, int64_t ldc) {
  Lanes sum[R][V] = {};
  for (int64_t p = 0; p < k; ++p) {
    Lanes b_lanes[V];
    for (int v = 0; v < V; ++v) b_lanes[v] = *reinterpret_cast<const Lanes*>(b + p * ldb + kLanes * v);
    for (int r = 0; r < R; ++r) {
      const float a_rp = a[r * lda + p];
      for (int v = 0; v < V; ++v) sum[r][v] += a_rp * b_lanes[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) *reinterpret_cast<Lanes*>(c + r * ldc + kLanes * v) = sum[r][v] * alpha;
}

// The same for m rows, six at a time.
template <int V>
inline __attribute__((always_inline)) void product_rows(int64_t m, int64_t k, float alpha, const float* a,
                                                        int64_t lda, const float* b, int64_t ldb, float* c,
                                                        int64_t ldc) {
  int64_t i = 0;
  for (; i + 6 <= m; i += 6) product_block<6, V>(k, alpha, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
  a += i * lda;
  c += i * ldc;
  switch (m - i) {
    case 5: product_block<5, V>(k, alpha, a, lda, b, ldb, c, ldc); break;
    case 4: product_block<4, V>(k, alpha, a, lda, b, ldb, c, ldc); break;
    case 3: product_block<3, V>(k, alpha, a, lda, b, ldb, c, ldc); break;
    case 2: product_block<2, V>(k, alpha, a, lda, b, ldb, c, ldc); break;
    case 1: product_block<1, V>(k, alpha, a, lda, b, ldb, c, ldc); break;
    default: break;
  }
}

// c[m, n] = alpha · a[m, k] · b[k, n] for n a multiple of 8.
inline __attribute__((always_inline)) void product(int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                                                   int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc) {
  int64_t j = 0;
  for (; j + 2 * kLanes <= n; j += 2 * kLanes) product_rows<2>(m, k, alpha, a, lda, b + j, ldb, c + j, ldc);
  if (j < n) product_rows<1>(m, k, alpha, a, lda, b + j, ldb, c + j, ldc);
}

int64_t padded(int64_t l) { return (l + kLanes - 1) / kLanes * kLanes; }

// Floats of scratch one head needs: q [lq, w], kᵀ [w, lp], the scores [lq, lp], v [l, w].
int64_t scratch_floats(int64_t lq, int64_t l, int64_t width) {
  return lq * width + width * padded(l) + lq * padded(l) + l * width;
}

// One (image, head): out[lq, w] = softmax(scale·(q + q_bias)·(k + k_bias)ᵀ
// + mask)·(v + v_bias), rows at the given strides; mask null or [lq, l] at
// row stride ldm; the biases [w].
FEU_X86_64_V3_CLONE void attend_head(int64_t lq, int64_t l, int64_t width, float scale, const float* q,
                                     int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv,
                                     const float* q_bias, const float* k_bias, const float* v_bias,
                                     const float* mask, int64_t ldm, float* out, int64_t ldo, float* scratch) {
  const int64_t lp = padded(l);
  float* const q_rows = scratch;                         // [lq, w]
  float* const k_t = q_rows + lq * width;               // [w, lp], zero past l
  float* const scores = k_t + width * lp;               // [lq, lp]
  float* const v_rows = scores + lq * lp;                // [l, w]
  // q, kᵀ and v are copied once, with their biases, so that the products
  // read them from adjacent rows: rows of the packed projection are 9 KB
  // apart, and their lines would compete for a few of the L1 cache's sets.
  for (int64_t i = 0; i < lq; ++i)
    for (int64_t c = 0; c < width; ++c) q_rows[i * width + c] = q[i * ldq + c] + q_bias[c];
  for (int64_t j = 0; j < l; ++j)
    for (int64_t c = 0; c < width; ++c) k_t[c * lp + j] = k[j * ldk + c] + k_bias[c];
  for (int64_t c = 0; c < width; ++c)
    for (int64_t j = l; j < lp; ++j) k_t[c * lp + j] = 0.0f;
  for (int64_t j = 0; j < l; ++j)
    for (int64_t c = 0; c < width; ++c) v_rows[j * width + c] = v[j * ldv + c] + v_bias[c];

  product(lq, lp, width, scale, q_rows, width, k_t, lp, scores, lp);
  for (int64_t i = 0; i < lq; ++i) {
    float* const row = scores + i * lp;
    if (mask != nullptr) {
#pragma omp simd
      for (int64_t j = 0; j < l; ++j) row[j] += mask[i * ldm + j];
    }
    for (int64_t j = l; j < lp; ++j) row[j] = -INFINITY;  // the padding weighs nothing
    float max = -INFINITY;
#pragma omp simd reduction(max : max)
    for (int64_t j = 0; j < lp; ++j) max = row[j] > max ? row[j] : max;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < lp; ++j) {
      row[j] = expf(row[j] - max);
      sum += row[j];
    }
#pragma omp simd
    for (int64_t j = 0; j < lp; ++j) row[j] /= sum;
  }
  product(lq, width, l, 1.0f, scores, lp, v_rows, width, out, ldo);
}

void check_operands(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                    const at::Tensor& in_bias, const at::Tensor& mask) {
  for (const at::Tensor* t : {&q, &k, &v})
    check(t->is_cpu() && t->scalar_type() == at::kFloat, ErrorCode::kInvalidArgument,
          "multi_head_attention_cpu: expected CPU float32 q, k and v");
  const bool shapes = q.dim() == 3 && k.dim() == 3 && v.dim() == 3 && k.sizes() == v.sizes() &&
                      q.size(0) == k.size(0) && q.size(2) == k.size(2);
  if (!shapes)
    throw Error(ErrorCode::kShapeMismatch,
                "multi_head_attention_cpu: expected q [N, Lq, D] and k, v [N, L, D], got q " + c10::str(q.sizes()) +
                    ", k " + c10::str(k.sizes()) + ", v " + c10::str(v.sizes()));
  const int64_t d = q.size(2);
  if (!(heads > 0 && d % heads == 0 && (d / heads) % kLanes == 0))
    throw Error(ErrorCode::kShapeMismatch, "multi_head_attention_cpu: width " + std::to_string(d) + " and " +
                                               std::to_string(heads) +
                                               " heads: expected heads dividing it into multiples of 8");
  if (in_bias.defined()) {
    check(in_bias.is_cpu() && in_bias.scalar_type() == at::kFloat, ErrorCode::kInvalidArgument,
          "multi_head_attention_cpu: expected a CPU float32 in_bias");
    if (!(in_bias.dim() == 1 && in_bias.size(0) == 3 * d))
      throw Error(ErrorCode::kShapeMismatch, "multi_head_attention_cpu: expected in_bias [" + std::to_string(3 * d) +
                                                 "] (q's, k's and v's), got " + c10::str(in_bias.sizes()));
  }
  if (!mask.defined()) return;
  check(mask.is_cpu() && mask.scalar_type() == at::kFloat, ErrorCode::kInvalidArgument,
        "multi_head_attention_cpu: expected a CPU float32 mask");
  const int64_t lq = q.size(1), l = k.size(1);
  const bool shared = mask.dim() == 2 && mask.size(0) == lq && mask.size(1) == l;
  const bool per_image = mask.dim() == 3 && mask.size(0) == q.size(0) && mask.size(1) == lq && mask.size(2) == l;
  if (!shared && !per_image)
    throw Error(ErrorCode::kShapeMismatch, "multi_head_attention_cpu: expected a mask [" + std::to_string(lq) + ", " +
                                               std::to_string(l) + "] or [" + std::to_string(q.size(0)) + ", " +
                                               std::to_string(lq) + ", " + std::to_string(l) + "], got " +
                                               c10::str(mask.sizes()));
}

}  // namespace

at::Tensor multi_head_attention_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                    const at::Tensor& in_bias, const at::Tensor& mask) {
  check_operands(q, k, v, heads, in_bias, mask);
  const int64_t n = q.size(0), lq = q.size(1), l = k.size(1), d = q.size(2), width = d / heads;
  const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(width)));
  auto adjacent_channels = [](const at::Tensor& t) { return t.stride(-1) == 1 ? t : t.contiguous(); };
  const at::Tensor qc = adjacent_channels(q), kc = adjacent_channels(k), vc = adjacent_channels(v);
  const at::Tensor mc = mask.defined() ? adjacent_channels(mask) : mask;
  const float *q_data = qc.data_ptr<float>(), *k_data = kc.data_ptr<float>(), *v_data = vc.data_ptr<float>();
  const float* mask_data = mc.defined() ? mc.data_ptr<float>() : nullptr;
  const at::Tensor biases = in_bias.defined() ? in_bias.contiguous() : at::zeros({3 * d}, q.options());
  const float* bias_data = biases.data_ptr<float>();
  const int64_t mask_image_stride = mc.defined() && mc.dim() == 3 ? mc.stride(0) : 0;
  const int64_t mask_row_stride = mc.defined() ? mc.stride(-2) : 0;
  at::Tensor attended = at::empty({n, lq, d}, q.options());
  float* out_data = attended.data_ptr<float>();
  parallel_for(0, n * heads, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(scratch_floats(lq, l, width)));
    for (int64_t pair = begin; pair < end; ++pair) {
      const int64_t image = pair / heads, channel = pair % heads * width;
      const float* image_mask = mask_data == nullptr ? nullptr : mask_data + image * mask_image_stride;
      attend_head(lq, l, width, scale, q_data + image * qc.stride(0) + channel, qc.stride(1),
                  k_data + image * kc.stride(0) + channel, kc.stride(1), v_data + image * vc.stride(0) + channel,
                  vc.stride(1), bias_data + channel, bias_data + d + channel, bias_data + 2 * d + channel,
                  image_mask, mask_row_stride, out_data + image * lq * d + channel, d, scratch.data());
    }
  });
  return attended;
}

}  // namespace feu::clip
