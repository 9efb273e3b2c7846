// StyleGAN2 and CLIP behind the engine's model interfaces (edit/models.h),
// and Engine::create, which loads them from the config's files.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <omp.h>

#include <algorithm>
#include <exception>
#include <thread>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "core/error.h"
#include "core/text.h"
#include "core/files.h"
#include "core/logging.h"
#include "edit/engine.h"
#include "face/e4e.h"
#include "image/tensor_image.h"
#include "stylegan2/generator.h"
#include "stylegan2/graphed_synthesis.h"
#include "stylegan2/seed.h"
#include "tensor/tensor_h5.h"

namespace feu::edit {
namespace {

// Runs a torch computation; a c10::Error (out of memory, a kernel failure)
// becomes a typed feu::Error so callers see one error type.
template <typename Fn>
auto guarded(const char* what, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& error) {
    throw Error(ErrorCode::kInternal, std::string(what) + " failed in libtorch: " + error.what_without_backtrace());
  }
}

std::vector<float> to_vector(const at::Tensor& tensor) {
  const at::Tensor cpu = tensor.to(at::kCPU, at::kFloat).contiguous();
  return std::vector<float>(cpu.data_ptr<float>(), cpu.data_ptr<float>() + cpu.numel());
}

// The lanes a CPU batch renders in: `configured`, or for 0 one per ATen thread, at most 8
// (each lane holds a 1024² image's activations, ~1 GB).
int cpu_render_lanes(int configured) {
  return configured > 0 ? configured : std::min(at::get_num_threads(), 8);
}

class Stylegan2Generator : public StyleGenerator {
 public:
  // cpu_render_lanes: EngineConfig's (0 = auto). `graphs`: full-size synthesis replays CUDA
  // graphs (stylegan2::GraphedSynthesis) where the generator is on a CUDA device of a CUDA build;
  // ignored elsewhere.
  Stylegan2Generator(stylegan2::Generator generator, int cpu_render_lanes, bool graphs)
      : generator_(std::move(generator)), cpu_render_lanes_(cpu_render_lanes) {
    if (graphs && stylegan2::GraphedSynthesis::supported(generator_))
      graphed_ = std::make_unique<stylegan2::GraphedSynthesis>(generator_);
    for (const stylegan2::StyleLayer& layer : generator_.style_space().layers()) {
      layout_.layer_names.push_back(layer.name);
      layout_.layer_offsets.push_back(layer.offset);
      layout_.layer_channels.push_back(layer.channels);
    }
  }

  int64_t w_dim() const override { return generator_.config().w_dim; }
  int64_t num_ws() const override { return generator_.config().num_ws(); }
  const StyleLayout& layout() const override { return layout_; }
  int resolution() const override { return generator_.config().img_resolution; }
  const std::string& fingerprint() const override { return generator_.fingerprint(); }

  std::vector<float> styles_from_seed(int64_t seed, double psi) override {
    return guarded("mapping", [&] { return styles_from_seed_unguarded(seed, psi); });
  }

  std::vector<float> styles_from_ws(const std::vector<float>& ws, bool plus) override {
    return guarded("styles from W", [&] { return styles_from_ws_unguarded(ws, plus); });
  }

  std::vector<image::Image> render(const std::vector<float>& styles, int64_t count) override {
    return guarded("synthesis", [&] { return render_unguarded(styles, count, resolution()); });
  }

  std::vector<image::Image> render_preview(const std::vector<float>& styles, int64_t count, int size) override {
    return guarded("preview synthesis", [&] { return render_unguarded(styles, count, size); });
  }

 private:
  std::vector<float> styles_from_seed_unguarded(int64_t seed, double psi) {
    c10::InferenceMode guard;
    const at::Tensor z = stylegan2::z_from_seed(seed, generator_.config().z_dim).to(generator_.device());
    const at::Tensor ws = generator_.mapping(z, psi);  // [1, num_ws, w_dim]
    return to_vector(generator_.style_space().flatten(generator_.styles_from_ws(ws)));
  }

