// feu::gemm / linear (oneDNN's sgemm on a float32 CPU where the build has it)
// against float64 products, for every operand layout the models pass: plain,
// transposed views of weights, column slices of packed projections, outputs
// that are views into wider buffers or column-major.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "tensor/gemm.h"

namespace feu {
namespace {

// max |actual - expected| / max |expected|, in float64.
double relative_error(const at::Tensor& actual, const at::Tensor& expected) {
  const at::Tensor e = expected.to(at::kDouble);
  return (actual.to(at::kDouble) - e).abs().max().item<double>() / e.abs().max().item<double>();
}

// [rows, cols] filled with random values, stored as `layout` asks:
// "row" (contiguous), "column" (a transposed contiguous tensor),
// "strided" (every other column of a wider buffer: no BLAS layout) or
// "slice" (a column slice of a wider row-major buffer, as q/k/v of a packed projection).
at::Tensor matrix(int64_t rows, int64_t cols, const std::string& layout) {
  if (layout == "column") return at::randn({cols, rows}).t();
  if (layout == "strided") return at::randn({rows, 2 * cols}).slice(1, 0, 2 * cols, 2);
  if (layout == "slice") return at::randn({rows, cols + 7}).narrow(1, 3, cols);
  return at::randn({rows, cols});
}

TEST(Gemm, MatchesFloat64ProductsForEveryOperandLayout) {
  at::manual_seed(11);
  const char* layouts[] = {"row", "column", "strided", "slice"};
  struct Size {
    int64_t m, k, n;
  };
  for (const Size s : {Size{50, 64, 50}, Size{1, 768, 512}, Size{33, 17, 1}, Size{400, 96, 3}}) {
    for (const char* a_layout : layouts) {
      for (const char* b_layout : layouts) {
        SCOPED_TRACE(std::string(a_layout) + " a, " + b_layout + " b, M " + std::to_string(s.m) + " K " +
                     std::to_string(s.k) + " N " + std::to_string(s.n));
        const at::Tensor a = matrix(s.m, s.k, a_layout), b = matrix(s.k, s.n, b_layout);
        const at::Tensor exact = at::mm(a.to(at::kDouble), b.to(at::kDouble));
        const at::Tensor product = gemm(a, b);
        EXPECT_TRUE(product.is_contiguous());
        EXPECT_LT(relative_error(product, exact), 1e-5);
        // Accumulating into an output that is a view into a wider buffer, and into a column-major one.
        for (const char* out_layout : {"slice", "column"}) {
          at::Tensor out = matrix(s.m, s.n, out_layout);
          const at::Tensor before = out.to(at::kDouble);
          gemm(out, a, b, 0.5f);
          EXPECT_LT(relative_error(out, exact + 0.5 * before), 1e-5) << out_layout << " out";
        }
      }
    }
  }
}

// The raw form the attention heads use: operands inside wider row-major buffers (leading
// dimensions past their widths), stored as themselves or transposed, with alpha and beta.
TEST(Gemm, RawRowsMatchFloat64ForEveryTransposeAlphaAndBeta) {
  at::manual_seed(13);
  const int64_t m = 7, n = 5, k = 9, pad = 3;
  for (char trans_a : {'N', 'T'}) {
    for (char trans_b : {'N', 'T'}) {
      // Stored [m, k] or [k, m] (and [k, n] or [n, k]) in buffers `pad` columns wider.
      const at::Tensor a_buffer = trans_a == 'N' ? at::randn({m, k + pad}) : at::randn({k, m + pad});
      const at::Tensor b_buffer = trans_b == 'N' ? at::randn({k, n + pad}) : at::randn({n, k + pad});
      const at::Tensor a = trans_a == 'N' ? a_buffer.narrow(1, 0, k) : a_buffer.narrow(1, 0, m).t();
      const at::Tensor b = trans_b == 'N' ? b_buffer.narrow(1, 0, n) : b_buffer.narrow(1, 0, k).t();
      for (float beta : {0.0f, 1.0f}) {
        at::Tensor c_buffer = at::randn({m, n + pad});
        const at::Tensor before = c_buffer.to(at::kDouble);
        gemm(trans_a, trans_b, m, n, k, 0.125f, a_buffer.data_ptr<float>(), a_buffer.size(1),
             b_buffer.data_ptr<float>(), b_buffer.size(1), beta, c_buffer.data_ptr<float>(), c_buffer.size(1));
        const at::Tensor exact = 0.125 * at::mm(a.to(at::kDouble), b.to(at::kDouble)) + beta * before.narrow(1, 0, n);
        EXPECT_LT(relative_error(c_buffer.narrow(1, 0, n), exact), 1e-5) << trans_a << trans_b << " beta " << beta;
        // The padding past each row's n columns is not written.
        EXPECT_TRUE(c_buffer.narrow(1, n, pad).to(at::kDouble).equal(before.narrow(1, n, pad)));
      }
    }
  }
}

TEST(Gemm, BetaZeroIgnoresTheOutputAndAnEmptySumScalesIt) {
  const at::Tensor a = at::randn({5, 4}), b = at::randn({4, 3});
  at::Tensor out = at::full({5, 3}, std::numeric_limits<float>::quiet_NaN());
  gemm(out, a, b);
  EXPECT_LT(relative_error(out, at::mm(a.to(at::kDouble), b.to(at::kDouble))), 1e-6);
  // K = 0: the product is zero, so out = beta·out.
  at::Tensor kept = at::ones({5, 3});
  gemm(kept, at::empty({5, 0}), at::empty({0, 3}), 2.0f);
  EXPECT_TRUE(kept.equal(at::full({5, 3}, 2.0f)));
  at::Tensor cleared = at::full({5, 3}, std::numeric_limits<float>::quiet_NaN());
  gemm(cleared, at::empty({5, 0}), at::empty({0, 3}));
  EXPECT_TRUE(cleared.equal(at::zeros({5, 3})));
  EXPECT_EQ(gemm(at::empty({0, 4}), b).sizes(), (at::IntArrayRef{0, 3}));
}

TEST(Gemm, LinearMatchesNnLinearWithAndWithoutBias) {
  at::manual_seed(5);
  const at::Tensor x = at::randn({2, 7, 48}), weight = at::randn({36, 48}), bias = at::randn({36});
  const at::Tensor exact = at::linear(x.to(at::kDouble), weight.to(at::kDouble), bias.to(at::kDouble));
  const at::Tensor y = linear(x, weight, bias);
  EXPECT_EQ(y.sizes(), (at::IntArrayRef{2, 7, 36}));
  EXPECT_LT(relative_error(y, exact), 1e-5);
  EXPECT_LT(relative_error(linear(x, weight, at::Tensor()),
                           at::linear(x.to(at::kDouble), weight.to(at::kDouble), c10::nullopt)),
            1e-5);
  // Rows of a packed weight (the last CLIP block's key and value projections).
  const at::Tensor packed = at::randn({3 * 36, 48}), packed_bias = at::randn({3 * 36});
  EXPECT_LT(relative_error(linear(x, packed.narrow(0, 36, 72), packed_bias.narrow(0, 36, 72)),
                           at::linear(x.to(at::kDouble), packed.narrow(0, 36, 72).to(at::kDouble),
                                      packed_bias.narrow(0, 36, 72).to(at::kDouble))),
            1e-5);
  // Other dtypes take ATen's path with the same meaning.
  EXPECT_LT(relative_error(linear(x.to(at::kDouble), weight.to(at::kDouble), bias.to(at::kDouble)), exact), 1e-12);
}

TEST(Gemm, MismatchedShapesAreTypedErrors) {
  auto code_of = [](const std::function<void()>& call) {
    try {
      call();
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("expected"), std::string::npos) << e.what();
      return e.code();
    }
    return ErrorCode::kInternal;
  };
  at::Tensor out = at::empty({3, 5});
  EXPECT_EQ(code_of([&] { gemm(out, at::randn({3, 4}), at::randn({5, 5})); }), ErrorCode::kShapeMismatch);
  EXPECT_EQ(code_of([&] { gemm(out, at::randn({3, 4}), at::randn({4, 6})); }), ErrorCode::kShapeMismatch);
  EXPECT_EQ(code_of([&] { gemm(at::randn({3}), at::randn({3, 4})); }), ErrorCode::kShapeMismatch);
  EXPECT_EQ(code_of([&] { linear(at::randn({2, 4}), at::randn({3, 5}), at::Tensor()); }), ErrorCode::kShapeMismatch);
  EXPECT_EQ(code_of([&] { linear(at::randn({2, 4}), at::randn({3, 4}), at::randn({4})); }),
            ErrorCode::kShapeMismatch);
}

}  // namespace
}  // namespace feu
