// Seeds -> z exactly like NVlabs generate.py: numpy RandomState(seed).randn.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace feu::stylegan2 {

// numpy.random.RandomState(seed).randn(count) in float64, bit-exact
// (MT19937 init_genrand + Marsaglia polar method, numpy's legacy gauss).
std::vector<double> numpy_randn(uint32_t seed, int64_t count);

// [1, z_dim] float32 = RandomState(seed).randn(1, z_dim) cast to float32.
// Seeds must lie in [0, 2^32 - 1] like numpy's.
at::Tensor z_from_seed(int64_t seed, int64_t z_dim);

}  // namespace feu::stylegan2