  std::vector<float> styles_from_ws_unguarded(const std::vector<float>& ws, bool plus) {
    c10::InferenceMode guard;
    at::Tensor tensor = at::from_blob(const_cast<float*>(ws.data()), {static_cast<int64_t>(ws.size())}, at::kFloat)
                            .clone()
                            .to(generator_.device());
    tensor = plus ? tensor.view({1, num_ws(), w_dim()}) : tensor.view({1, w_dim()});
    return to_vector(generator_.style_space().flatten(generator_.styles_from_ws(tensor)));
  }

  // `size` below the resolution: synthesis stops before the first layer of
  // the block at 2·size and returns the skip image so far (NVlabs' image at
  // that block, what a slider preview needs, without the larger blocks' cost).
  std::vector<image::Image> render_unguarded(const std::vector<float>& styles, int64_t count, int size) {
    int stop = -1;
    if (size < resolution()) {
      const auto& layers = generator_.style_space().layers();
      for (size_t i = 0; i < layers.size() && stop < 0; ++i)
        if (layers[i].resolution == 2 * size) stop = static_cast<int>(i);
      check(stop >= 0, ErrorCode::kInvalidArgument, "no block of this generator has resolution " + std::to_string(size));
    }
    const int64_t total = total_channels();
    check(static_cast<int64_t>(styles.size()) == count * total, ErrorCode::kShapeMismatch,
          "render got " + std::to_string(styles.size()) + " style values for " + std::to_string(count) + " codes");
    const at::Tensor all = at::from_blob(const_cast<float*>(styles.data()), {count, total}, at::kFloat);
    if (generator_.device().is_cuda()) {
      // Bounded chunks keep a large batch from exhausting GPU memory at 1024².
      c10::InferenceMode guard;
      return render_codes(all.to(generator_.device()), 16, stop);
    }
    // On CPU a batch saves no arithmetic (the large layers modulate per
    // sample anyway) and its 1024² activations (128 MB per image and layer)
    // spill the caches: batch 4 measured 3.1 s of CPU per image against 2.8 s
    // at batch 1. Images go one at a time, in concurrent lanes: one ATen
    // thread per image scales better than every thread on one image.
    const int threads = at::get_num_threads();
    const int64_t lanes = std::min<int64_t>(count, cpu_render_lanes(cpu_render_lanes_));
    if (lanes <= 1) {
      c10::InferenceMode guard;
      return render_codes(all, 1, stop);
    }
    std::vector<image::Image> images(static_cast<size_t>(count));
    std::vector<std::exception_ptr> failures(static_cast<size_t>(lanes));
    std::vector<std::thread> workers;
    for (int64_t lane = 0; lane < lanes; ++lane) {
      workers.emplace_back([&, lane] {
        try {
          // ATen's OpenMP backend runs on the calling thread's own team size:
          // after ATen's lazy per-thread initialisation (get_num_threads),
          // omp_set_num_threads narrows this lane alone (at::set_num_threads
          // would also change the process-wide default for new threads).
          at::get_num_threads();
          omp_set_num_threads(std::max<int>(1, threads / static_cast<int>(lanes)));
          c10::InferenceMode guard;
          for (int64_t i = lane; i < count; i += lanes)
            images[static_cast<size_t>(i)] = std::move(render_codes(all.narrow(0, i, 1), 1, stop).front());
        } catch (...) {
          failures[static_cast<size_t>(lane)] = std::current_exception();
        }
      });
    }
    for (std::thread& worker : workers) worker.join();
    for (const std::exception_ptr& failure : failures)
      if (failure) std::rethrow_exception(failure);
    return images;
  }

  // codes: [N, total channels] on the generator's device; `stop` as above.
  std::vector<image::Image> render_codes(const at::Tensor& codes, int64_t chunk, int stop) {
    std::vector<image::Image> images;
    for (int64_t start = 0; start < codes.size(0); start += chunk) {
      const at::Tensor flat = codes.narrow(0, start, std::min(chunk, codes.size(0) - start));
      const std::vector<at::Tensor> split = generator_.style_space().split(flat);
      const at::Tensor img = stop >= 0  ? generator_.run_until(split, stop, stylegan2::NoiseMode::kConst).img
                             : graphed_ ? synthesize_graphed(split)
                                        : generator_.synthesize(split, stylegan2::NoiseMode::kConst);
      std::vector<image::Image> part = image::images_from_tensor(img, image::Quantize::kStyleClip);
      images.insert(images.end(), std::make_move_iterator(part.begin()), std::make_move_iterator(part.end()));
    }
    return images;
  }

