// Winograd3x3 (F(2×2, 3×3)) and StridedWinograd3x3 (stride 2 by phases)
// against the direct convolution in float64, on the shapes e4e runs them at
// (IR-SE50 stages 2–4, the style blocks' shared first convolution), odd sizes
// whose last tiles hang over the edge, batches, and FixedConv2d's choice.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "tensor/conv.h"
#include "tensor/winograd.h"

namespace feu {
namespace {

// Largest |difference| over the largest |expected|.
double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  return ((actual.to(at::kDouble) - expected).abs().max() / expected.abs().max()).item<double>();
}

at::Tensor direct_in_double(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& bias,
                            int64_t stride = 1) {
  return at::conv2d(input.to(at::kDouble), weight.to(at::kDouble),
                    bias.defined() ? c10::optional<at::Tensor>(bias.to(at::kDouble)) : c10::nullopt,
                    {stride, stride}, {1, 1});
}

// Runs `conv` on the whole batch and on each image alone; returns the batch's output.
template <typename Conv>
at::Tensor expect_batch_is_every_image_alone(const Conv& conv, const at::Tensor& batch) {
  const at::Tensor together = conv(batch);
  for (int64_t i = 0; i < batch.size(0); ++i) {
    const at::Tensor alone = conv(batch.slice(0, i, i + 1));
    EXPECT_LT((together.slice(0, i, i + 1) - alone).abs().max().item<float>(), 1e-5) << "image " << i;
  }
  return together;
}

struct Case {
  int64_t in, out, height, width, batch;
  bool bias;
};

// A Conv (Winograd3x3 or StridedWinograd3x3) built for case `c` against the
// direct convolution in float64: within 1e-5 and within 4× the direct float32
// convolution's own rounding error.
template <typename Conv>
void expect_like_direct(const Case& c, int64_t stride) {
  const at::Tensor weight = at::randn({c.out, c.in, 3, 3}) / std::sqrt(9.0 * c.in);
  const at::Tensor bias = c.bias ? at::randn({c.out}) : at::Tensor();
  const at::Tensor input = at::randn({c.batch, c.in, c.height, c.width});
  const at::Tensor expected = direct_in_double(input, weight, bias, stride);
  const at::Tensor actual = Conv(weight, bias)(input);
  ASSERT_EQ(actual.sizes(), expected.sizes()) << c.height << "×" << c.width;
  ASSERT_EQ(actual.scalar_type(), at::kFloat);
  EXPECT_TRUE(actual.is_contiguous());
  const double winograd_error = relative_error(actual, expected);
  const double direct_error = relative_error(
      at::conv2d(input, weight, c.bias ? c10::optional<at::Tensor>(bias) : c10::nullopt, {stride, stride}, {1, 1}),
      expected);
  EXPECT_LT(winograd_error, 1e-5) << c.in << "→" << c.out << " at " << c.height << "×" << c.width;
  EXPECT_LT(winograd_error, 4 * direct_error + 1e-7) << c.in << "→" << c.out << " at " << c.height << "×" << c.width
                                                     << ": direct float32 " << direct_error;
}

TEST(Winograd3x3, MatchesTheDirectConvolutionAsCloselyAsFloat32Allows) {
  const Case cases[] = {
      {128, 128, 64, 64, 1, false},  // stage 2 unit (BatchNorm before it: no bias)
      {128, 256, 64, 64, 1, false},  // stage 3's first unit, first conv
      {256, 256, 32, 32, 2, true},   // stage 3 (BatchNorm folded after: a bias)
      {512, 512, 16, 16, 1, true},   // stage 4
      {16, 24, 15, 17, 3, true},     // odd sizes: the last tile row and column hang over
      {8, 8, 1, 1, 1, true},         // a single pixel: one tile, three quarters padding
      {8, 4, 2, 5, 2, false},
  };
  at::manual_seed(11);
  for (const Case& c : cases) expect_like_direct<Winograd3x3>(c, 1);
}

TEST(Winograd3x3, ABatchSplitIntoChunksIsEveryImageAlone) {
  // 128 channels at 64²: the transform arrays of one image are 8 MiB, so a
  // batch of 5 runs as chunks of 4 and 1.
  at::manual_seed(12);
  const at::Tensor weight = at::randn({128, 128, 3, 3}) / 34.0;
  const at::Tensor bias = at::randn({128});
  const at::Tensor batch = at::randn({5, 128, 64, 64});
  const at::Tensor together = expect_batch_is_every_image_alone(Winograd3x3(weight, bias), batch);
  EXPECT_LT(relative_error(together, direct_in_double(batch, weight, bias)), 1e-5);
}

TEST(Winograd3x3, StridedInputsReadTheSameAndEmptyBatchesGiveEmptyOutputs) {
  at::manual_seed(13);
  const Winograd3x3 conv(at::randn({6, 4, 3, 3}), at::Tensor());
  const at::Tensor wide = at::randn({2, 4, 9, 22}).slice(3, 0, c10::nullopt, 2);
  EXPECT_TRUE(at::equal(conv(wide), conv(wide.contiguous())));
  EXPECT_EQ(conv(at::randn({0, 4, 9, 9})).sizes(), (std::vector<int64_t>{0, 6, 9, 9}));
}

TEST(Winograd3x3, BadWeightsAndInputsAreInvalidArgumentsNamingTheExpectedShape) {
  auto code_and_text = [](auto&& call) -> std::pair<ErrorCode, std::string> {
    try {
      call();
    } catch (const Error& e) {
      return {e.code(), e.what()};
    }
    return {ErrorCode::kInternal, "no error"};
  };
  auto [code, text] = code_and_text([] { Winograd3x3(at::randn({4, 2, 5, 5}), at::Tensor()); });
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_NE(text.find("[C_out, C_in, 3, 3]"), std::string::npos) << text;
  std::tie(code, text) = code_and_text([] { Winograd3x3(at::randn({4, 2, 3, 3}), at::randn({3})); });
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_NE(text.find("[4]"), std::string::npos) << text;
  const Winograd3x3 conv(at::randn({4, 2, 3, 3}), at::Tensor());
  std::tie(code, text) = code_and_text([&] { conv(at::randn({1, 3, 8, 8})); });
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_NE(text.find("[N, 2, H, W]"), std::string::npos) << text;
  std::tie(code, text) = code_and_text([&] { conv(at::randn({1, 2, 8, 8}, at::kDouble)); });
  EXPECT_EQ(code, ErrorCode::kInvalidArgument);
  EXPECT_NE(text.find("float32"), std::string::npos) << text;
}

TEST(StridedWinograd3x3, MatchesTheDirectStridedConvolutionAsCloselyAsFloat32Allows) {
  const Case cases[] = {
      {512, 640, 64, 64, 1, true},  // the style blocks' first convolution on p1 (5,632 outputs in e4e)
      {64, 96, 32, 32, 2, true},
      {16, 24, 15, 17, 3, true},  // odd sizes: phases of unequal sizes, tiles hanging over
      {8, 8, 1, 1, 1, true},      // one pixel: only the centre tap sees input
      {8, 4, 2, 5, 2, false},
      {8, 4, 3, 2, 1, false},
  };
  at::manual_seed(21);
  for (const Case& c : cases) expect_like_direct<StridedWinograd3x3>(c, 2);
  // Each tap reaches the output through its own phase: a filter with a single
  // non-zero tap picks the strided input at that tap's offset (to rounding:
  // the transforms add and subtract neighbours that cancel).
  const at::Tensor input = at::randn({1, 1, 6, 7});
  for (int64_t a = 0; a < 3; ++a)
    for (int64_t b = 0; b < 3; ++b) {
      at::Tensor weight = at::zeros({1, 1, 3, 3});
      weight[0][0][a][b] = 1.0;
      EXPECT_TRUE(at::allclose(StridedWinograd3x3(weight, at::Tensor())(input),
                               at::conv2d(input, weight, c10::nullopt, {2, 2}, {1, 1}), 1e-5, 1e-5))
          << "tap " << a << ", " << b;
    }
}

TEST(StridedWinograd3x3, ABatchSplitIntoChunksIsEveryImageAlone) {
  // 512 channels at 64²: the transformed input of one image is 12.5 MiB, so
  // a batch of 3 runs as chunks of 2 and 1.
  at::manual_seed(23);
  const at::Tensor weight = at::randn({16, 512, 3, 3}) / 68.0;
  const at::Tensor bias = at::randn({16});
  const at::Tensor batch = at::randn({3, 512, 64, 64});
  const at::Tensor together = expect_batch_is_every_image_alone(StridedWinograd3x3(weight, bias), batch);
  EXPECT_LT(relative_error(together, direct_in_double(batch, weight, bias, 2)), 1e-5);
}

TEST(StridedWinograd3x3, StridedInputsReadTheSameAndBadInputsNameTheExpectedShape) {
  at::manual_seed(22);
  const StridedWinograd3x3 conv(at::randn({6, 4, 3, 3}), at::randn({6}));
  const at::Tensor wide = at::randn({2, 4, 9, 22}).slice(3, 0, c10::nullopt, 2);
  EXPECT_TRUE(at::equal(conv(wide), conv(wide.contiguous())));
  EXPECT_EQ(conv(at::randn({0, 4, 9, 9})).sizes(), (std::vector<int64_t>{0, 6, 5, 5}));
  try {
    conv(at::randn({1, 5, 8, 8}));
    FAIL() << "5 channels into a 4-channel convolution";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("[N, 4, H, W]"), std::string::npos) << e.what();
  }
}

