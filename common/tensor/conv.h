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

// A convolution whose weights never change (an inference model's layer). On a
// float32 CPU with oneDNN, the weights are laid out once in oneDNN's blocked
// format: conv2d reorders plain weights on every call, which costs more than
// the convolution itself where the output is a few pixels (e4e's style blocks
// read ~1 GB of weights per image). Elsewhere it is conv2d. Same results as
// conv2d(input, weight, bias, stride, padding, groups) up to float rounding.
class FixedConv2d {
 public:
  FixedConv2d() = default;
  // `bias` may be undefined. `weight` [C_out, C_in / groups, kH, kW] float32.
  FixedConv2d(const at::Tensor& weight, const at::Tensor& bias, int64_t stride, int64_t padding,
              int64_t groups = 1);

  // Input [N, C_in, H, W] on the weights' device; the result is a plain
  // (dense, contiguous) tensor.
  at::Tensor operator()(const at::Tensor& input) const;

  // False where the weights stay plain (not CPU float32, or no oneDNN).
  bool prepacked() const { return prepacked_; }

 private:
  at::Tensor weight_;  // oneDNN's layout where prepacked_
  at::Tensor bias_;
  int64_t stride_ = 1, padding_ = 0, groups_ = 1;
  bool prepacked_ = false;
};

}  // namespace feu
