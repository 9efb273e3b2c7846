#include "edit/retrieval.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "core/error.h"

namespace feu::edit {
namespace {

// scores[i] = <row i, query> for every corpus row (float32 sums, 8 lanes so
// the compiler vectorizes). The scan reads the whole matrix (143 MB at
// 70k x 512) and is memory-bound, so large corpora split it over threads.
std::vector<float> score_all(const index::CorpusIndex& corpus, const float* query, int threads) {
  const int64_t n = corpus.size(), dim = corpus.dim();
  const float* data = corpus.embeddings().data();
  std::vector<float> scores(static_cast<size_t>(n));
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && n * dim >= (int64_t{1} << 22))
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

// The k best rows by score (highest or lowest first; ties by lower row),
// skipping `excluded` (sorted). One pass with a bounded heap whose top is the
// worst row kept, so almost every row costs one comparison.
std::vector<int64_t> select(const std::vector<float>& scores, int64_t k, bool highest,
                            const std::vector<int64_t>& excluded = {}) {
  auto better = [&](int64_t a, int64_t b) {
    if (scores[a] != scores[b]) return highest ? scores[a] > scores[b] : scores[a] < scores[b];
    return a < b;
  };
  const int64_t n = static_cast<int64_t>(scores.size());
  std::vector<int64_t> heap;
  heap.reserve(static_cast<size_t>(k));
  for (int64_t row = 0; row < n; ++row) {
    if (static_cast<int64_t>(heap.size()) == k && !better(row, heap.front())) continue;
    if (!excluded.empty() && std::binary_search(excluded.begin(), excluded.end(), row)) continue;
    if (static_cast<int64_t>(heap.size()) < k) {
      heap.push_back(row);
      std::push_heap(heap.begin(), heap.end(), better);
    } else {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = row;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort_heap(heap.begin(), heap.end(), better);  // best first
  return heap;
}

index::CorpusIndex::Hit hit_of(const index::CorpusIndex& corpus, int64_t row, const std::vector<float>& scores) {
  return index::CorpusIndex::Hit{corpus.entries()[row].id, scores[row]};
}

}  // namespace

RetrievedSet retrieve_training_set(const index::CorpusIndex& corpus, const float* query, int64_t k_pos,
                                   int64_t k_neg, NegativeSampling negatives, uint64_t seed, int threads) {
  check(k_pos >= 1 && k_neg >= 1, ErrorCode::kInvalidArgument, "k_pos and k_neg must be at least 1");
  check(k_pos + k_neg <= corpus.size(), ErrorCode::kInvalidArgument,
        "k_pos + k_neg = " + std::to_string(k_pos + k_neg) + " exceeds the " + std::to_string(corpus.size()) +
            " images of the corpus index");
  const std::vector<float> scores = score_all(corpus, query, threads);
  RetrievedSet out;
  out.positive_rows = select(scores, k_pos, true);
  std::vector<int64_t> positives_sorted = out.positive_rows;
  std::sort(positives_sorted.begin(), positives_sorted.end());
  if (negatives == NegativeSampling::kFarthest) {
    out.negative_rows = select(scores, k_neg, false, positives_sorted);
  } else {
    // A uniform sample without replacement of the rows that are not positives:
    // partial Fisher-Yates over the rest in row order, so the sample depends
    // only on the seed and the positives.
    std::vector<int64_t> rest;
    rest.reserve(scores.size() - positives_sorted.size());
    for (int64_t row = 0, p = 0; row < static_cast<int64_t>(scores.size()); ++row) {
      if (p < static_cast<int64_t>(positives_sorted.size()) && positives_sorted[p] == row) {
        ++p;
        continue;
      }
      rest.push_back(row);
    }
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
                                                  std::vector<int64_t>* rows_out, int threads) {
  check(k >= 1, ErrorCode::kInvalidArgument, "k must be at least 1");
  const std::vector<float> scores = score_all(corpus, query, threads);
  const std::vector<int64_t> best = select(scores, std::min(k, corpus.size()), true);
  std::vector<index::CorpusIndex::Hit> hits;
  for (int64_t row : best) hits.push_back(hit_of(corpus, row, scores));
  if (rows_out) *rows_out = best;
  return hits;
}

}  // namespace feu::edit
