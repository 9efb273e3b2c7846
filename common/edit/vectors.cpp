#include "edit/vectors.h"

#include <cmath>

#include "core/error.h"

namespace feu::edit {

double dot(const float* a, const float* b, int64_t n) {
  double lanes[8] = {};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    for (int lane = 0; lane < 8; ++lane) lanes[lane] += static_cast<double>(a[k + lane]) * b[k + lane];
  }
  for (; k < n; ++k) lanes[0] += static_cast<double>(a[k]) * b[k];
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

double norm(const float* a, int64_t n) { return std::sqrt(dot(a, a, n)); }

std::vector<float> unit(const std::vector<float>& a, const std::string& what) {
  const double length = norm(a.data(), static_cast<int64_t>(a.size()));
  check(std::isfinite(length) && length > 0, ErrorCode::kInvalidArgument,
        what + " has zero or non-finite length and cannot be normalized");
  std::vector<float> out(a.size());
  for (size_t i = 0; i < a.size(); ++i) out[i] = static_cast<float>(a[i] / length);
  return out;
}

}  // namespace feu::edit
