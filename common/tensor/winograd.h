// 3×3 convolutions (zero padding 1) by Winograd's minimal filtering (Lavin &
// Gray, "Fast Algorithms for Convolutional Neural Networks", 2016), on CPU
// float32: stride 1 as F(2×2, 3×3), stride 2 split into its four input phases.
//
// Each 2×2 block of output is computed from a 4×4 block of input with 16
// products per channel pair instead of 36: the input block and the filter are
// taken to a 4×4 transform domain (V = Bᵀ·d·B, U = G·g·Gᵀ), multiplied there
// point by point, which across channels is 16 independent matrix products
// (one GEMM per transform point: [C_out, C_in]·[C_in, tiles]), and taken back
// (Y = Aᵀ·M·A). The arithmetic is exact; in float32 its rounding error is no
// larger than the direct convolution's (the transforms have coefficients 0,
// ±1 and ½). 2.25× fewer multiplications, so it wins where the GEMMs are wide
// enough to run near peak: see FixedConv2d for where feu uses it.
#pragma once

#include <ATen/core/Tensor.h>

namespace feu {

class Winograd3x3 {
 public:
  Winograd3x3() = default;
  // `weight` [C_out, C_in, 3, 3] and `bias` [C_out] (may be undefined), any
  // floating dtype, CPU. The filters are transformed once, in double.
  Winograd3x3(const at::Tensor& weight, const at::Tensor& bias);

  // Input [N, C_in, H, W] float32 on CPU (any strides) -> [N, C_out, H, W],
  // contiguous: at::conv2d(input, weight, bias, stride 1, padding 1) up to
  // float rounding.
  at::Tensor operator()(const at::Tensor& input) const;

  int64_t in_channels() const { return in_channels_; }
  int64_t out_channels() const { return out_channels_; }

 private:
  at::Tensor filters_;  // U: [16, C_out, C_in] float32, transform point (row-major 4×4) first
  at::Tensor bias_;     // [C_out] float32 or undefined
  int64_t in_channels_ = 0, out_channels_ = 0;
};

// A stride-2 3×3 convolution is four stride-1 convolutions of the input's
// phases (even/odd rows × even/odd columns, each at the output's size): output
// (i, j) reads x[2i + a − 1, 2j + b − 1], so the even-even phase meets the
// filter's centre tap alone (a 1×1 filter), the even-odd and odd-even phases
// a 1×2 and a 2×1 filter, the odd-odd phase the four corner taps (2×2). Those
// run as Winograd F(2, 2) along the two-tap axis and F(2×2, 2×2) for the
// corners: 1 + 1.5 + 1.5 + 2.25 = 6.25 products per
// output and channel pair instead of 9, as 16 GEMMs ([C_out, C_in] by
// [C_in, tiles]), summed in one output pass. The transforms' coefficients
// are 0 and ±1.
class StridedWinograd3x3 {
 public:
  StridedWinograd3x3() = default;
  // `weight` [C_out, C_in, 3, 3] and `bias` [C_out] (may be undefined), any
  // floating dtype, CPU. The filters are transformed once, in double.
  StridedWinograd3x3(const at::Tensor& weight, const at::Tensor& bias);

  // Input [N, C_in, H, W] float32 on CPU (any strides) -> [N, C_out,
  // ⌈H/2⌉, ⌈W/2⌉], contiguous: at::conv2d(input, weight, bias, stride 2,
  // padding 1) up to float rounding.
  at::Tensor operator()(const at::Tensor& input) const;

  int64_t in_channels() const { return in_channels_; }
  int64_t out_channels() const { return out_channels_; }

 private:
  // U per transform point, [16, C_out, C_in] float32: the even-even phase's
  // 1, the even-odd phase's 3, the odd-even phase's 3, the odd-odd phase's
  // 9 (row-major 3×3).
  at::Tensor filters_;
  at::Tensor bias_;  // [C_out] float32 or undefined
  int64_t in_channels_ = 0, out_channels_ = 0;
};

}  // namespace feu
