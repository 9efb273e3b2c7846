#include "edit/text_direction.h"

#include <cmath>

#include "core/error.h"

namespace feu::edit {

std::vector<float> template_embedding(const float* raw, int64_t count, int64_t dim) {
  check(count > 0 && dim > 0, ErrorCode::kInvalidArgument, "template_embedding needs at least one embedding");
  std::vector<double> mean(static_cast<size_t>(dim), 0.0);
  for (int64_t row = 0; row < count; ++row) {
    const float* embedding = raw + row * dim;
    const double length = norm(embedding, dim);
    check(std::isfinite(length) && length > 0, ErrorCode::kInvalidArgument,
          "text embedding " + std::to_string(row) + " has zero or non-finite length");
    for (int64_t k = 0; k < dim; ++k) mean[k] += embedding[k] / length;
  }
  std::vector<float> averaged(static_cast<size_t>(dim));
  for (int64_t k = 0; k < dim; ++k) averaged[k] = static_cast<float>(mean[k] / count);
  return unit(averaged, "the mean template embedding");
}

std::vector<float> global_direction(const std::vector<float>& target, const std::vector<float>& neutral) {
  check(target.size() == neutral.size(), ErrorCode::kShapeMismatch,
        "target and neutral embeddings differ in size (" + std::to_string(target.size()) + " vs " +
            std::to_string(neutral.size()) + ")");
  std::vector<float> difference(target.size());
  for (size_t k = 0; k < target.size(); ++k) difference[k] = target[k] - neutral[k];
  const double length = norm(difference.data(), static_cast<int64_t>(difference.size()));
  check(length > 1e-12, ErrorCode::kInvalidArgument,
        "the target and neutral texts have the same embedding, so they define no direction");
  return unit(difference, "T(target) - T(neutral)");
}

std::string TextEmbeddingCache::key_of(const std::string& text, TemplateSet templates,
                                       const std::string& fingerprint) {
  // '\n' cannot occur in a fingerprint (hex) or template name, so the key is unambiguous.
  return fingerprint + '\n' + template_set_name(templates) + '\n' + text;
}

}  // namespace feu::edit
