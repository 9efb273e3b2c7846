#include "tensor/conv.h"

#include <ATen/ATen.h>

#include "core/error.h"

namespace feu {
namespace {

bool takes_onednn(const at::Tensor& t) { return t.is_cpu() && at::hasMKLDNN() && t.scalar_type() == at::kFloat; }

c10::optional<at::Tensor> optional(const at::Tensor& bias) {
  return bias.defined() ? c10::optional<at::Tensor>(bias) : c10::nullopt;
}

}  // namespace

at::Tensor conv2d(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias, int64_t stride,
                  int64_t padding, int64_t groups) {
  if (takes_onednn(input))
    return at::mkldnn_convolution(input.contiguous(), weight, optional(bias), {padding, padding}, {stride, stride},
                                  {1, 1}, groups);
  return at::conv2d(input, weight, optional(bias), {stride, stride}, {padding, padding}, {1, 1}, groups);
}

FixedConv2d::FixedConv2d(const at::Tensor& weight, const at::Tensor& bias, int64_t stride, int64_t padding,
                         int64_t groups)
    : bias_(bias.defined() ? bias.contiguous() : bias), stride_(stride), padding_(padding), groups_(groups) {
  const bool plain_3x3 = weight.is_cpu() && weight.scalar_type() == at::kFloat && weight.dim() == 4 &&
                         weight.size(2) == 3 && weight.size(3) == 3 && padding == 1 && groups == 1;
  if (plain_3x3 && stride == 1 && weight.size(0) >= kWinogradMinChannels && weight.size(1) >= kWinogradMinChannels) {
    winograd_ = Winograd3x3(weight, bias);
    return;
  }
  if (plain_3x3 && stride == 2 && weight.size(0) >= kStridedWinogradMinOutputs) {
    strided_winograd_ = StridedWinograd3x3(weight, bias);
    return;
  }
  prepacked_ = takes_onednn(weight);
  weight_ = prepacked_ ? at::mkldnn_reorder_conv2d_weight(weight.contiguous().to_mkldnn(), {padding, padding},
                                                          {stride, stride}, {1, 1}, groups)
                       : weight.contiguous();
}

at::Tensor FixedConv2d::operator()(const at::Tensor& input) const {
  if (winograd_.in_channels() > 0) return winograd_(input);
  if (strided_winograd_.in_channels() > 0) return strided_winograd_(input);
  if (prepacked_) {
    check(takes_onednn(input), ErrorCode::kInvalidArgument,
          "a convolution laid out for oneDNN takes a CPU float32 input, not " + input.toString());
    // oneDNN reads the plain input in place and returns a plain output.
    return at::mkldnn_convolution(input.contiguous(), weight_, optional(bias_), {padding_, padding_},
                                  {stride_, stride_}, {1, 1}, groups_);
  }
  return conv2d(input, weight_, bias_, stride_, padding_, groups_);
}

}  // namespace feu
