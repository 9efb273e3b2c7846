// The SVM training set drawn from a corpus index.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "edit/retrieval.h"
#include "edit/text_direction.h"

namespace feu::edit {
namespace {

index::CorpusIndex random_corpus(int64_t n, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss;
  std::vector<float> data(n * dim);
  for (float& v : data) v = gauss(rng);
  std::vector<index::CorpusEntry> entries;
  for (int64_t i = 0; i < n; ++i) entries.push_back({1000 + 3 * i, "f" + std::to_string(i), 0, 0});  // ids != rows
  return index::CorpusIndex::build(std::move(entries), std::move(data), dim, {}, {});
}

TEST(Retrieval, PositivesAreMostSimilarAndFarthestNegativesLeastSimilar) {
  const index::CorpusIndex corpus = random_corpus(500, 16, 1);
  std::vector<float> query(16, 0.0f);
  query[0] = 1;
  // Brute force reference with the stored unit rows.
  std::vector<std::pair<double, int64_t>> scored;
  for (int64_t row = 0; row < corpus.size(); ++row) scored.push_back({dot(corpus.embedding(row), query.data(), 16), row});
  std::sort(scored.begin(), scored.end(), [](auto a, auto b) { return a.first > b.first; });
  const RetrievedSet set = retrieve_training_set(corpus, query.data(), 20, 30, NegativeSampling::kFarthest, 0);
  ASSERT_EQ(set.positive_rows.size(), 20u);
  ASSERT_EQ(set.negative_rows.size(), 30u);
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(set.positive_rows[i], scored[i].second);
    EXPECT_EQ(set.positives[i].id, 1000 + 3 * scored[i].second);
    EXPECT_NEAR(set.positives[i].score, scored[i].first, 1e-5);
  }
  for (int i = 0; i < 30; ++i) EXPECT_EQ(set.negative_rows[i], scored[scored.size() - 1 - i].second);
  // With threads the result is identical.
  const RetrievedSet threaded = retrieve_training_set(corpus, query.data(), 20, 30, NegativeSampling::kFarthest, 0, 2);
  EXPECT_EQ(threaded.positive_rows, set.positive_rows);
  EXPECT_EQ(threaded.negative_rows, set.negative_rows);
  // retrieve_top agrees.
  std::vector<int64_t> rows;
  const auto top = retrieve_top(corpus, query.data(), 5, &rows);
  EXPECT_EQ(rows, std::vector<int64_t>(set.positive_rows.begin(), set.positive_rows.begin() + 5));
}

TEST(Retrieval, RandomNegativesAreASeededSampleOfTheRest) {
  const index::CorpusIndex corpus = random_corpus(300, 8, 2);
  std::vector<float> query(8, 0.0f);
  query[3] = 1;
  const RetrievedSet a = retrieve_training_set(corpus, query.data(), 50, 100, NegativeSampling::kRandom, 7);
  const RetrievedSet b = retrieve_training_set(corpus, query.data(), 50, 100, NegativeSampling::kRandom, 7);
  const RetrievedSet c = retrieve_training_set(corpus, query.data(), 50, 100, NegativeSampling::kRandom, 8);
  EXPECT_EQ(a.negative_rows, b.negative_rows);
  EXPECT_NE(a.negative_rows, c.negative_rows);
  std::set<int64_t> positives(a.positive_rows.begin(), a.positive_rows.end());
  std::set<int64_t> negatives(a.negative_rows.begin(), a.negative_rows.end());
  EXPECT_EQ(negatives.size(), 100u);  // no repeats
  for (int64_t row : a.negative_rows) EXPECT_EQ(positives.count(row), 0u);
}

TEST(Retrieval, FarthestNegativesNeverOverlapPositivesInASmallCorpus) {
  const index::CorpusIndex corpus = random_corpus(10, 4, 3);
  std::vector<float> query = {1, 0, 0, 0};
  const RetrievedSet set = retrieve_training_set(corpus, query.data(), 6, 4, NegativeSampling::kFarthest, 0);
  std::set<int64_t> all(set.positive_rows.begin(), set.positive_rows.end());
  all.insert(set.negative_rows.begin(), set.negative_rows.end());
  EXPECT_EQ(all.size(), 10u);
  EXPECT_THROW(retrieve_training_set(corpus, query.data(), 6, 5, NegativeSampling::kFarthest, 0), Error);
}

TEST(CorpusScanner, Int8ScanGivesExactlyThePlainScansResult) {
  for (const auto& [n, dim, seed] : std::vector<std::tuple<int64_t, int64_t, uint64_t>>{
           {3000, 64, 4}, {1000, 512, 5}, {250, 33, 6}, {20000, 32, 7}}) {
    // 20,000 rows: more blocks of estimates than rows needed at either end,
    // so the selection skips blocks (smaller corpora select from every row).
    auto corpus = std::make_shared<index::CorpusIndex>(random_corpus(n, dim, seed));
    const CorpusScanner scanner(corpus);
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> gauss;
    for (int q = 0; q < 4; ++q) {
      std::vector<float> query(dim);
      if (q == 0) {
        std::copy(corpus->embedding(7), corpus->embedding(7) + dim, query.begin());  // a stored row
      } else {
        for (float& v : query) v = gauss(rng);
        query = unit(query, "query");
      }
      SCOPED_TRACE("n " + std::to_string(n) + " dim " + std::to_string(dim) + " query " + std::to_string(q));
      for (const auto mode : {NegativeSampling::kFarthest, NegativeSampling::kRandom}) {
        const RetrievedSet plain = retrieve_training_set(*corpus, query.data(), 100, 100, mode, 3);
        const RetrievedSet fast = scanner.training_set(query.data(), 100, 100, mode, 3);
        EXPECT_EQ(fast.positive_rows, plain.positive_rows);
        EXPECT_EQ(fast.negative_rows, plain.negative_rows);
        for (size_t i = 0; i < plain.positives.size(); ++i) EXPECT_EQ(fast.positives[i].score, plain.positives[i].score);
        for (size_t i = 0; i < plain.negatives.size(); ++i) EXPECT_EQ(fast.negatives[i].score, plain.negatives[i].score);
        if (n >= 3000) {
          EXPECT_LT(fast.scored_in_float, n / 2);  // most rows never need float
        }
      }
      std::vector<int64_t> plain_rows, fast_rows;
      retrieve_top(*corpus, query.data(), 10, &plain_rows);
      scanner.top(query.data(), 10, &fast_rows);
      EXPECT_EQ(fast_rows, plain_rows);
    }
  }
}

TEST(CorpusScanner, TiesAndTinyCorporaMatchThePlainScan) {
  // Duplicate rows score equally: both scans break ties by row.
  std::vector<float> data;
  for (int i = 0; i < 40; ++i) {
    const float base[4] = {1, float(i % 5), 0.5f, -float(i % 3)};
    data.insert(data.end(), base, base + 4);
  }
  std::vector<index::CorpusEntry> entries;
  for (int64_t i = 0; i < 40; ++i) entries.push_back({i, "f", 0, 0});
  auto corpus = std::make_shared<index::CorpusIndex>(index::CorpusIndex::build(entries, data, 4, {}, {}));
  const CorpusScanner scanner(corpus);
  const std::vector<float> query = {0.5f, 0.5f, 0.5f, 0.5f};
  const RetrievedSet plain = retrieve_training_set(*corpus, query.data(), 12, 28, NegativeSampling::kFarthest, 0);
  const RetrievedSet fast = scanner.training_set(query.data(), 12, 28, NegativeSampling::kFarthest, 0);
  EXPECT_EQ(fast.positive_rows, plain.positive_rows);
  EXPECT_EQ(fast.negative_rows, plain.negative_rows);
  EXPECT_THROW(scanner.training_set(query.data(), 12, 29, NegativeSampling::kFarthest, 0), Error);
}

}  // namespace
}  // namespace feu::edit
