#include "tensor/conv.h"

#include <ATen/ATen.h>

namespace feu {

at::Tensor conv2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias, int64_t stride,
                  int64_t padding, int64_t groups) {
  const c10::optional<at::Tensor> optional_bias = bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt;
  if (input.is_cpu() && at::hasMKLDNN() && input.scalar_type() == at::kFloat)
    return at::mkldnn_convolution(input.contiguous(), weight, optional_bias, {padding, padding}, {stride, stride},
                                  {1, 1}, groups);
  return at::conv2d(input, weight, optional_bias, {stride, stride}, {padding, padding}, {1, 1}, groups);
}

}  // namespace feu