  // A graph that fails to capture (a driver or libtorch limit) leaves the daemon serving:
  // synthesis falls back to eager, once and for all, and says so.
  at::Tensor synthesize_graphed(const std::vector<at::Tensor>& split) {
    try {
      return graphed_->synthesize(split);
    } catch (const Error& error) {
      log_line(LogLevel::kWarn, std::string("CUDA graphs disabled, synthesis runs eagerly: ") + error.what());
      graphed_.reset();
      return generator_.synthesize(split, stylegan2::NoiseMode::kConst);
    }
  }

  stylegan2::Generator generator_;
  int cpu_render_lanes_;
  std::unique_ptr<stylegan2::GraphedSynthesis> graphed_;  // CUDA only: never used by CPU lanes
  StyleLayout layout_;
};

class ClipTextEncoder : public TextEncoder {
 public:
  ClipTextEncoder(clip::ClipModel model, clip::Tokenizer tokenizer)
      : model_(std::move(model)), tokenizer_(std::move(tokenizer)) {
    check(model_.config().vocab_size >= tokenizer_.vocab_size(), ErrorCode::kArtifactMismatch,
          "the tokenizer has " + std::to_string(tokenizer_.vocab_size()) + " tokens but CLIP embeds only " +
              std::to_string(model_.config().vocab_size));
  }

  int64_t embed_dim() const override { return model_.config().embed_dim; }
  const std::string& fingerprint() const override { return model_.fingerprint(); }

  void check_prompt(const std::string& prompt) const override {
    const int64_t limit = clip::Tokenizer::kContextLength - 2;
    const int64_t tokens = static_cast<int64_t>(tokenizer_.encode(prompt).size());
    check(tokens <= limit, ErrorCode::kInvalidArgument,
          "the text is too long for CLIP: the prompt " + quote_text(prompt) + " has " +
              std::to_string(tokens) + " tokens, CLIP reads at most " + std::to_string(limit));
  }

  std::vector<float> encode(const std::vector<std::string>& prompts) override {
    return guarded("CLIP text encoding", [&] { return encode_unguarded(prompts); });
  }

 private:
  std::vector<float> encode_unguarded(const std::vector<std::string>& prompts) {
    c10::InferenceMode guard;
    const int64_t count = static_cast<int64_t>(prompts.size());
    at::Tensor tokens = at::empty({count, clip::Tokenizer::kContextLength}, at::kLong);
    for (int64_t i = 0; i < count; ++i) {
      const std::vector<int64_t> row = tokenizer_.tokenize_row(prompts[i]);
      std::copy(row.begin(), row.end(), tokens[i].data_ptr<int64_t>());
    }
    return to_vector(model_.encode_text(tokens));
  }

  clip::ClipModel model_;
  clip::Tokenizer tokenizer_;
};

class E4eFaceEncoder : public FaceEncoder {
 public:
  E4eFaceEncoder(face::E4eEncoder encoder, std::string fingerprint)
      : encoder_(std::move(encoder)), fingerprint_(std::move(fingerprint)) {}

  int64_t num_ws() const override { return encoder_.config().n_styles; }
  int64_t w_dim() const override { return encoder_.config().w_dim; }
  const std::string& fingerprint() const override { return fingerprint_; }

  std::vector<float> encode(const std::vector<image::Image>& faces) override {
    return guarded("e4e", [&] {
      c10::InferenceMode guard;
      const int64_t count = static_cast<int64_t>(faces.size());
      at::Tensor batch = at::empty({count, 256, 256, 3}, at::kByte);
      for (int64_t i = 0; i < count; ++i) {
        check(faces[i].width == 256 && faces[i].height == 256, ErrorCode::kShapeMismatch,
              "e4e encodes 256x256 aligned faces, got " + std::to_string(faces[i].width) + "x" +
                  std::to_string(faces[i].height));
        std::copy(faces[i].rgb.begin(), faces[i].rgb.end(), batch[i].data_ptr<uint8_t>());
      }
      return to_vector(encoder_.encode_aligned(batch));
    });
  }

