#include "stylegan2/graphed_synthesis.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <optional>
#include <string>

#include "core/error.h"

// Set for this file only by common/stylegan2/CMakeLists.txt when the libtorch found has CUDA:
// the CPU build needs no CUDA headers.
#ifdef FEU_TORCH_CUDA_BUILD
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace feu::stylegan2 {

struct GraphedSynthesis::Bucket {
  int64_t batch = 0;
  std::vector<at::Tensor> inputs;  // static styles [batch, C_l]; padded rows keep old styles
  at::Tensor output;               // static image [batch, C_img, R, R]
#ifdef FEU_TORCH_CUDA_BUILD
  std::unique_ptr<at::cuda::CUDAGraph> graph;
#endif
};

std::vector<int64_t> GraphedSynthesis::default_buckets() { return {1, 2, 4, 8, 16}; }

bool GraphedSynthesis::supported(const Generator& generator) {
#ifdef FEU_TORCH_CUDA_BUILD
  return generator.device().is_cuda();
#else
  (void)generator;
  return false;
#endif
}

GraphedSynthesis::GraphedSynthesis(Generator generator, std::vector<int64_t> buckets, NoiseMode noise)
    : generator_(std::move(generator)), buckets_(std::move(buckets)), noise_(noise) {
  check(!buckets_.empty(), ErrorCode::kInvalidArgument, "GraphedSynthesis needs at least one batch bucket");
  for (int64_t b : buckets_)
    check(b >= 1, ErrorCode::kInvalidArgument,
          "GraphedSynthesis bucket " + std::to_string(b) + " (expected batch sizes >= 1)");
  check(noise_ != NoiseMode::kRandom, ErrorCode::kInvalidArgument,
        "GraphedSynthesis replays fixed kernels: random noise would be drawn once and frozen "
        "(use const or none)");
  std::sort(buckets_.begin(), buckets_.end());
  buckets_.erase(std::unique(buckets_.begin(), buckets_.end()), buckets_.end());
  graphed_ = supported(generator_);
  captured_.resize(buckets_.size());
}

GraphedSynthesis::~GraphedSynthesis() = default;

int64_t GraphedSynthesis::bucket_for(int64_t n) const {
  check(n >= 1, ErrorCode::kInvalidArgument, "batch of " + std::to_string(n) + " (expected >= 1)");
  const auto it = std::lower_bound(buckets_.begin(), buckets_.end(), n);
  return it == buckets_.end() ? buckets_.back() : *it;
}

int64_t GraphedSynthesis::captured() const {
  return std::count_if(captured_.begin(), captured_.end(), [](const auto& b) { return b != nullptr; });
}

GraphedSynthesis::Bucket& GraphedSynthesis::bucket(int64_t batch) {
  const size_t index = static_cast<size_t>(
      std::lower_bound(buckets_.begin(), buckets_.end(), batch) - buckets_.begin());
  std::unique_ptr<Bucket>& slot = captured_[index];
  if (slot) return *slot;
  auto b = std::make_unique<Bucket>();
  b->batch = batch;
  const auto options = at::TensorOptions().dtype(at::kFloat).device(generator_.device());
  // Ones: valid styles for the warm-up and for rows padded before any real style reached them.
  for (const StyleLayer& layer : generator_.style_space().layers())
    b->inputs.push_back(at::ones({batch, layer.channels}, options));
#ifdef FEU_TORCH_CUDA_BUILD
  if (graphed_) {
    try {
      c10::cuda::CUDAGuard device_guard(generator_.device());
      // Capture runs on a side stream; it must see the inputs' fill, and the graph must be
      // complete before the caller's stream replays it.
      c10::cuda::getCurrentCUDAStream().synchronize();
      c10::cuda::CUDAStream side = c10::cuda::getStreamFromPool(false, generator_.device().index());
      c10::cuda::CUDAStreamGuard stream_guard(side);
      // Warm-up outside the capture: cuDNN chooses its algorithms and the allocator grows.
      for (int i = 0; i < 3; ++i) b->output = generator_.synthesize(b->inputs, noise_);
      b->output = at::Tensor();
      side.synchronize();
      b->graph = std::make_unique<at::cuda::CUDAGraph>();
      // Thread-local capture: other threads of the daemon may use the GPU meanwhile.
      b->graph->capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      b->output = generator_.synthesize(b->inputs, noise_);
      b->graph->capture_end();
      side.synchronize();
    } catch (const c10::Error& e) {
      throw Error(ErrorCode::kInternal, "CUDA graph capture of synthesis at batch " + std::to_string(batch) +
                                            " failed: " + e.what_without_backtrace());
    }
  }
#endif
  slot = std::move(b);
  return *slot;
}

at::Tensor GraphedSynthesis::run_padded(Bucket& b, const std::vector<at::Tensor>& styles, int64_t begin,
                                        int64_t count) {
  for (size_t l = 0; l < styles.size(); ++l)
    b.inputs[l].narrow(0, 0, count).copy_(styles[l].narrow(0, begin, count));
#ifdef FEU_TORCH_CUDA_BUILD
  if (graphed_) {
    b.graph->replay();
    return b.output.narrow(0, 0, count).clone();
  }
#endif
  return generator_.synthesize(b.inputs, noise_).narrow(0, 0, count).clone();
}

at::Tensor GraphedSynthesis::synthesize(const std::vector<at::Tensor>& styles) {
  // The static buffers are ordinary tensors: made and written outside inference mode, they can
  // be refilled by any later call, inside inference mode or not.
  c10::InferenceMode not_inference(false);
  at::NoGradGuard no_grad;
  const int64_t n = generator_.style_space().check_styles(styles);
  check(n >= 1, ErrorCode::kShapeMismatch, "GraphedSynthesis got an empty batch of styles");
  std::lock_guard<std::mutex> lock(mutex_);
#ifdef FEU_TORCH_CUDA_BUILD
  std::optional<c10::cuda::CUDAGuard> device_guard;
  if (graphed_) device_guard.emplace(generator_.device());
#endif
  std::vector<at::Tensor> parts;
  for (int64_t begin = 0; begin < n;) {
    const int64_t count = std::min(n - begin, buckets_.back());
    parts.push_back(run_padded(bucket(bucket_for(count)), styles, begin, count));
    begin += count;
  }
  return parts.size() == 1 ? parts[0] : at::cat(parts, 0);
}

}  // namespace feu::stylegan2
