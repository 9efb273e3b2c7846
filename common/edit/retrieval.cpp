#include "edit/retrieval.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "core/error.h"

namespace feu::edit {
namespace {

// scores[i] = <row i, query> for every corpus row (float32 sums, 8 lanes so
// the compiler vectorizes; the scan is memory-bound at 70k x 512).
std::vector<float> score_all(const index::CorpusIndex& corpus, const float* query) {
  const int64_t n = corpus.size(), dim = corpus.dim();
  const float* data = corpus.embeddings().data();
  std::vector<float> scores(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const float* row = data + i * dim;
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t k = 0;
    for (; k + 8 <= dim; k += 8) {
      for (int l = 0; l < 8; ++l) lanes[l] += row[k + l] * query[k + l];
    }
    float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
    for (; k < dim; ++k) sum += row[k] * query[k];
    scores[i] = sum;
  }
  return scores;
}

// The k rows ordered by `better` among `rows` (partially sorted in place).
std::vector<int64_t> select(std::vector<int64_t>& rows, int64_t k, const std::vector<float>& scores, bool highest) {
  k = std::min<int64_t>(k, static_cast<int64_t>(rows.size()));
  auto better = [&](int64_t a, int64_t b) {
    if (scores[a] != scores[b]) return highest ? scores[a] > scores[b] : scores[a] < scores[b];
    return a < b;
  };
  std::nth_element(rows.begin(), rows.begin() + k, rows.end(), better);  // k may equal size: no-op bound
  std::sort(rows.begin(), rows.begin() + k, better);
  return std::vector<int64_t>(rows.begin(), rows.begin() + k);
}

index::CorpusIndex::Hit hit_of(const index::CorpusIndex& corpus, int64_t row, const std::vector<float>& scores) {
  return index::CorpusIndex::Hit{corpus.entries()[row].id, scores[row]};
}

}  // namespace

RetrievedSet retrieve_training_set(const index::CorpusIndex& corpus, const float* query, int64_t k_pos,
                                   int64_t k_neg, NegativeSampling negatives, uint64_t seed) {
  check(k_pos >= 1 && k_neg >= 1, ErrorCode::kInvalidArgument, "k_pos and k_neg must be at least 1");
  check(k_pos + k_neg <= corpus.size(), ErrorCode::kInvalidArgument,
        "k_pos + k_neg = " + std::to_string(k_pos + k_neg) + " exceeds the " + std::to_string(corpus.size()) +
            " images of the corpus index");
  const std::vector<float> scores = score_all(corpus, query);
  std::vector<int64_t> rows(static_cast<size_t>(corpus.size()));
  std::iota(rows.begin(), rows.end(), 0);
  RetrievedSet out;
  out.positive_rows = select(rows, k_pos, scores, true);
  // Everything after the first k_pos entries of `rows` is "the rest".
  std::vector<int64_t> rest(rows.begin() + k_pos, rows.end());
  if (negatives == NegativeSampling::kFarthest) {
    out.negative_rows = select(rest, k_neg, scores, false);
  } else {
    // Partial Fisher-Yates over the rest in row order, so the sample depends
    // only on the seed and the positives, not on selection internals.
    std::sort(rest.begin(), rest.end());
    std::mt19937_64 rng(seed);
    for (int64_t i = 0; i < k_neg; ++i) {
      std::uniform_int_distribution<int64_t> pick(i, static_cast<int64_t>(rest.size()) - 1);
      std::swap(rest[i], rest[pick(rng)]);
    }
    out.negative_rows.assign(rest.begin(), rest.begin() + k_neg);
  }
  for (int64_t row : out.positive_rows) out.positives.push_back(hit_of(corpus, row, scores));
  for (int64_t row : out.negative_rows) out.negatives.push_back(hit_of(corpus, row, scores));
  return out;
}

std::vector<index::CorpusIndex::Hit> retrieve_top(const index::CorpusIndex& corpus, const float* query, int64_t k,
                                                  std::vector<int64_t>* rows_out) {
  check(k >= 1, ErrorCode::kInvalidArgument, "k must be at least 1");
  const std::vector<float> scores = score_all(corpus, query);
  std::vector<int64_t> rows(static_cast<size_t>(corpus.size()));
  std::iota(rows.begin(), rows.end(), 0);
  const std::vector<int64_t> best = select(rows, k, scores, true);
  std::vector<index::CorpusIndex::Hit> hits;
  for (int64_t row : best) hits.push_back(hit_of(corpus, row, scores));
  if (rows_out) *rows_out = best;
  return hits;
}

}  // namespace feu::edit
