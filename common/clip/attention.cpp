// Compiled with -fopenmp-simd -ffp-contract=fast (common/clip/CMakeLists.txt):
// the softmax's row loops vectorize, and the x86-64-v3 clone's products and
// exp are fused multiply-adds.
#include "clip/attention.h"

#include <ATen/ATen.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/cpu_clone.h"
#include "core/error.h"
#include "tensor/parallel.h"

namespace feu::clip {
namespace {

// Eight floats at any float-aligned address; may_alias: it reads float arrays.
typedef float Lanes __attribute__((vector_size(32), aligned(4), may_alias));
constexpr int64_t kLanes = 8;

// What a product does with each row's sums before storing them.
struct Epilogue {
  float alpha = 1.0f;                  // every row's sums times this,
  const float* row_scale = nullptr;    // or, where given, row r's times row_scale[r];
  const float* column_add = nullptr;   // then, where given, column j's plus column_add[j]
};

// c[R, 8·V] = epilogue(a[R, k] · b[k, 8·V]), rows at strides lda, ldb and ldc.
// R·V accumulators stay in registers (12 at 6×2, the most AVX2's 16 leave
// room for), so each b row loaded serves R rows of a.
template <int R, int V>
inline __attribute__((always_inline)) void product_block(int64_t k, const Epilogue& e, const float* a, int64_t lda,
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
  for (int r = 0; r < R; ++r) {
    const float scale = e.row_scale != nullptr ? e.row_scale[r] : e.alpha;
    for (int v = 0; v < V; ++v) {
      Lanes out = sum[r][v] * scale;
      if (e.column_add != nullptr) out += *reinterpret_cast<const Lanes*>(e.column_add + kLanes * v);
      *reinterpret_cast<Lanes*>(c + r * ldc + kLanes * v) = out;
    }
  }
}

// The same for m rows, six at a time.
template <int V>
inline __attribute__((always_inline)) void product_rows(int64_t m, int64_t k, Epilogue e, const float* a,
                                                        int64_t lda, const float* b, int64_t ldb, float* c,
                                                        int64_t ldc) {
  int64_t i = 0;
  for (; i + 6 <= m; i += 6) {
    product_block<6, V>(k, e, a + i * lda, lda, b, ldb, c + i * ldc, ldc);
    if (e.row_scale != nullptr) e.row_scale += 6;
  }
  a += i * lda;
  c += i * ldc;
  switch (m - i) {
    case 5: product_block<5, V>(k, e, a, lda, b, ldb, c, ldc); break;
    case 4: product_block<4, V>(k, e, a, lda, b, ldb, c, ldc); break;
    case 3: product_block<3, V>(k, e, a, lda, b, ldb, c, ldc); break;
    case 2: product_block<2, V>(k, e, a, lda, b, ldb, c, ldc); break;
    case 1: product_block<1, V>(k, e, a, lda, b, ldb, c, ldc); break;
    default: break;
  }
}

// c[m, n] = epilogue(a[m, k] · b[k, n]) for n a multiple of 8 (column_add: [n]).
inline __attribute__((always_inline)) void product(int64_t m, int64_t n, int64_t k, const Epilogue& e,
                                                   const float* a, int64_t lda, const float* b, int64_t ldb,
                                                   float* c, int64_t ldc) {
  Epilogue columns = e;
  int64_t j = 0;
  for (; j + 2 * kLanes <= n; j += 2 * kLanes) {
    product_rows<2>(m, k, columns, a, lda, b + j, ldb, c + j, ldc);
    if (columns.column_add != nullptr) columns.column_add += 2 * kLanes;
  }
  if (j < n) product_rows<1>(m, k, columns, a, lda, b + j, ldb, c + j, ldc);
}

// The 8×8 block rows[0..7] transposed in registers (as _MM_TRANSPOSE8_PS:
// pairs of rows interleaved, then pairs of pairs, then the 128-bit halves).
// __builtin_shufflevector: GCC (12+) and clang both have it.
inline __attribute__((always_inline)) void transpose8(Lanes rows[8]) {
  Lanes t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = __builtin_shufflevector(rows[i], rows[i + 1], 0, 8, 1, 9, 4, 12, 5, 13);
    t[i + 1] = __builtin_shufflevector(rows[i], rows[i + 1], 2, 10, 3, 11, 6, 14, 7, 15);
  }
  for (int i = 0; i < 8; i += 4) {
    u[i] = __builtin_shufflevector(t[i], t[i + 2], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 1] = __builtin_shufflevector(t[i], t[i + 2], 2, 3, 10, 11, 6, 7, 14, 15);
    u[i + 2] = __builtin_shufflevector(t[i + 1], t[i + 3], 0, 1, 8, 9, 4, 5, 12, 13);
    u[i + 3] = __builtin_shufflevector(t[i + 1], t[i + 3], 2, 3, 10, 11, 6, 7, 14, 15);
  }
  for (int i = 0; i < 4; ++i) {
    rows[i] = __builtin_shufflevector(u[i], u[i + 4], 0, 1, 2, 3, 8, 9, 10, 11);
    rows[i + 4] = __builtin_shufflevector(u[i], u[i + 4], 4, 5, 6, 7, 12, 13, 14, 15);
  }
}

// x = e^x in place for x ≤ 0 (a softmax's scores less their maximum), eight at a time, as
// Cephes's expf: x = n·ln2 + r with |r| ≤ ln2/2 (ln2 in two parts, so that
// n·ln2's rounding stays out of r), e^r by its degree-7 minimax polynomial,
// times 2^n built in the exponent bits. Within 1 ulp of e^x (checked on
// every 16th float of [-87.3, -0.001] and every one above); 0 below
// -87.3 (2^-126, the smallest normal float: next to the row's maximum, whose
// e^0 = 1 is in its sum, less than a rounding of it), -inf included.
inline __attribute__((always_inline)) void exp_nonpositive_(Lanes& x) {
  typedef int Ints __attribute__((vector_size(32)));
  const Lanes lowest = x < -87.33654f ? Lanes{} - 87.33654f : x;
  // Adding 1.5·2^23 rounds to an integer held in the low mantissa bits.
  const Lanes shifted = lowest * 1.44269504f + 12582912.0f;
  const Lanes n = shifted - 12582912.0f;
  const Lanes r = (lowest - n * 0.693359375f) + n * 2.12194440e-4f;
  Lanes p = r * 1.9875691500e-4f + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  // A vector cast reinterprets the bits: shifted's low bits hold n, 2^n is (n + 127) << 23.
  const Ints exponent = ((Ints)shifted - 0x4b400000 + 127) << 23;
  const Lanes result = p * (Lanes)exponent;
  x = x < -87.33654f ? Lanes{} : result;
}

int64_t padded(int64_t l) { return (l + kLanes - 1) / kLanes * kLanes; }

// Floats of scratch one head needs: q [lq, w], kᵀ [w, lp], the scores [lq, lp],
// the rows' 1/sums [lq].
int64_t scratch_floats(int64_t lq, int64_t l, int64_t width) {
  return lq * width + width * padded(l) + lq * padded(l) + lq;
}

// One (image, head): out[lq, w] = softmax(scale·(q + q_bias)·(k + k_bias)ᵀ
// + mask)·(v + v_bias), rows at the given strides; mask null or [lq, l] at
// row stride ldm; the biases [w].
// Two biases are applied where they cost least (see attention.h): k_bias
// not at all, v_bias to the output rows. Each row's sum divides its output
// row, not its l weights.
FEU_X86_64_V3_CLONE void attend_head(int64_t lq, int64_t l, int64_t width, float scale, const float* q,
                                     int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv,
                                     const float* q_bias, const float* v_bias, const float* mask, int64_t ldm,
                                     float* out, int64_t ldo, float* scratch) {
  const int64_t lp = padded(l);
  float* const q_rows = scratch;                         // [lq, w]
  float* const k_t = q_rows + lq * width;               // [w, lp], zero past l
  float* const scores = k_t + width * lp;               // [lq, lp]
  float* const inverse_sums = scores + lq * lp;          // [lq]
  // q (with its bias) and kᵀ are copied once, so that the first product
  // reads adjacent rows: rows of the packed projection are 9 KB apart, and
  // 50 of them would compete for a few of the L1 cache's sets. The second
  // product reads v in place, a 64-byte line of each row at a time.
  for (int64_t i = 0; i < lq; ++i)
    for (int64_t c = 0; c < width; ++c) q_rows[i * width + c] = q[i * ldq + c] + q_bias[c];
  for (int64_t j0 = 0; j0 < lp; j0 += kLanes)
    for (int64_t c0 = 0; c0 < width; c0 += kLanes) {
      Lanes block[kLanes];
      for (int64_t r = 0; r < kLanes; ++r)
        block[r] = j0 + r < l ? *reinterpret_cast<const Lanes*>(k + (j0 + r) * ldk + c0) : Lanes{};
      transpose8(block);
      for (int64_t r = 0; r < kLanes; ++r) *reinterpret_cast<Lanes*>(k_t + (c0 + r) * lp + j0) = block[r];
    }

  product(lq, lp, width, Epilogue{scale}, q_rows, width, k_t, lp, scores, lp);
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
    Lanes sums = {};
    for (int64_t j = 0; j < lp; j += kLanes) {
      Lanes& lanes = *reinterpret_cast<Lanes*>(row + j);
      lanes -= max;
      exp_nonpositive_(lanes);
      sums += lanes;
    }
    float sum = 0.0f;
    for (int64_t lane = 0; lane < kLanes; ++lane) sum += sums[lane];
    inverse_sums[i] = 1.0f / sum;
  }
  product(lq, width, l, Epilogue{1.0f, inverse_sums, v_bias}, scores, lp, v, ldv, out, ldo);
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
                  vc.stride(1), bias_data + channel, bias_data + 2 * d + channel, image_mask, mask_row_stride,
                  out_data + image * lq * d + channel, d, scratch.data());
    }
  });
  return attended;
}

}  // namespace feu::clip
