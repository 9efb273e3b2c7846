// StyleGAN2 synthesis from S replayed as CUDA graphs: one graph per batch bucket, captured at its
// first use with static style inputs and a static image output. A batch is padded up to its
// bucket (the smallest bucket that holds it; above the largest, chunks of the largest), copied
// into the bucket's inputs, the graph replayed and the rows asked for copied out. Batch-1
// synthesis at 1024² launches a few hundred small kernels; replaying them as one graph removes
// the launch cost that dominates it (NVlabs' 17–20 ms eager against 6.3 ms under a graph).
//
// Where graphs are not available (a CPU libtorch, a CPU generator) the same buckets run eagerly,
// so the bucketing is the same code everywhere and the CPU tests check it.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "stylegan2/generator.h"

namespace feu::stylegan2 {

class GraphedSynthesis {
 public:
  // `buckets`: the batch sizes captured, each at least 1 (sorted and deduplicated here).
  // NoiseMode::kRandom cannot be replayed (its noise would be frozen in the graph): a typed error.
  explicit GraphedSynthesis(Generator generator, std::vector<int64_t> buckets = default_buckets(),
                            NoiseMode noise = NoiseMode::kConst);
  ~GraphedSynthesis();
  GraphedSynthesis(const GraphedSynthesis&) = delete;
  GraphedSynthesis& operator=(const GraphedSynthesis&) = delete;

  // {1, 2, 4, 8, 16}: the engine's batches (an edit's alphas, a daemon batch) and its chunk.
  static std::vector<int64_t> default_buckets();
  // Whether `generator` replays under CUDA graphs here (a CUDA libtorch and a CUDA generator).
  static bool supported(const Generator& generator);

  const Generator& generator() const { return generator_; }
  const std::vector<int64_t>& buckets() const { return buckets_; }
  bool graphed() const { return graphed_; }
  // The batch a batch of n runs as: the smallest bucket >= n, else the largest (in chunks).
  int64_t bucket_for(int64_t n) const;
  // Buckets captured so far (run eagerly: buckets used so far).
  int64_t captured() const;

  // Styles (one [N, C_l] per layer, any N >= 1) -> image [N, img_channels, R, R] fp32, a tensor
  // of its own (not the graph's output buffer). Thread-safe (replays are serialized).
  at::Tensor synthesize(const std::vector<at::Tensor>& styles);

 private:
  struct Bucket;
  Bucket& bucket(int64_t batch);
  at::Tensor run_padded(Bucket& bucket, const std::vector<at::Tensor>& styles, int64_t begin,
                        int64_t count);

  Generator generator_;
  std::vector<int64_t> buckets_;
  NoiseMode noise_;
  bool graphed_ = false;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Bucket>> captured_;  // one per bucket, null until first used
};

}  // namespace feu::stylegan2
