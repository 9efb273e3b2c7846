#include "edit/retrieval.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "core/error.h"

namespace feu::edit {
namespace {

// scores[i] = <row i, query> for every corpus row (float32 sums, 8 lanes so
// the compiler vectorizes). The scan reads the whole matrix (143 MB at
// 70k x 512) and is memory-bound, so large corpora split it over threads.
inline float score_row(const float* row, const float* query, int64_t dim) {
  float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= dim; k += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += row[k + l] * query[k + l];
  }
  float sum = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  for (; k < dim; ++k) sum += row[k] * query[k];
  return sum;
}

std::vector<float> score_all(const index::CorpusIndex& corpus, const float* query, int threads) {
  const int64_t n = corpus.size(), dim = corpus.dim();
  const float* data = corpus.embeddings().data();
  std::vector<float> scores(static_cast<size_t>(n));
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && n * dim >= (int64_t{1} << 22))
  for (int64_t i = 0; i < n; ++i) scores[i] = score_row(data + i * dim, query, dim);
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

// `count` rows drawn uniformly without replacement from [0, rows) minus
// `excluded_sorted`: a partial Fisher-Yates over the rest in row order, so the
// sample depends only on the seed and the excluded rows.
std::vector<int64_t> sample_rows(int64_t rows, const std::vector<int64_t>& excluded_sorted, int64_t count,
                                 uint64_t seed) {
  std::vector<int64_t> rest;
  rest.reserve(static_cast<size_t>(rows) - excluded_sorted.size());
  for (int64_t row = 0, p = 0; row < rows; ++row) {
    if (p < static_cast<int64_t>(excluded_sorted.size()) && excluded_sorted[p] == row) {
      ++p;
      continue;
    }
    rest.push_back(row);
  }
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < count; ++i) {
    std::uniform_int_distribution<int64_t> pick(i, static_cast<int64_t>(rest.size()) - 1);
    std::swap(rest[i], rest[pick(rng)]);
  }
  return std::vector<int64_t>(rest.begin(), rest.begin() + count);
}

index::CorpusIndex::Hit hit_of(const index::CorpusIndex& corpus, int64_t row, const std::vector<float>& scores) {
  return index::CorpusIndex::Hit{corpus.entries()[row].id, scores[row]};
}

}  // namespace

RetrievedSet retrieve_training_set(const index::CorpusIndex& corpus, const float* query, int64_t k_pos,
                                   int64_t k_neg, NegativeSampling negatives, uint64_t seed, int threads) {
  return training_set_from_scores(corpus, score_all(corpus, query, threads), k_pos, k_neg, negatives, seed);
}

RetrievedSet training_set_from_scores(const index::CorpusIndex& corpus, const std::vector<float>& scores,
                                      int64_t k_pos, int64_t k_neg, NegativeSampling negatives, uint64_t seed) {
  check(k_pos >= 1 && k_neg >= 1, ErrorCode::kInvalidArgument, "k_pos and k_neg must be at least 1");
  check(k_pos + k_neg <= corpus.size(), ErrorCode::kInvalidArgument,
        "k_pos + k_neg = " + std::to_string(k_pos + k_neg) + " exceeds the " + std::to_string(corpus.size()) +
            " images of the corpus index");
  check(static_cast<int64_t>(scores.size()) == corpus.size(), ErrorCode::kShapeMismatch,
        "got " + std::to_string(scores.size()) + " scores for a corpus of " + std::to_string(corpus.size()) +
            " images (expected one per image)");
  RetrievedSet out;
  out.scored_in_float = corpus.size();
  out.positive_rows = select(scores, k_pos, true);
  std::vector<int64_t> positives_sorted = out.positive_rows;
  std::sort(positives_sorted.begin(), positives_sorted.end());
  if (negatives == NegativeSampling::kFarthest) {
    out.negative_rows = select(scores, k_neg, false, positives_sorted);
  } else {
    out.negative_rows = sample_rows(static_cast<int64_t>(scores.size()), positives_sorted, k_neg, seed);
  }
  for (int64_t row : out.positive_rows) out.positives.push_back(hit_of(corpus, row, scores));
  for (int64_t row : out.negative_rows) out.negatives.push_back(hit_of(corpus, row, scores));
  return out;
}

std::vector<index::CorpusIndex::Hit> retrieve_top(const index::CorpusIndex& corpus, const float* query, int64_t k,
                                                  std::vector<int64_t>* rows_out, int threads) {
  return top_from_scores(corpus, score_all(corpus, query, threads), k, rows_out);
}

