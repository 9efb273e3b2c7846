// 2-D convolution for every model of feu (StyleGAN2, e4e, ...).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "tensor/winograd.h"

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
// Float32 CPU 3×3 convolutions with padding 1 and no groups run as Winograd
// where that was measured faster (2-core AVX2 machine, e4e's shapes):
// - stride 1, at least kWinogradMinChannels channels in and out:
//   Winograd3x3, 2.25× fewer multiplications, 1.2–1.6× faster per layer
//   (narrower: its GEMMs are too small to gain);
// - stride 2, at least kStridedWinogradMinOutputs channels out (e4e's 11 fine
//   style blocks' shared first convolution, 512 -> 5,632 at 64²):
//   StridedWinograd3x3, 1.44× fewer multiplications, 1.15–1.3× faster (with
//   up to 2,048 outputs at 32² it was slower).
class FixedConv2d {
 public:
  FixedConv2d() = default;
  // `bias` may be undefined. `weight` [C_out, C_in / groups, kH, kW] float32.
  FixedConv2d(const at::Tensor& weight, const at::Tensor& bias, int64_t stride, int64_t padding,
              int64_t groups = 1);

  // Input [N, C_in, H, W] on the weights' device; the result is a plain
  // (dense, contiguous) tensor.
  at::Tensor operator()(const at::Tensor& input) const;

  static constexpr int64_t kWinogradMinChannels = 128;
  static constexpr int64_t kStridedWinogradMinOutputs = 4096;

  // False where the weights stay plain (not CPU float32, or no oneDNN).
  bool prepacked() const { return prepacked_; }
  // True where it runs as Winograd3x3 or StridedWinograd3x3.
  bool winograd() const { return winograd_.in_channels() > 0 || strided_winograd_.in_channels() > 0; }

 private:
  Winograd3x3 winograd_;                  // in_channels() 0 where unused
  StridedWinograd3x3 strided_winograd_;  // in_channels() 0 where unused
  at::Tensor weight_;  // oneDNN's layout where prepacked_
  at::Tensor bias_;
  int64_t stride_ = 1, padding_ = 0, groups_ = 1;
  bool prepacked_ = false;
};

}  // namespace feu
