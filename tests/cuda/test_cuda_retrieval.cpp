// GPU exact flat retrieval (edit/gpu_scan.h) against the CPU scan: the same scores bit for bit,
// so the same rows, ties included. The arithmetic is device-independent, so it is checked on the
// CPU device everywhere and on the GPU where there is one.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cuda_support.h"
#include "edit/gpu_scan.h"
#include "edit/retrieval.h"
#include "test_support.h"

namespace feu::edit {
namespace {

std::shared_ptr<const index::CorpusIndex> random_corpus(int64_t n, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss;
  std::vector<float> data(static_cast<size_t>(n * dim));
  for (float& v : data) v = gauss(rng);
  std::vector<index::CorpusEntry> entries;
  for (int64_t i = 0; i < n; ++i) entries.push_back({1000 + 3 * i, "f" + std::to_string(i), 0, 0});
  return std::make_shared<index::CorpusIndex>(
      index::CorpusIndex::build(std::move(entries), std::move(data), dim, {}, {}));
}

// Duplicate rows score equally: both scans must break the ties by the lower row.
std::shared_ptr<const index::CorpusIndex> corpus_with_ties() {
  std::vector<float> data;
  for (int i = 0; i < 60; ++i) {
    const float base[4] = {1, float(i % 5), 0.5f, -float(i % 3)};
    data.insert(data.end(), base, base + 4);
  }
  std::vector<index::CorpusEntry> entries;
  for (int64_t i = 0; i < 60; ++i) entries.push_back({i, "f", 0, 0});
  return std::make_shared<index::CorpusIndex>(index::CorpusIndex::build(entries, data, 4, {}, {}));
}

std::vector<float> unit_query(int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss;
  std::vector<float> q(static_cast<size_t>(dim));
  double norm = 0;
  for (float& v : q) {
    v = gauss(rng);
    norm += double(v) * v;
  }
  for (float& v : q) v = static_cast<float>(v / std::sqrt(norm));
  return q;
}

// The scan's scores of every row, by the CPU scan itself (retrieve_top over all rows, row order).
std::vector<float> cpu_scores(const index::CorpusIndex& corpus, const float* query) {
  std::vector<int64_t> rows;
  const auto hits = retrieve_top(corpus, query, corpus.size(), &rows);
  std::vector<float> scores(static_cast<size_t>(corpus.size()));
  for (size_t i = 0; i < rows.size(); ++i) scores[static_cast<size_t>(rows[i])] = hits[i].score;
  return scores;
}

void expect_same_as_cpu_scan(const std::string& device, const std::shared_ptr<const index::CorpusIndex>& corpus,
                             int64_t k_pos, int64_t k_neg) {
  const GpuCorpusScan scan(corpus, device);
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const std::vector<float> query = unit_query(corpus->dim(), seed);
    const std::vector<float> expected = cpu_scores(*corpus, query.data());
    const std::vector<float> got = scan.scores(query.data());
    ASSERT_EQ(got.size(), expected.size());
    EXPECT_EQ(0, std::memcmp(got.data(), expected.data(), got.size() * sizeof(float)))
        << device << ": scores differ from the CPU scan's bits";
    for (NegativeSampling negatives : {NegativeSampling::kFarthest, NegativeSampling::kRandom}) {
      const RetrievedSet cpu = retrieve_training_set(*corpus, query.data(), k_pos, k_neg, negatives, seed);
      const RetrievedSet gpu = scan.training_set(query.data(), k_pos, k_neg, negatives, seed);
      EXPECT_EQ(gpu.positive_rows, cpu.positive_rows) << device;
      EXPECT_EQ(gpu.negative_rows, cpu.negative_rows) << device;
      ASSERT_EQ(gpu.positives.size(), cpu.positives.size());
      for (size_t i = 0; i < gpu.positives.size(); ++i) EXPECT_EQ(gpu.positives[i].id, cpu.positives[i].id);
    }
    std::vector<int64_t> cpu_rows, gpu_rows;
    retrieve_top(*corpus, query.data(), 25, &cpu_rows);
    scan.top(query.data(), 25, &gpu_rows);
    EXPECT_EQ(gpu_rows, cpu_rows) << device;
  }
}

TEST(GpuCorpusScan, CpuDeviceGivesTheScansBitsAndRowsIncludingATail) {
  // 515 = 64 full lane blocks and a tail of 3 columns.
  expect_same_as_cpu_scan("cpu", random_corpus(3000, 515, 7), 40, 60);
  expect_same_as_cpu_scan("cpu", random_corpus(2000, 512, 8), 40, 60);
  expect_same_as_cpu_scan("cpu", corpus_with_ties(), 12, 30);
}

TEST(GpuCorpusScan, CudaGivesTheCpuScansRowsIncludingTies) {
  FEU_SKIP_WITHOUT_CUDA_GPU();
  expect_same_as_cpu_scan("cuda", random_corpus(20000, 512, 9), 100, 400);
  expect_same_as_cpu_scan("cuda", random_corpus(3000, 515, 7), 40, 60);
  expect_same_as_cpu_scan("cuda", corpus_with_ties(), 12, 30);
}

TEST(GpuCorpusScan, BadDevicesAreTypedErrors) {
  const auto corpus = corpus_with_ties();
  test::expect_error([&] { GpuCorpusScan(corpus, "tpu"); }, ErrorCode::kInvalidArgument, {"tpu", "cuda"});
  test::expect_error([&] { GpuCorpusScan(corpus, "auto"); }, ErrorCode::kInvalidArgument, {"auto"});
  if (!GpuCorpusScan::available()) {
    test::expect_error([&] { GpuCorpusScan(corpus, "cuda"); }, ErrorCode::kUnsupported, {"cuda"});
  }
}

}  // namespace
}  // namespace feu::edit
