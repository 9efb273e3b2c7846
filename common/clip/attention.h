// The core of nn.MultiheadAttention on the CPU, one fused pass per (image, head).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace feu::clip {

// softmax(q_h·k_hᵀ/√w + mask)·v_h for every image and head h (w = D / heads),
// the heads side by side in the result as nn.MultiheadAttention has them
// before its output projection.
// q: [N, Lq, D]; k, v: [N, L, D]; all CPU float32. Views into a packed q/k/v
// projection are read in place (a copy is made only if the channels are not
// adjacent).
// in_bias: undefined, or the projection's bias [3·D] (q's, k's, v's, as
// nn.MultiheadAttention's in_proj_bias), applied here so that the
// projection's GEMM writes its output without reading it: q's as q is read,
// v's to the output (each row's weights sum to 1), and k's not at all (it
// adds the same (q + q_bias)·k_bias to every score of a row, which a softmax
// ignores).
// mask: undefined, or additive CPU float32 [Lq, L] (shared by the images) or
// [N, Lq, L]; -inf masks a key out.
// Returns [N, Lq, D] contiguous.
//
// The threads share the (image, head) pairs. Each pair's scores stay in the
// thread's cache from q·kᵀ through the softmax to the product with v, where
// a GEMM per product and a softmax over all the scores would pass over memory
// three times and pay a call's overhead on 50×64 operands. The softmax's
// exp is Cephes's polynomial (within 1 ulp), and each row's
// sum divides its output row rather than its weights. The 1/√w is
// applied to the products (exact where w is a power of four, as CLIP's 64,
// since the reference scales q first). Each pair is computed the same way
// whatever the batch and the thread count. On x86-64 with AVX2 the products
// use fused multiply-adds (a machine without gets the same sums within a
// rounding).
// Errors: invalid_argument (device, dtype) or shape_mismatch, naming what was
// expected; w must be a multiple of 8.
at::Tensor multi_head_attention_cpu(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                    const at::Tensor& in_bias, const at::Tensor& mask);

}  // namespace feu::clip
