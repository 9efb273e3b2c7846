#include "edit/svm.h"

#include <cmath>
#include <string>

#include "core/error.h"
#include "edit/svm_solver.h"
#include "edit/vectors.h"

namespace feu::edit {
SvmDirection train_svm_direction(const float* positives, int64_t n_pos, const float* negatives, int64_t n_neg,
                                 int64_t dim, const SvmOptions& options) {
  check(n_pos > 0 && n_neg > 0, ErrorCode::kInvalidArgument,
        "the SVM needs at least one positive and one negative sample (got " + std::to_string(n_pos) + " and " +
            std::to_string(n_neg) + ")");
  check(dim > 0, ErrorCode::kInvalidArgument, "the SVM needs embeddings of positive dimension");
  const int64_t samples = n_pos + n_neg;
  const bool with_bias = options.bias >= 0;
  // L2-normalized samples (normalized in double, stored in float), the
  // constant bias feature appended as liblinear appends it (its weight is
  // regularized like the others).
  const int64_t width = dim + (with_bias ? 1 : 0);
  std::vector<float> rows(static_cast<size_t>(samples * width));
  std::vector<int8_t> labels(static_cast<size_t>(samples));
  for (int64_t i = 0; i < samples; ++i) {
    const bool positive = i < n_pos;
    const float* source = positive ? positives + i * dim : negatives + (i - n_pos) * dim;
    const double length = norm(source, dim);
    if (!(std::isfinite(length) && length > 0)) {
      throw Error(ErrorCode::kInvalidArgument, std::string(positive ? "positive" : "negative") + " embedding " +
                                                   std::to_string(positive ? i : i - n_pos) +
                                                   " has zero or non-finite length");
    }
    float* row = &rows[static_cast<size_t>(i * width)];
    const double inverse = 1.0 / length;
    for (int64_t k = 0; k < dim; ++k) row[k] = static_cast<float>(source[k] * inverse);
    if (with_bias) row[dim] = static_cast<float>(options.bias);
    labels[i] = positive ? 1 : -1;
  }

  const DualSolution solution =
      solve_l2loss_svc_dual(rows.data(), labels.data(), samples, width, options.C, options.eps, liblinear_lcg());
  const std::vector<double>& w = solution.w;  // oriented toward the positives (label +1)
  const double b = with_bias ? w[dim] * options.bias : 0.0;

  double w_length = 0;
  for (int64_t k = 0; k < dim; ++k) w_length += w[k] * w[k];
  w_length = std::sqrt(w_length);
  check(std::isfinite(w_length) && w_length > 0, ErrorCode::kInvalidArgument,
        "the SVM found no separating direction (zero normal): positives and negatives are indistinguishable");

  SvmDirection result;
  result.normal.resize(static_cast<size_t>(dim));
  for (int64_t k = 0; k < dim; ++k) result.normal[k] = static_cast<float>(w[k] / w_length);
  result.bias = b / w_length;
  result.margin = 1.0 / w_length;
  result.positives = n_pos;
  result.negatives = n_neg;
  result.iterations = solution.iterations;
  int64_t correct = 0;
  for (int64_t i = 0; i < samples; ++i) {
    // sign(w·x + b), with w and b divided by |w|.
    const double score = dot(&rows[static_cast<size_t>(i * width)], result.normal.data(), dim) + result.bias;
    if ((score > 0) == (labels[i] > 0)) ++correct;
  }
  result.accuracy = static_cast<double>(correct) / static_cast<double>(samples);
  return result;
}

}  // namespace feu::edit