std::vector<index::CorpusIndex::Hit> top_from_scores(const index::CorpusIndex& corpus,
                                                     const std::vector<float>& scores, int64_t k,
                                                     std::vector<int64_t>* rows_out) {
  check(k >= 1, ErrorCode::kInvalidArgument, "k must be at least 1");
  check(static_cast<int64_t>(scores.size()) == corpus.size(), ErrorCode::kShapeMismatch,
        "got " + std::to_string(scores.size()) + " scores for a corpus of " + std::to_string(corpus.size()) +
            " images (expected one per image)");
  const std::vector<int64_t> best = select(scores, std::min(k, corpus.size()), true);
  std::vector<index::CorpusIndex::Hit> hits;
  for (int64_t row : best) hits.push_back(hit_of(corpus, row, scores));
  if (rows_out) *rows_out = best;
  return hits;
}

CorpusScanner::CorpusScanner(std::shared_ptr<const index::CorpusIndex> corpus) : corpus_(std::move(corpus)) {
  check(corpus_ != nullptr, ErrorCode::kInternal, "CorpusScanner needs a corpus");
  codes_ = Int8Rows(corpus_->embeddings().data(), corpus_->size(), corpus_->dim());
}

namespace {

// The needed-th largest of end(i) over the rows, given block_max[j], the
// largest end(i) in block j (blocks of kBlock rows). The needed-th largest
// block maximum is a lower bound (the maxima are ends of distinct rows), so
// only the rows reaching it are selected from: a few times `needed`.
template <typename End>
float kth_largest(int64_t needed, const std::vector<float>& block_max, int64_t n, End end) {
  constexpr int64_t kBlock = Int8Rows::Estimates::kBlock;
  const int64_t blocks = static_cast<int64_t>(block_max.size());
  float floor = -std::numeric_limits<float>::infinity();
  if (needed <= blocks) {
    std::vector<float> maxima = block_max;
    std::nth_element(maxima.begin(), maxima.begin() + (needed - 1), maxima.end(), std::greater<float>());
    floor = maxima[static_cast<size_t>(needed - 1)];
  }
  std::vector<float> reaching;
  for (int64_t block = 0; block < blocks; ++block) {
    if (block_max[block] < floor) continue;
    for (int64_t i = block * kBlock; i < std::min(n, (block + 1) * kBlock); ++i) {
      if (end(i) >= floor) reaching.push_back(end(i));
    }
  }
  std::nth_element(reaching.begin(), reaching.begin() + (needed - 1), reaching.end(), std::greater<float>());
  return reaching[static_cast<size_t>(needed - 1)];
}

// The rows whose float score may be among the `top_needed` highest and
// among the `bottom_needed` lowest (0: that end is not wanted). For each end
// the needed-th best pessimistic end of the bound intervals is a score that
// many rows surely reach; a row is a candidate when its optimistic end
// reaches it. The estimates' block extremes let both steps skip almost
// every block after one comparison.
struct Candidates {
  std::vector<int64_t> top, bottom;  // ascending rows
};

Candidates candidates(const Int8Rows::Estimates& estimates, int64_t top_needed, int64_t bottom_needed) {
  constexpr int64_t kBlock = Int8Rows::Estimates::kBlock;
  const float* value = estimates.value.data();
  const float* bound = estimates.bound.data();
  const int64_t n = static_cast<int64_t>(estimates.value.size());
  const int64_t blocks = static_cast<int64_t>(estimates.lower_max.size());
  top_needed = std::min(top_needed, n);
  bottom_needed = std::min(bottom_needed, n);
  const float inf = std::numeric_limits<float>::infinity();
  // Score levels: top_bar is reached by top_needed rows for sure, and
  // bottom_bar is undercut by bottom_needed rows for sure.
  float top_bar = inf, bottom_bar = -inf;
  if (top_needed > 0) {
    top_bar = kth_largest(top_needed, estimates.lower_max, n, [&](int64_t i) { return value[i] - bound[i]; });
  }
  if (bottom_needed > 0) {
    std::vector<float> negated(estimates.upper_min.size());
    for (size_t j = 0; j < negated.size(); ++j) negated[j] = -estimates.upper_min[j];
    bottom_bar = -kth_largest(bottom_needed, negated, n, [&](int64_t i) { return -(value[i] + bound[i]); });
  }
  Candidates out;
  for (int64_t block = 0; block < blocks; ++block) {
    const int64_t begin = block * kBlock, end = std::min(n, begin + kBlock);
    if (estimates.upper_max[block] >= top_bar) {
      for (int64_t i = begin; i < end; ++i) {
        if (value[i] + bound[i] >= top_bar) out.top.push_back(i);
      }
    }
    if (estimates.lower_min[block] <= bottom_bar) {
      for (int64_t i = begin; i < end; ++i) {
        if (value[i] - bound[i] <= bottom_bar) out.bottom.push_back(i);
      }
    }
  }
  return out;
}

// scores[row] = the plain scan's float score, for each of `rows`.
void rescore(const index::CorpusIndex& corpus, const float* query, const std::vector<int64_t>& rows, int threads,
             std::vector<float>& scores) {
  const int64_t dim = corpus.dim(), count = static_cast<int64_t>(rows.size());
  const float* embeddings = corpus.embeddings().data();
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1 && count >= 256)
  for (int64_t i = 0; i < count; ++i) {
    // The rows are scattered over the float matrix: fetch the next one while
    // this one is scored.
    if (i + 1 < count) {
      const char* next = reinterpret_cast<const char*>(embeddings + rows[i + 1] * dim);
      for (int64_t byte = 0; byte < dim * static_cast<int64_t>(sizeof(float)); byte += 64) __builtin_prefetch(next + byte);
    }
    scores[rows[i]] = score_row(embeddings + rows[i] * dim, query, dim);
  }
}

