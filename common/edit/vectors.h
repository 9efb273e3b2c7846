// Dot products and norms of float vectors, accumulated in double: the one
// implementation the edit math (text directions, SVM, mapping, int8 bounds)
// shares. Plain C++.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace feu::edit {

// Σ a_k b_k in double, in eight running sums combined as
// ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7)): vectorizable, where one
// serial sum would wait on every add, and the same result on every build.
double dot(const float* a, const float* b, int64_t n);
double norm(const float* a, int64_t n);
// a / |a|; an all-zero (or non-finite) vector is an invalid_argument error naming `what`.
std::vector<float> unit(const std::vector<float>& a, const std::string& what);

}  // namespace feu::edit
