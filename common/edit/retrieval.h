// Step 2 of FEU: the training set of the SVM, retrieved from the corpus index
// with the instruction's text embedding. Plain C++.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "edit/int8_rows.h"
#include "edit/options.h"
#include "index/corpus.h"

namespace feu::edit {

struct RetrievedSet {
  std::vector<int64_t> positive_rows, negative_rows;   // corpus rows
  std::vector<index::CorpusIndex::Hit> positives;      // best first
  std::vector<index::CorpusIndex::Hit> negatives;      // farthest: least similar first; random: sample order
  int64_t scored_in_float = 0;                         // rows scored in float (all of them for the plain scan)
};

// Positives: the k_pos rows most similar to `query` (unit, [corpus.dim()]).
// Negatives: the k_neg least similar (kFarthest) or a uniform sample of k_neg
// of the other rows drawn with `seed` (kRandom). Exact for every index kind:
// one scan of the stored unit embeddings scores every row once, which is
// cheaper than two FAISS searches (top and negated) of a flat index.
// Ties are broken by row. k_pos + k_neg must not exceed corpus.size().
// `threads` > 1 splits the scan (OpenMP); worth it on an idle many-core
// server, harmful on a small busy machine, hence 1 by default.
RetrievedSet retrieve_training_set(const index::CorpusIndex& corpus, const float* query, int64_t k_pos,
                                   int64_t k_neg, NegativeSampling negatives, uint64_t seed, int threads = 1);

// The k most similar rows (best first), by the same scan.
std::vector<index::CorpusIndex::Hit> retrieve_top(const index::CorpusIndex& corpus, const float* query, int64_t k,
                                                  std::vector<int64_t>* rows = nullptr, int threads = 1);

// The same two selections from `scores` ([corpus.size()], row order) computed elsewhere: the GPU
// scan (edit/gpu_scan.h) computes the plain scan's scores bit for bit, so the rows, ties
// included, are the plain scan's.
RetrievedSet training_set_from_scores(const index::CorpusIndex& corpus, const std::vector<float>& scores,
                                      int64_t k_pos, int64_t k_neg, NegativeSampling negatives, uint64_t seed);
std::vector<index::CorpusIndex::Hit> top_from_scores(const index::CorpusIndex& corpus,
                                                     const std::vector<float>& scores, int64_t k,
                                                     std::vector<int64_t>* rows = nullptr);

// The same retrieval, exact, but reading a quarter of the memory: the scan
// runs over int8 codes of the corpus (Int8Rows), whose estimates carry a
// bound on their distance from the float score. Rows whose bound interval
// can reach the k-th best are rescored in float exactly as the plain scan
// scores them, so the result is identical to retrieve_training_set /
// retrieve_top (tests check it); only a few hundred rows are rescored.
class CorpusScanner {
 public:
  explicit CorpusScanner(std::shared_ptr<const index::CorpusIndex> corpus  // unit rows, [N, dim]
  );

  const index::CorpusIndex& corpus() const { return *corpus_; }
  RetrievedSet training_set(const float* query, int64_t k_pos, int64_t k_neg, NegativeSampling negatives,
                            uint64_t seed, int threads = 1) const;
  std::vector<index::CorpusIndex::Hit> top(const float* query, int64_t k, std::vector<int64_t>* rows = nullptr,
                                           int threads = 1) const;
 private:
  std::shared_ptr<const index::CorpusIndex> corpus_;
  Int8Rows codes_;  // the corpus rows as int8 codes
};

}  // namespace feu::edit