TEST(FixedConv2d, RunsWideStrideOne3x3ConvolutionsAsWinogradAndOthersDirectly) {
  const int64_t wide = FixedConv2d::kWinogradMinChannels;
  auto winograd = [](int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t groups) {
    return FixedConv2d(at::randn({out, in / groups, kernel, kernel}), at::Tensor(), stride, kernel / 2, groups)
        .winograd();
  };
  EXPECT_TRUE(winograd(wide, wide, 3, 1, 1));
  EXPECT_TRUE(winograd(wide, 2 * wide, 3, 1, 1));
  EXPECT_FALSE(winograd(wide / 2, wide, 3, 1, 1));  // narrow: GEMMs too small to gain
  EXPECT_FALSE(winograd(wide, wide / 2, 3, 1, 1));
  EXPECT_FALSE(winograd(wide, wide, 3, 2, 1));  // strided, few outputs
  EXPECT_TRUE(winograd(wide, FixedConv2d::kStridedWinogradMinOutputs, 3, 2, 1));  // strided, many outputs
  EXPECT_FALSE(winograd(wide, wide, 3, 1, 2));  // grouped
  EXPECT_FALSE(winograd(wide, wide, 1, 1, 1));  // 1×1
  // Through FixedConv2d, the same convolution as at::conv2d.
  at::manual_seed(14);
  const at::Tensor weight = at::randn({wide, wide, 3, 3}) / std::sqrt(9.0 * wide);
  const at::Tensor bias = at::randn({wide});
  const at::Tensor input = at::randn({1, wide, 12, 12});
  EXPECT_LT(relative_error(FixedConv2d(weight, bias, 1, 1)(input), direct_in_double(input, weight, bias)), 1e-5);
  const int64_t many = FixedConv2d::kStridedWinogradMinOutputs;
  const at::Tensor strided_weight = at::randn({many, 8, 3, 3}) / std::sqrt(72.0);
  const at::Tensor strided_bias = at::randn({many});
  const at::Tensor small = at::randn({1, 8, 9, 9});
  EXPECT_LT(relative_error(FixedConv2d(strided_weight, strided_bias, 2, 1)(small),
                           direct_in_double(small, strided_weight, strided_bias, 2)),
            1e-5);
}

}  // namespace
}  // namespace feu
