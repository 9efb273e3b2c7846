// CLIP throughput on CPU: ViT-B/32 at its real size with random weights
// (image encoder at batch 1/8/32, text encoder for 1 and 79 prompts), the
// tokenizer, and preprocessing. Run by hand: build/bin/bench_clip.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "clip/attention.h"
#include "clip/model.h"
#include "clip/preprocess.h"
#include "clip/tokenizer.h"
#include "image/codec.h"

namespace {

using feu::clip::ClipConfig;
using feu::clip::ClipModel;
using feu::clip::Tokenizer;

const ClipModel& vit_b_32() {
  static ClipModel model = ClipModel::random(ClipConfig::vit_b_32(), 1, at::kCPU);
  return model;
}

// The real vocabulary when the shared fixtures are there, else the demo one.
const Tokenizer& tokenizer() {
  static Tokenizer t = [] {
    const char* env = std::getenv("FEU_SHARED_DIR");
    std::string shared = env ? env : FEU_BENCH_SHARED_DIR;
    std::string real = shared + "/clip/bpe_simple_vocab_16e6.txt.gz";
    if (std::filesystem::exists(real)) return Tokenizer::load(real);
    std::string demo = (std::filesystem::temp_directory_path() / "feu_bench_demo_vocab.txt.gz").string();
    Tokenizer::write_demo_vocab(demo);
    return Tokenizer::load(demo);
  }();
  return t;
}

// 79 prompts shaped like StyleCLIP's template set ("a bad photo of a {}." ...).
std::vector<std::string> prompts(int count) {
  const char* templates[] = {"a bad photo of a {}.", "a photo of many {}.", "a sculpture of a {}.",
                             "a photo of the hard to see {}.", "a low resolution photo of the {}.",
                             "a rendering of a {}.", "graffiti of a {}.", "a bad photo of the {}.",
                             "a cropped photo of the {}.", "a tattoo of a {}.", "the embroidered {}.",
                             "a bright photo of a {}.", "a photo of a clean {}.", "a close-up photo of a {}."};
  std::vector<std::string> out;
  for (int i = 0; i < count; ++i) {
    std::string t = templates[i % 14];
    t.replace(t.find("{}"), 2, i % 2 ? "face with blond hair" : "smiling woman with glasses");
    out.push_back(t);
  }
  return out;
}

at::Tensor token_matrix(const std::vector<std::string>& texts) {
  at::Tensor tokens = at::empty({static_cast<int64_t>(texts.size()), 77}, at::kLong);
  for (size_t i = 0; i < texts.size(); ++i) {
    auto row = tokenizer().tokenize_row(texts[i]);
    std::copy(row.begin(), row.end(), tokens[static_cast<int64_t>(i)].data_ptr<int64_t>());
  }
  return tokens;
}

// Second argument: ATen intra-op threads (Debian's libtorch starts with one;
// the daemon and indexer take every core, feu::use_compute_threads).
void BM_ImageEncoder(benchmark::State& state) {
  at::set_num_threads(static_cast<int>(state.range(1)));
  const ClipModel& model = vit_b_32();
  const int64_t batch = state.range(0);
  at::Tensor pixels = at::randn({batch, 3, 224, 224});
  for (auto _ : state) benchmark::DoNotOptimize(model.encode_image(pixels));
  state.SetItemsProcessed(state.iterations() * batch);
  // Seconds per image (printed with an SI prefix, e.g. "480m" = 480 ms).
  state.counters["s_per_image"] = benchmark::Counter(static_cast<double>(state.iterations() * batch),
                                                     benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ImageEncoder)
    ->ArgNames({"batch", "threads"})
    ->Args({1, 2})
    ->Args({8, 1})
    ->Args({8, 2})
    ->Args({32, 2})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->MinTime(3.0);

// The fused attention alone, at the image tower's shapes (12 heads of 64
// over 50 tokens, read from a packed q/k/v projection [N, 50, 3·768]) on
// 2 threads; one call is one of the 11 full layers of a forward.
void BM_ImageAttention(benchmark::State& state) {
  at::set_num_threads(2);
  const int64_t batch = state.range(0), d = 768;
  at::Tensor qkv = at::randn({batch, 50, 3 * d});
  at::Tensor bias = at::randn({3 * d});
  at::Tensor q = qkv.narrow(2, 0, d), k = qkv.narrow(2, d, d), v = qkv.narrow(2, 2 * d, d);
  for (auto _ : state) benchmark::DoNotOptimize(feu::clip::multi_head_attention_cpu(q, k, v, 12, bias, {}));
  // Two products per (image, head): 2·50·50·64 multiply-adds each.
  state.counters["flops"] = benchmark::Counter(static_cast<double>(state.iterations() * batch * 12 * 4 * 50 * 50 * 64),
                                               benchmark::Counter::kIsRate);
}
BENCHMARK(BM_ImageAttention)->Arg(8)->Unit(benchmark::kMicrosecond)->UseRealTime()->MinTime(2.0);

void BM_TextEncoder(benchmark::State& state) {
  at::set_num_threads(2);
  const ClipModel& model = vit_b_32();
  at::Tensor tokens = token_matrix(prompts(static_cast<int>(state.range(0))));
  for (auto _ : state) benchmark::DoNotOptimize(model.encode_text(tokens));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_TextEncoder)->Arg(1)->Arg(79)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);

void BM_Tokenizer(benchmark::State& state) {
  const Tokenizer& t = tokenizer();
  std::vector<std::string> texts = prompts(79);
  texts.push_back("Ærøskøbing &amp; İstanbul: naïve résumé, ΟΔΟΣ 👍🏽 2024!");
  int64_t bytes = 0;
  for (auto _ : state)
    for (const std::string& text : texts) {
      benchmark::DoNotOptimize(t.encode(text));
      bytes += static_cast<int64_t>(text.size());
    }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(texts.size()));
  state.SetBytesProcessed(bytes);
}
BENCHMARK(BM_Tokenizer)->Unit(benchmark::kMicrosecond);

void BM_PreprocessImage1024(benchmark::State& state) {
  feu::image::Image img;
  img.width = img.height = 1024;
  img.rgb.resize(1024 * 1024 * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = static_cast<uint8_t>(i * 2654435761u >> 24);
  for (auto _ : state) benchmark::DoNotOptimize(feu::clip::preprocess_image(img, 224));
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PreprocessImage1024)->Unit(benchmark::kMillisecond);

void BM_PreprocessGenerated1024(benchmark::State& state) {
  at::Tensor img = at::rand({state.range(0), 3, 1024, 1024}) * 2 - 1;
  for (auto _ : state) benchmark::DoNotOptimize(feu::clip::preprocess_generated(img, 224));
  state.SetItemsProcessed(state.iterations() * state.range(0));
}
BENCHMARK(BM_PreprocessGenerated1024)->Arg(4)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
