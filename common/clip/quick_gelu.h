// CLIP's MLP activation, QuickGELU: x·σ(1.702·x) (clip/model.py).
#pragma once

#include <ATen/core/Tensor.h>

namespace feu::clip {

// h = quick_gelu(h + bias) in place, in one pass over h, on the CPU threads.
// h: [rows, width] contiguous CPU float32 (c_fc's products before the bias);
// bias: [width] CPU float32. Computed as x / (1 + exp(-1.702·x)) with
// glibc's vector exp, from the same float32 1.702·x as the reference's ATen
// ops: 2e-7 relative from the exact value at most (measured; tested to 1e-6),
// in one pass where those ops make three and the bias a fourth.
// Errors: invalid_argument naming the expected tensors.
void add_bias_quick_gelu_(at::Tensor& h, const at::Tensor& bias);

}  // namespace feu::clip
