#include "stylegan2/seed.h"

#include <ATen/ATen.h>

#include <cmath>
#include <random>

#include "core/error.h"

namespace feu::stylegan2 {

namespace {

// numpy's legacy random_double: 53 random bits from two 32-bit draws.
double random_double(std::mt19937& mt) {
  const uint32_t a = mt() >> 5;
  const uint32_t b = mt() >> 6;
  return (a * 67108864.0 + b) / 9007199254740992.0;
}

}  // namespace

std::vector<double> numpy_randn(uint32_t seed, int64_t count) {
  // RandomState(int) seeds with MT19937 init_genrand, which std::mt19937 is.
  std::mt19937 mt(seed);
  std::vector<double> out;
  out.reserve(static_cast<size_t>(count));
  bool has_cached = false;
  double cached = 0;
  while (static_cast<int64_t>(out.size()) < count) {
    if (has_cached) {
      out.push_back(cached);
      has_cached = false;
      continue;
    }
    double x1, x2, r2;
    do {
      x1 = 2.0 * random_double(mt) - 1.0;
      x2 = 2.0 * random_double(mt) - 1.0;
      r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1.0 || r2 == 0.0);
    const double f = std::sqrt(-2.0 * std::log(r2) / r2);
    // numpy returns f·x2 first and caches f·x1.
    cached = f * x1;
    has_cached = true;
    out.push_back(f * x2);
  }
  return out;
}

at::Tensor z_from_seed(int64_t seed, int64_t z_dim) {
  check(seed >= 0 && seed <= 0xFFFFFFFFLL, ErrorCode::kInvalidArgument,
        "seed " + std::to_string(seed) + " is out of range (expected 0 .. 4294967295, like numpy)");
  check(z_dim > 0, ErrorCode::kInvalidArgument, "z_dim must be positive");
  std::vector<double> values = numpy_randn(static_cast<uint32_t>(seed), z_dim);
  at::Tensor z = at::empty({1, z_dim}, at::kDouble);
  std::copy(values.begin(), values.end(), z.data_ptr<double>());
  return z.to(at::kFloat);
}

}  // namespace feu::stylegan2
