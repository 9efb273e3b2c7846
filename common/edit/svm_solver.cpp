#include "edit/svm_solver.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <utility>

#include "core/cpu_clone.h"
#include "core/error.h"
#include "edit/vectors.h"

namespace feu::edit {
namespace {

// w·x summed in float in sixteen running sums (a fixed order, enough
// independent chains to keep the vector units busy).
inline float dot_in_float(const float* a, const float* b, int64_t n) {
  constexpr int kLanes = 16;
  float lanes[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes) {
    for (int lane = 0; lane < kLanes; ++lane) lanes[lane] += a[k + lane] * b[k + lane];
  }
  for (; k < n; ++k) lanes[0] += a[k] * b[k];
  for (int width = kLanes / 2; width > 0; width /= 2) {
    for (int lane = 0; lane < width; ++lane) lanes[lane] += lanes[lane + width];
  }
  return lanes[0];
}

inline void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t k = 0; k < n; ++k) y[k] += a * x[k];
}

}  // namespace

IndexDraw liblinear_lcg() {
  return [seed = 0u](int bound) mutable {
    seed = (seed * 1103515245u + 12345u) & 0x7fffffffu;
    return static_cast<int>(seed % static_cast<unsigned>(bound));
  };
}

// On x86-64, built for x86-64-v3 (AVX2 + FMA) and the baseline (core/cpu_clone.h).
FEU_X86_64_V3_CLONE DualSolution solve_l2loss_svc_dual(
    const float* rows, const int8_t* labels, int64_t l, int64_t n, double C, double eps, const IndexDraw& draw) {
  check(l > 0 && n > 0, ErrorCode::kInvalidArgument, "the SVM dual needs samples and features");
  check(C > 0 && std::isfinite(C), ErrorCode::kInvalidArgument,
        "the SVM penalty C must be positive and finite (got " + std::to_string(C) + ")");
  check(eps > 0 && std::isfinite(eps), ErrorCode::kInvalidArgument,
        "the SVM tolerance must be positive and finite (got " + std::to_string(eps) + ")");
  constexpr double kInf = std::numeric_limits<double>::infinity();
  constexpr int kMaxIterations = 1000;  // liblinear's cap
  // L2 loss: no upper bound on α, and D_ii = 1/(2C) on the diagonal of Q.
  const double diagonal = 0.5 / C;

  DualSolution out;
  std::vector<float> weights(static_cast<size_t>(n), 0.0f);
  out.alpha.assign(static_cast<size_t>(l), 0.0);
  std::vector<double> qd(static_cast<size_t>(l));
  std::vector<int> order(static_cast<size_t>(l));
  for (int64_t i = 0; i < l; ++i) {
    if (labels[i] != 1 && labels[i] != -1) {
      throw Error(ErrorCode::kInvalidArgument,
                  "SVM label " + std::to_string(i) + " is " + std::to_string(labels[i]) + ", expected +1 or -1");
    }
    const float* x = rows + i * n;
    qd[i] = diagonal + dot(x, x, n);
    order[i] = static_cast<int>(i);
  }

  float* w = weights.data();
  double* alpha = out.alpha.data();
  int64_t active = l;
  // liblinear also tracks the smallest violation to shrink samples stuck at
  // the upper bound; with the L2 loss there is none.
  double pg_max_old = kInf;
  int iteration = 0;
  while (iteration < kMaxIterations) {
    double pg_max = -kInf, pg_min = kInf;
    for (int64_t i = 0; i < active; ++i) {
      std::swap(order[i], order[i + draw(static_cast<int>(active - i))]);
    }
    for (int64_t s = 0; s < active; ++s) {
      const int i = order[s];
      const float* x = rows + static_cast<int64_t>(i) * n;
      const double g = labels[i] * dot_in_float(w, x, n) - 1 + alpha[i] * diagonal;
      double pg = 0;
      if (alpha[i] == 0) {
        // At the lower bound with a gradient above last pass's largest
        // violation: it will stay at 0, so leave it out until the final check.
        if (g > pg_max_old) {
          --active;
          std::swap(order[s], order[active]);
          --s;
          continue;
        }
        if (g < 0) pg = g;
      } else {
        pg = g;  // α has no upper bound with the L2 loss
      }
      pg_max = std::max(pg_max, pg);
      pg_min = std::min(pg_min, pg);
      if (std::fabs(pg) > 1.0e-12) {
        const double previous = alpha[i];
        alpha[i] = std::max(alpha[i] - g / qd[i], 0.0);
        axpy(static_cast<float>((alpha[i] - previous) * labels[i]), x, w, n);
      }
    }
    ++iteration;
    if (pg_max - pg_min <= eps) {
      if (active == l) {
        out.converged = true;
        break;
      }
      // Converged on the shrunk set: check once more over every sample.
      active = l;
      pg_max_old = kInf;
      continue;
    }
    pg_max_old = pg_max > 0 ? pg_max : kInf;
  }
  out.w.assign(weights.begin(), weights.end());
  out.iterations = iteration;
  return out;
}

}  // namespace feu::edit
