#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>

#include "core/error.h"
#include "index/corpus.h"
#include "test_support.h"

namespace feu::index {
namespace {

// n random embeddings with some cluster structure (like CLIP features of faces).
std::vector<float> random_embeddings(int64_t n, int64_t dim, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  const int64_t clusters = 8;
  std::vector<float> centers(clusters * dim);
  for (float& v : centers) v = normal(rng);
  std::vector<float> out(n * dim);
  for (int64_t r = 0; r < n; ++r)
    for (int64_t i = 0; i < dim; ++i) out[r * dim + i] = centers[(r % clusters) * dim + i] + 0.7f * normal(rng);
  return out;
}

std::vector<CorpusEntry> entries_for(int64_t n, int64_t first_id = 100) {
  std::vector<CorpusEntry> entries;
  for (int64_t r = 0; r < n; ++r)
    entries.push_back(CorpusEntry{first_id + 3 * r, "dir/" + std::to_string(r) + ".png", 1000 + r, 42 + r});
  return entries;
}

// Brute-force cosine ranking (independent of CorpusIndex's own scan).
std::vector<std::pair<float, int64_t>> brute_force(const std::vector<float>& raw, int64_t dim, const float* query) {
  const int64_t n = raw.size() / dim;
  double qn = 0;
  for (int64_t i = 0; i < dim; ++i) qn += double(query[i]) * query[i];
  std::vector<std::pair<float, int64_t>> out;
  for (int64_t r = 0; r < n; ++r) {
    double dot = 0, rn = 0;
    for (int64_t i = 0; i < dim; ++i) {
      dot += double(raw[r * dim + i]) * query[i];
      rn += double(raw[r * dim + i]) * raw[r * dim + i];
    }
    out.push_back({float(dot / std::sqrt(qn * rn)), r});
  }
  std::sort(out.begin(), out.end(), [](auto a, auto b) { return a.first > b.first; });
  return out;
}

TEST(CorpusIndex, FlatTopAndBottomMatchBruteForce) {
  const int64_t n = 300, dim = 32;
  std::vector<float> raw = random_embeddings(n, dim, 1);
  CorpusIndex index = CorpusIndex::build(entries_for(n), raw, dim, IndexOptions{}, CorpusProvenance{});
  EXPECT_EQ(index.size(), n);
  EXPECT_EQ(index.dim(), dim);
  std::vector<float> query = random_embeddings(1, dim, 99);
  auto expected = brute_force(raw, dim, query.data());
  auto top = index.top_k(query.data(), 10);
  ASSERT_EQ(top.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(top[i].id, 100 + 3 * expected[i].second) << "rank " << i;
    EXPECT_NEAR(top[i].score, expected[i].first, 1e-5);
  }
  auto bottom = index.bottom_k(query.data(), 10);
  ASSERT_EQ(bottom.size(), 10u);
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(bottom[i].id, 100 + 3 * expected[n - 1 - i].second) << "rank " << i;
    EXPECT_NEAR(bottom[i].score, expected[n - 1 - i].first, 1e-5);
  }
}

TEST(CorpusIndex, EveryRowIsItsOwnTopHitAndUnitNorm) {
  const int64_t n = 120, dim = 16;
  CorpusIndex index = CorpusIndex::build(entries_for(n), random_embeddings(n, dim, 2), dim, IndexOptions{}, {});
  for (int64_t r = 0; r < n; ++r) {
    const float* e = index.embedding(r);
    double norm = 0;
    for (int64_t i = 0; i < dim; ++i) norm += double(e[i]) * e[i];
    EXPECT_NEAR(norm, 1.0, 1e-5);
    auto hit = index.top_k(e, 1);
    ASSERT_EQ(hit.size(), 1u);
    EXPECT_EQ(hit[0].id, index.entries()[r].id);
    EXPECT_NEAR(hit[0].score, 1.0, 1e-5);
  }
}

TEST(CorpusIndex, SaveLoadRoundTripKeepsIdsPathsAndResults) {
  test::TempDir dir;
  const int64_t n = 200, dim = 24;
  CorpusProvenance provenance;
  provenance.clip_sha256 = "abc123";
  provenance.preprocessing = "test";
  CorpusIndex built = CorpusIndex::build(entries_for(n), random_embeddings(n, dim, 3), dim, IndexOptions{}, provenance);
  built.save(dir.path());
  CorpusIndex loaded = CorpusIndex::load(dir.path());
  ASSERT_EQ(loaded.size(), n);
  EXPECT_EQ(loaded.provenance().clip_sha256, "abc123");
  EXPECT_EQ(loaded.path_of(100 + 3 * 7), "dir/7.png");
  EXPECT_EQ(loaded.row_of(100 + 3 * 7), 7);
  EXPECT_EQ(loaded.entries()[5].size, 1005);
  EXPECT_EQ(loaded.entries()[5].mtime_ns, 47);
  std::vector<float> query = random_embeddings(1, dim, 7);
  auto a = built.top_k(query.data(), 20), b = loaded.top_k(query.data(), 20);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].id, b[i].id);
  EXPECT_THROW(loaded.row_of(101), Error);
}

TEST(CorpusIndex, ApproximateKindsReportRecallAndExactBottomK) {
  const int64_t n = 2000, dim = 32;
  std::vector<float> raw = random_embeddings(n, dim, 4);
  std::vector<float> query = random_embeddings(1, dim, 5);
  auto expected = brute_force(raw, dim, query.data());
  for (IndexKind kind : {IndexKind::kIvf, IndexKind::kHnsw}) {
    IndexOptions options;
    options.kind = kind;
    test::TempDir dir;
    CorpusIndex::build(entries_for(n), raw, dim, options, {}).save(dir.path());
    CorpusIndex index = CorpusIndex::load(dir.path());
    EXPECT_EQ(index.kind(), kind);
    const double recall = index.recall_at_k(100, 50);
    std::printf("[ recall ] %s recall@100 vs exact over 50 queries, N=%ld: %.4f\n", index_kind_name(kind), long(n),
                recall);
    EXPECT_GT(recall, 0.8) << index_kind_name(kind);
    EXPECT_LE(recall, 1.0);
    auto bottom = index.bottom_k(query.data(), 5);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(bottom[i].id, 100 + 3 * expected[n - 1 - i].second);
  }
  CorpusIndex flat = CorpusIndex::build(entries_for(n), raw, dim, IndexOptions{}, {});
  EXPECT_DOUBLE_EQ(flat.recall_at_k(100, 10), 1.0);
}

TEST(CorpusIndex, RejectsBadInput) {
  EXPECT_THROW(CorpusIndex::build({}, {}, 8, {}, {}), Error);
  std::vector<float> zero(2 * 4, 0.0f);
  zero[0] = 1;
  try {
    CorpusIndex::build(entries_for(2), zero, 4, {}, {});
    FAIL() << "zero row accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dir/1.png"), std::string::npos) << e.what();
  }
  EXPECT_THROW(CorpusIndex::build(entries_for(3), std::vector<float>(8, 1.0f), 4, {}, {}), Error);
  EXPECT_THROW(parse_index_kind("lsh"), Error);
  test::TempDir dir;
  EXPECT_THROW(CorpusIndex::load(dir.path()), Error);
}

}  // namespace
}  // namespace feu::index