// The k best of `rows` by float score (ties by row), best first.
std::vector<int64_t> best_of(const std::vector<int64_t>& rows, const std::vector<float>& scores, int64_t k, bool highest) {
  std::vector<int64_t> sorted = rows;
  auto better = [&](int64_t a, int64_t b) {
    if (scores[a] != scores[b]) return highest ? scores[a] > scores[b] : scores[a] < scores[b];
    return a < b;
  };
  k = std::min<int64_t>(k, static_cast<int64_t>(sorted.size()));
  std::partial_sort(sorted.begin(), sorted.begin() + k, sorted.end(), better);
  sorted.resize(static_cast<size_t>(k));
  return sorted;
}

}  // namespace

RetrievedSet CorpusScanner::training_set(const float* query, int64_t k_pos, int64_t k_neg, NegativeSampling negatives,
                                         uint64_t seed, int threads) const {
  const index::CorpusIndex& corpus = *corpus_;
  check(k_pos >= 1 && k_neg >= 1, ErrorCode::kInvalidArgument, "k_pos and k_neg must be at least 1");
  check(k_pos + k_neg <= corpus.size(), ErrorCode::kInvalidArgument,
        "k_pos + k_neg = " + std::to_string(k_pos + k_neg) + " exceeds the " + std::to_string(corpus.size()) +
            " images of the corpus index");
  const Int8Rows::Estimates estimates = codes_.estimate(query, threads);
  // The farthest negatives are the k_neg lowest rows once the positives are
  // left out, so k_pos more rows are needed at that end.
  const bool farthest = negatives == NegativeSampling::kFarthest;
  Candidates found = candidates(estimates, k_pos, farthest ? k_neg + k_pos : 0);
  // Float scores only where needed; the rest stay NaN and are never read.
  std::vector<float> scores(static_cast<size_t>(corpus.size()), std::nanf(""));
  rescore(corpus, query, found.top, threads, scores);
  RetrievedSet out;
  out.scored_in_float = static_cast<int64_t>(found.top.size());
  out.positive_rows = best_of(found.top, scores, k_pos, true);
  std::vector<int64_t> positives_sorted = out.positive_rows;
  std::sort(positives_sorted.begin(), positives_sorted.end());
  if (farthest) {
    std::vector<int64_t>& bottom = found.bottom;
    bottom.erase(std::remove_if(bottom.begin(), bottom.end(),
                                [&](int64_t row) {
                                  return std::binary_search(positives_sorted.begin(), positives_sorted.end(), row);
                                }),
                 bottom.end());
    rescore(corpus, query, bottom, threads, scores);
    out.scored_in_float += static_cast<int64_t>(bottom.size());
    out.negative_rows = best_of(bottom, scores, k_neg, false);
  } else {
    out.negative_rows = sample_rows(corpus.size(), positives_sorted, k_neg, seed);
    rescore(corpus, query, out.negative_rows, threads, scores);
  }
  for (int64_t row : out.positive_rows) out.positives.push_back(hit_of(corpus, row, scores));
  for (int64_t row : out.negative_rows) out.negatives.push_back(hit_of(corpus, row, scores));
  return out;
}

std::vector<index::CorpusIndex::Hit> CorpusScanner::top(const float* query, int64_t k, std::vector<int64_t>* rows_out,
                                                        int threads) const {
  check(k >= 1, ErrorCode::kInvalidArgument, "k must be at least 1");
  const index::CorpusIndex& corpus = *corpus_;
  k = std::min(k, corpus.size());
  const Int8Rows::Estimates estimates = codes_.estimate(query, threads);
  std::vector<float> scores(static_cast<size_t>(corpus.size()), std::nanf(""));
  const std::vector<int64_t> rows = candidates(estimates, k, 0).top;
  rescore(corpus, query, rows, threads, scores);
  const std::vector<int64_t> best = best_of(rows, scores, k, true);
  std::vector<index::CorpusIndex::Hit> hits;
  for (int64_t row : best) hits.push_back(hit_of(corpus, row, scores));
  if (rows_out) *rows_out = best;
  return hits;
}

}  // namespace feu::edit
