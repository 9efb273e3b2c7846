// 2-D convolution for every model of feu (StyleGAN2, e4e, ...).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace feu {

// at::conv2d, except that float32 CPU inputs always go through oneDNN: at::conv2d
// sends small inputs (batch 1, < 20480 elements, kernel <= 3) to its im2col path,
// which runs on Debian's reference BLAS and is many times slower. `bias` may be
// undefined. Other devices and dtypes: at::conv2d.
at::Tensor conv2d(const at::Tensor& input,
                  const at::Tensor& weight,
                  const at::Tensor& bias,
                  int64_t stride = 1,
                  int64_t padding = 0,
                  int64_t groups = 1);

}  // namespace feu
