// The FEU edit direction: a linear SVM separating the images most similar to
// the instruction from the least similar ones; its unit normal replaces
// StyleCLIP's Δt. Plain C++ (liblinear's solver 1 over dense rows: svm_solver.h).
#pragma once

#include <cstdint>
#include <vector>

namespace feu::edit {

// scikit-learn LinearSVC's defaults, which the paper used: liblinear solver 1
// (L2-regularized L2-loss SVC, dual), C = 1, tol 1e-4, intercept_scaling 1.
struct SvmOptions {
  double C = 1.0;
  double eps = 1e-4;
  double bias = 1.0;  // the constant feature appended to every sample (its weight is regularized too)
};

struct SvmDirection {
  std::vector<float> normal;  // [dim] unit normal w/|w|, oriented so positives score higher
  double bias = 0;            // b/|w|: signed distance offset of the hyperplane along `normal`
  double accuracy = 0;        // training accuracy of sign(w·x + b)
  double margin = 0;          // 1/|w|: distance from the hyperplane to the margin planes w·x+b = ±1
  int64_t positives = 0;
  int64_t negatives = 0;
  int iterations = 0;         // coordinate-descent passes (liblinear's "#iter")
};

// Trains on the rows of `positives` [n_pos, dim] (label +1) and `negatives`
// [n_neg, dim] (label -1), each L2-normalized first (rows of zero length are
// an invalid_argument error). Deterministic and lock-free: the coordinate
// order comes from a generator seeded per call.
SvmDirection train_svm_direction(const float* positives, int64_t n_pos, const float* negatives, int64_t n_neg,
                                 int64_t dim, const SvmOptions& options = {});

}  // namespace feu::edit