 private:
  face::E4eEncoder encoder_;
  std::string fingerprint_;
};

}  // namespace

std::unique_ptr<Engine> Engine::create(const EngineConfig& config) {
  use_compute_threads();
  tensor::set_cpu_allocation_cache(
      config.cpu_allocation_cache_mb == EngineConfig::kAutoCpuAllocationCache
          ? std::max(tensor::kDefaultCpuAllocationCacheBytes,
                     static_cast<size_t>(cpu_render_lanes(config.cpu_render_lanes)) << 30)
          : static_cast<size_t>(config.cpu_allocation_cache_mb) << 20);
  const at::Device device = resolve_device(config.device);
  check(config.precision != "fp16" || device.is_cuda(), ErrorCode::kConfigError,
        "models.precision: fp16 needs a CUDA device, but device '" + config.device + "' resolved to " + device.str() +
            "; use bf16 or fp32 on the CPU");
  check(config.memory_format != "channels_last" || device.is_cuda(), ErrorCode::kConfigError,
        "models.memory_format: channels_last needs a CUDA device, but device '" + config.device + "' resolved to " +
            device.str() + "; use contiguous or auto on the CPU");
  stylegan2::Generator loaded = stylegan2::Generator::load(config.generator_path, device)
                                    .with_precision(stylegan2::parse_precision(config.precision),
                                                    config.num_fp16_res);
  // auto choices are timed at the largest graph bucket.
  const int64_t batch = stylegan2::GraphedSynthesis::default_buckets().back();
  if (config.modulation != "auto") {
    loaded = loaded.with_modulation(stylegan2::parse_modulation(config.modulation));
  } else if (device.is_cuda()) {
    const stylegan2::ModulationTiming timing = stylegan2::measure_modulation(loaded, batch);
    loaded = loaded.with_modulation(timing.faster);
    log_line(LogLevel::kInfo, "models.modulation auto: " + stylegan2::modulation_name(timing.faster) + " (batch " +
                                  std::to_string(batch) + ": non_fused " + std::to_string(timing.non_fused_ms) +
                                  " ms, grouped " + std::to_string(timing.grouped_ms) + " ms)");
  }
  if (config.memory_format != "auto") {
    loaded = loaded.with_memory_format(stylegan2::parse_memory_format(config.memory_format));
  } else if (device.is_cuda()) {
    // auto picks among the layouts that run: one this GPU's libraries reject stays unchosen, named in the log.
    try {
      const stylegan2::MemoryFormatTiming timing = stylegan2::measure_memory_format(loaded, batch);
      loaded = loaded.with_memory_format(timing.faster);
      log_line(LogLevel::kInfo, "models.memory_format auto: " + stylegan2::memory_format_name(timing.faster) +
                                    " (batch " + std::to_string(batch) + ": contiguous " +
                                    std::to_string(timing.contiguous_ms) + " ms, channels_last " +
                                    std::to_string(timing.channels_last_ms) + " ms)");
    } catch (const std::exception& e) {
      log_line(LogLevel::kWarn, std::string("models.memory_format auto: contiguous (channels_last failed: ") +
                                    e.what() + ")");
    }
  }
  auto generator = std::make_shared<Stylegan2Generator>(loaded, config.cpu_render_lanes, config.cuda_graphs);
  auto text = std::make_shared<ClipTextEncoder>(clip::ClipModel::load(config.clip_path, device, config.clip_fp16),
                                                clip::Tokenizer::load(config.vocab_path));
  auto artifacts = load_artifacts(config.resolve_version_dir(), config.verify_artifacts, *generator, *text);
  std::shared_ptr<PhotoInverter> photos;
  if (!config.e4e_path.empty()) {
    auto encoder = std::make_shared<E4eFaceEncoder>(face::E4eEncoder::load(config.e4e_path, device),
                                                    sha256_file(config.e4e_path));
    photos = std::make_shared<PhotoInverter>(std::move(encoder), config.face_detector, config.inversion_cache_size);
  }
  return std::unique_ptr<Engine>(new Engine(std::move(generator), std::move(text), std::move(artifacts), config.edit,
                                            config.verify_artifacts, device.str(), std::move(photos),
                                            config.paste_feather));
}

}  // namespace feu::edit
