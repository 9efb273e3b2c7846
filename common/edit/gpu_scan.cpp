#include "edit/gpu_scan.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/error.h"
#include "tensor/tensor_h5.h"

namespace feu::edit {

// The rows as the scan reads them: `blocks` [dim/8, N, 8] holds columns 8j..8j+7 of every row in
// block j, so each step of the lane sums is one contiguous elementwise op; `tail` [dim%8, N] the
// columns after the last full block.
struct GpuCorpusScan::Device {
  at::Device device{at::kCPU};
  at::Tensor blocks, tail;
  int64_t dim = 0;
};

bool GpuCorpusScan::available() { return at::hasCUDA(); }  // a CUDA libtorch that sees a GPU

GpuCorpusScan::GpuCorpusScan(std::shared_ptr<const index::CorpusIndex> corpus, const std::string& device)
    : corpus_(std::move(corpus)) {
  check(corpus_ != nullptr, ErrorCode::kInternal, "GpuCorpusScan needs a corpus");
  check(device != "auto", ErrorCode::kInvalidArgument, "GpuCorpusScan needs cuda, cuda:N or cpu, got 'auto'");
  auto d = std::make_shared<Device>();
  d->device = resolve_device(device);
  const int64_t n = corpus_->size(), dim = corpus_->dim(), full = dim / 8;
  d->dim = dim;
  // from_blob does not copy: clone before the layout change so the corpus is never written.
  at::Tensor rows = at::from_blob(const_cast<float*>(corpus_->embeddings().data()), {n, dim}, at::kFloat);
  d->blocks = rows.narrow(1, 0, full * 8).reshape({n, full, 8}).permute({1, 0, 2}).contiguous().to(d->device);
  d->tail = rows.narrow(1, full * 8, dim - full * 8).t().contiguous().to(d->device);
  device_ = std::move(d);
}

std::vector<float> GpuCorpusScan::scores(const float* query) const {
  const Device& d = *device_;
  const int64_t full = d.blocks.size(0), n = corpus_->size();
  at::NoGradGuard no_grad;
  at::Tensor q = at::from_blob(const_cast<float*>(query), {d.dim}, at::kFloat).to(d.device);
  at::Tensor q_blocks = q.narrow(0, 0, full * 8).reshape({full, 1, 8});
  // Exactly score_row's arithmetic (edit/retrieval.cpp): lane l sums row[8j+l]·query[8j+l] over
  // j in order, each product rounded before the add (separate ops: no fused multiply-add).
  at::Tensor lanes = at::zeros({n, 8}, at::TensorOptions().dtype(at::kFloat).device(d.device));
  for (int64_t j = 0; j < full; ++j) lanes.add_(at::mul(d.blocks[j], q_blocks[j]));
  // ((l0+l1)+(l2+l3)) + ((l4+l5)+(l6+l7)), then the tail columns one by one.
  at::Tensor pairs = lanes.slice(1, 0, 8, 2) + lanes.slice(1, 1, 8, 2);
  at::Tensor quads = pairs.slice(1, 0, 4, 2) + pairs.slice(1, 1, 4, 2);
  at::Tensor sum = quads.select(1, 0) + quads.select(1, 1);
  for (int64_t k = 0; k < d.tail.size(0); ++k) sum.add_(at::mul(d.tail[k], q[full * 8 + k]));
  at::Tensor host = sum.to(at::kCPU).contiguous();
  return std::vector<float>(host.data_ptr<float>(), host.data_ptr<float>() + n);
}

RetrievedSet GpuCorpusScan::training_set(const float* query, int64_t k_pos, int64_t k_neg,
                                         NegativeSampling negatives, uint64_t seed) const {
  return training_set_from_scores(*corpus_, scores(query), k_pos, k_neg, negatives, seed);
}

std::vector<index::CorpusIndex::Hit> GpuCorpusScan::top(const float* query, int64_t k,
                                                         std::vector<int64_t>* rows) const {
  return top_from_scores(*corpus_, scores(query), k, rows);
}

}  // namespace feu::edit
