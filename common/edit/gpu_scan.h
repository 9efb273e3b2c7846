// Exact flat retrieval on the GPU. Debian's FAISS has no GPU index, so the scan that
// edit/retrieval.h runs on the CPU runs here with ATen on the GPU: the corpus rows are uploaded
// once, and each query's scores come out bit for bit equal to the CPU scan's (the same eight
// float32 lanes summed in the same order; no fused multiply-add, no TF32). The rows are then
// selected by the CPU scan's own code (training_set_from_scores), so the ids, ties included,
// are the CPU scan's. No torch in this header: the engine includes it from plain C++.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "edit/retrieval.h"

namespace feu::edit {

class GpuCorpusScan {
 public:
  // True when this build's libtorch has CUDA and a GPU is visible.
  static bool available();
  // "cuda", "cuda:N", or "cpu" (the same arithmetic on the CPU device: what the tests check on
  // machines without a GPU). An unknown or absent device is a typed error.
  GpuCorpusScan(std::shared_ptr<const index::CorpusIndex> corpus, const std::string& device = "cuda");

  const index::CorpusIndex& corpus() const { return *corpus_; }
  // The plain scan's score of every row (row order), computed on the device.
  std::vector<float> scores(const float* query) const;
  RetrievedSet training_set(const float* query, int64_t k_pos, int64_t k_neg, NegativeSampling negatives,
                            uint64_t seed) const;
  std::vector<index::CorpusIndex::Hit> top(const float* query, int64_t k, std::vector<int64_t>* rows = nullptr) const;

 private:
  struct Device;
  std::shared_ptr<const index::CorpusIndex> corpus_;
  std::shared_ptr<const Device> device_;  // the rows on the device, laid out for the lanes
};

}  // namespace feu::edit
