#include "edit/svm.h"

#include <linear.h>

#include <cmath>
#include <cstdlib>
#include <mutex>
#include <string>

#include "core/error.h"

namespace feu::edit {
namespace {

void silent_print(const char*) {}

// liblinear keeps its print hook and the C rand() state process-wide; one
// lock makes training calls from several threads deterministic.
std::mutex& liblinear_mutex() {
  static std::mutex mutex;
  return mutex;
}

}  // namespace

SvmDirection train_svm_direction(const float* positives, int64_t n_pos, const float* negatives, int64_t n_neg,
                                 int64_t dim, const SvmOptions& options) {
  check(n_pos > 0 && n_neg > 0, ErrorCode::kInvalidArgument,
        "the SVM needs at least one positive and one negative sample (got " + std::to_string(n_pos) + " and " +
            std::to_string(n_neg) + ")");
  check(dim > 0, ErrorCode::kInvalidArgument, "the SVM needs embeddings of positive dimension");
  const int64_t samples = n_pos + n_neg;
  const bool with_bias = options.bias >= 0;
  // Dense rows in liblinear's sparse format: dim features (1-based), the bias
  // feature, and the -1 terminator.
  const int64_t row_width = dim + (with_bias ? 1 : 0) + 1;
  std::vector<feature_node> nodes(static_cast<size_t>(samples * row_width));
  std::vector<feature_node*> rows(static_cast<size_t>(samples));
  std::vector<double> labels(static_cast<size_t>(samples));
  std::vector<double> normalized(static_cast<size_t>(samples * dim));
  for (int64_t i = 0; i < samples; ++i) {
    const bool positive = i < n_pos;
    const float* source = positive ? positives + i * dim : negatives + (i - n_pos) * dim;
    double length = 0;
    for (int64_t k = 0; k < dim; ++k) length += static_cast<double>(source[k]) * source[k];
    length = std::sqrt(length);
    check(std::isfinite(length) && length > 0, ErrorCode::kInvalidArgument,
          std::string(positive ? "positive" : "negative") + " embedding " +
              std::to_string(positive ? i : i - n_pos) + " has zero or non-finite length");
    feature_node* row = &nodes[static_cast<size_t>(i * row_width)];
    for (int64_t k = 0; k < dim; ++k) {
      normalized[i * dim + k] = source[k] / length;
      row[k] = feature_node{static_cast<int>(k + 1), normalized[i * dim + k]};
    }
    int64_t next = dim;
    if (with_bias) row[next++] = feature_node{static_cast<int>(dim + 1), options.bias};
    row[next] = feature_node{-1, 0.0};
    rows[i] = row;
    labels[i] = positive ? 1.0 : -1.0;
  }

  problem prob{};
  prob.l = static_cast<int>(samples);
  prob.n = static_cast<int>(dim + (with_bias ? 1 : 0));
  prob.y = labels.data();
  prob.x = rows.data();
  prob.bias = with_bias ? options.bias : -1.0;

  parameter param{};
  param.solver_type = L2R_L2LOSS_SVC_DUAL;
  param.eps = options.eps;
  param.C = options.C;
  param.nr_weight = 0;
  param.weight_label = nullptr;
  param.weight = nullptr;
  param.p = 0.1;
  param.init_sol = nullptr;
  if (const char* problem_text = check_parameter(&prob, &param)) {
    throw Error(ErrorCode::kInvalidArgument, std::string("liblinear rejected the SVM parameters: ") + problem_text);
  }

  std::vector<double> w(static_cast<size_t>(dim));
  double b = 0;
  {
    std::lock_guard<std::mutex> lock(liblinear_mutex());
    set_print_string_function(&silent_print);
    std::srand(1);
    model* trained = train(&prob, &param);
    check(trained != nullptr, ErrorCode::kInternal, "liblinear returned no model");
    // liblinear's binary model scores its first label (the first one seen,
    // here +1 since positives come first); orient toward +1 either way.
    const double sign = trained->label[0] == 1 ? 1.0 : -1.0;
    for (int64_t k = 0; k < dim; ++k) w[k] = sign * trained->w[k];
    b = with_bias ? sign * trained->w[dim] * options.bias : 0.0;
    free_and_destroy_model(&trained);
  }

  double w_length = 0;
  for (double value : w) w_length += value * value;
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
  int64_t correct = 0;
  for (int64_t i = 0; i < samples; ++i) {
    double score = b;
    for (int64_t k = 0; k < dim; ++k) score += w[k] * normalized[i * dim + k];
    if ((score > 0) == (labels[i] > 0)) ++correct;
  }
  result.accuracy = static_cast<double>(correct) / static_cast<double>(samples);
  return result;
}

}  // namespace feu::edit
