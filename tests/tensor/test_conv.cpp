// FixedConv2d (weights laid out once for oneDNN on CPU) against at::conv2d, on
// the shapes e4e runs: 3×3 padded, strided, 1×1 projections, grouped style
// convolutions down to a single output pixel, with and without bias.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "tensor/conv.h"

namespace feu {
namespace {

struct Case {
  int64_t in, out, kernel, stride, padding, groups, size;
  bool bias;
};

TEST(FixedConv2d, MatchesPlainConvolutionOnEveryShapeE4eUses) {
  const Case cases[] = {
      {3, 16, 3, 1, 1, 1, 32, true},    // input layer (BatchNorm folded in: a bias)
      {16, 16, 3, 1, 1, 1, 32, false},  // a unit's first conv
      {16, 32, 3, 2, 1, 1, 32, true},   // a strided unit's second conv
      {16, 32, 1, 2, 0, 1, 32, true},   // projection shortcut
      {32, 48, 1, 1, 0, 1, 8, true},    // FPN lateral
      {32, 96, 3, 2, 1, 1, 16, true},   // style blocks' shared first conv
      {96, 96, 3, 2, 1, 3, 8, true},    // style blocks as one grouped conv
      {96, 96, 3, 2, 1, 3, 2, true},    // ... to a single output pixel
  };
  at::manual_seed(3);
  for (const Case& c : cases) {
    for (int64_t batch : {1, 3}) {
      const at::Tensor weight = at::randn({c.out, c.in / c.groups, c.kernel, c.kernel});
      const at::Tensor bias = c.bias ? at::randn({c.out}) : at::Tensor();
      const at::Tensor input = at::randn({batch, c.in, c.size, c.size});
      const FixedConv2d conv(weight, bias, c.stride, c.padding, c.groups);
      EXPECT_EQ(conv.prepacked(), at::hasMKLDNN());
      const at::Tensor expected = at::conv2d(input, weight, c.bias ? c10::optional<at::Tensor>(bias) : c10::nullopt,
                                             {c.stride, c.stride}, {c.padding, c.padding}, {1, 1}, c.groups);
      const at::Tensor actual = conv(input);
      ASSERT_EQ(actual.sizes(), expected.sizes());
      EXPECT_FALSE(actual.is_mkldnn());
      EXPECT_TRUE(at::allclose(actual, expected, 1e-4, 1e-4))
          << "in " << c.in << " out " << c.out << " kernel " << c.kernel << " stride " << c.stride << " groups "
          << c.groups << " batch " << batch << ": max difference "
          << (actual - expected).abs().max().item<float>();
      // A non-contiguous input (e4e's strided shortcut pick) reads the same.
      const at::Tensor wide = at::randn({batch, c.in, c.size, 2 * c.size}).slice(3, 0, c10::nullopt, 2);
      EXPECT_TRUE(at::allclose(conv(wide), conv(wide.contiguous())));
    }
  }
}

TEST(FixedConv2d, NonFloatWeightsStayPlainAndRunThroughAtenConv) {
  const at::Tensor weight = at::randn({4, 2, 3, 3}, at::kDouble);
  const at::Tensor input = at::randn({1, 2, 8, 8}, at::kDouble);
  const FixedConv2d conv(weight, at::Tensor(), 1, 1);
  EXPECT_FALSE(conv.prepacked());
  EXPECT_TRUE(at::allclose(conv(input), at::conv2d(input, weight, c10::nullopt, {1, 1}, {1, 1})));
}

TEST(FixedConv2d, APrepackedConvolutionRejectsOtherInputsByName) {
  if (!at::hasMKLDNN()) GTEST_SKIP() << "no oneDNN: weights stay plain";
  const FixedConv2d conv(at::randn({4, 2, 3, 3}), at::Tensor(), 1, 1);
  try {
    conv(at::randn({1, 2, 8, 8}, at::kDouble));
    FAIL() << "a double input ran through float32 oneDNN weights";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("CPU float32"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace feu
