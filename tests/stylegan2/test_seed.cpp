#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/error.h"
#include "stylegan2/seed.h"

namespace feu::stylegan2 {
namespace {

// Reference values from numpy (quoted in issue 2 and the spec).
TEST(Seed, MatchesNumpyRandomStateRandn) {
  std::vector<double> a = numpy_randn(0, 3);
  EXPECT_NEAR(a[0], 1.76405235, 1e-8);
  EXPECT_NEAR(a[1], 0.40015721, 1e-8);
  EXPECT_NEAR(a[2], 0.97873798, 1e-8);
  std::vector<double> b = numpy_randn(42, 3);
  EXPECT_NEAR(b[0], 0.49671415, 1e-8);
  EXPECT_NEAR(b[1], -0.1382643, 1e-8);
  EXPECT_NEAR(b[2], 0.64768854, 1e-8);
}

TEST(Seed, ZFromSeedIsTheFloatCastOfRandn) {
  at::Tensor z = z_from_seed(42, 512);
  ASSERT_EQ(z.sizes(), (at::IntArrayRef{1, 512}));
  EXPECT_EQ(z.scalar_type(), at::kFloat);
  std::vector<double> values = numpy_randn(42, 512);
  for (int i = 0; i < 512; ++i) EXPECT_EQ(z[0][i].item<float>(), static_cast<float>(values[i]));
  // A prefix of a longer draw: the stream does not depend on the count.
  EXPECT_EQ(numpy_randn(7, 5)[4], numpy_randn(7, 9)[4]);
}

TEST(Seed, RejectsSeedsNumpyRejects) {
  EXPECT_THROW(z_from_seed(-1, 8), Error);
  EXPECT_THROW(z_from_seed(int64_t{1} << 32, 8), Error);
  EXPECT_NO_THROW(z_from_seed(0xFFFFFFFFLL, 8));
}

}  // namespace
}  // namespace feu::stylegan2
