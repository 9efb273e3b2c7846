// Per-stage latency of one edit at real sizes on this machine:
//   70,000 x 512 unit corpus embeddings (FFHQ-sized index), k_pos = k_neg = 100,
//   fs3 5,376 x 512 over FFHQ config-f's S (26 layers, 9,088 channels),
//   1024x1024 PNG/JPEG encoding, and, when the model modules are built,
//   ViT-B/32 text encoding of 79 prompts and 1024² config-f synthesis (random weights).
// Target (issue 5): everything but synthesis and text encoding under 5 ms on
// CPU for a new instruction: BM_RetrievalSvmMapping (retrieval, SVM, mapping;
// the argument is the corpus-scan threads). The scan reads 36 MB of int8
// codes and is bound by memory bandwidth, so its figure depends on the
// machine's; report the machine with it.
#include <benchmark/benchmark.h>

#include <random>
#include <thread>
#include <vector>

#include "edit/engine.h"
#include "edit/int8_rows.h"
#include "edit/mapping.h"
#include "edit/retrieval.h"
#include "edit/svm.h"
#include "edit/text_direction.h"
#include "image/codec.h"
#include "index/corpus.h"
#include "index/directions.h"

#ifdef FEU_EDIT_WITH_MODELS
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include "clip/model.h"
#include "clip/tokenizer.h"
#include "edit/templates.h"
#include "stylegan2/generator.h"
#endif

namespace {

using namespace feu;
using namespace feu::edit;

constexpr int64_t kCorpus = 70000;
constexpr int64_t kDim = 512;

std::vector<float> random_unit_rows(int64_t rows, int64_t dim, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss;
  std::vector<float> data(rows * dim);
  for (int64_t r = 0; r < rows; ++r) {
    double n = 0;
    for (int64_t k = 0; k < dim; ++k) data[r * dim + k] = gauss(rng), n += double(data[r * dim + k]) * data[r * dim + k];
    for (int64_t k = 0; k < dim; ++k) data[r * dim + k] = static_cast<float>(data[r * dim + k] / std::sqrt(n));
  }
  return data;
}

const index::CorpusIndex& corpus() {
  static const index::CorpusIndex built = [] {
    std::vector<index::CorpusEntry> entries(kCorpus);
    for (int64_t i = 0; i < kCorpus; ++i) entries[i] = {i, "img" + std::to_string(i) + ".png", 0, 0};
    return index::CorpusIndex::build(std::move(entries), random_unit_rows(kCorpus, kDim, 1), kDim, {}, {});
  }();
  return built;
}

// FFHQ config-f S layout and StyleCLIP's 5376-row coverage (conv layers <= 128²).
const StyleDirectionMapper& mapper() {
  static const StyleDirectionMapper built = [] {
    const auto layers = index::stylegan2_layout(1024, 32768, 512);
    const auto covered_mask = index::coverage_mask(layers, "128");
    StyleLayout layout;
    std::vector<int64_t> covered;
    for (size_t l = 0; l < layers.size(); ++l) {
      layout.layer_names.push_back(layers[l].name);
      layout.layer_offsets.push_back(layers[l].offset);
      layout.layer_channels.push_back(layers[l].channels);
      if (covered_mask[l])
        for (int64_t c = 0; c < layers[l].channels; ++c) covered.push_back(layers[l].offset + c);
    }
    std::vector<float> s_std(layout.total_channels(), 0.1f);
    return StyleDirectionMapper(random_unit_rows(static_cast<int64_t>(covered.size()), kDim, 2), kDim, covered,
                                s_std, layout);
  }();
  return built;
}

std::vector<float> query() { return random_unit_rows(1, kDim, 3); }

void BM_TextTemplateMean(benchmark::State& state) {
  const std::vector<float> raw = random_unit_rows(79, kDim, 4);
  for (auto _ : state) benchmark::DoNotOptimize(template_embedding(raw.data(), 79, kDim));
}
BENCHMARK(BM_TextTemplateMean)->Unit(benchmark::kMicrosecond);

void BM_Retrieval(benchmark::State& state) {
  const auto q = query();
  const auto mode = state.range(0) ? NegativeSampling::kRandom : NegativeSampling::kFarthest;
  corpus();
  for (auto _ : state) benchmark::DoNotOptimize(retrieve_training_set(corpus(), q.data(), 100, 100, mode, 0));
  state.SetLabel(state.range(0) ? "70k x 512, negatives random" : "70k x 512, negatives farthest");
}
BENCHMARK(BM_Retrieval)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

const CorpusScanner& scanner() {
  static const CorpusScanner built(std::shared_ptr<const index::CorpusIndex>(&corpus(), [](const index::CorpusIndex*) {}));
  return built;
}

void BM_RetrievalInt8(benchmark::State& state) {
  // The engine's path: exact int8 scan + float rescoring of the candidates.
  // Args: negatives (0 farthest, 1 random), scan threads.
  const auto q = query();
  const auto mode = state.range(0) ? NegativeSampling::kRandom : NegativeSampling::kFarthest;
  const int threads = static_cast<int>(state.range(1));
  scanner();
  int64_t rescored = 0;
  for (auto _ : state) {
    const RetrievedSet set = scanner().training_set(q.data(), 100, 100, mode, 0, threads);
    rescored = set.scored_in_float;
  }
  state.SetLabel(std::string(state.range(0) ? "negatives random" : "negatives farthest") + ", rows rescored " +
                 std::to_string(rescored) + ", threads " + std::to_string(threads));
}
BENCHMARK(BM_RetrievalInt8)->Args({0, 1})->Args({1, 1})->Args({0, 2})->Unit(benchmark::kMillisecond);

void BM_Int8Estimate(benchmark::State& state) {
  // The memory-bound part of the int8 scan alone: 36 MB of codes read once.
  static const Int8Rows codes(corpus().embeddings().data(), kCorpus, kDim);
  const auto q = query();
  const int threads = static_cast<int>(state.range(0));
  for (auto _ : state) benchmark::DoNotOptimize(codes.estimate(q.data(), threads));
  state.SetLabel("70k x 512 int8 codes, threads " + std::to_string(threads));
}
BENCHMARK(BM_Int8Estimate)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

void BM_FaissTopAndBottom(benchmark::State& state) {
  // For comparison: the same retrieval with two FAISS searches (top, negated query).
  const auto q = query();
  corpus();
  for (auto _ : state) {
    benchmark::DoNotOptimize(corpus().top_k(q.data(), 100));
    benchmark::DoNotOptimize(corpus().bottom_k(q.data(), 100));
  }
  state.SetLabel("70k x 512 flat, two searches");
}
BENCHMARK(BM_FaissTopAndBottom)->Unit(benchmark::kMillisecond);

void BM_Svm(benchmark::State& state) {
  const auto q = query();
  const RetrievedSet set = retrieve_training_set(corpus(), q.data(), 100, 100, NegativeSampling::kFarthest, 0);
  std::vector<float> pos, neg;
  for (int64_t row : set.positive_rows) pos.insert(pos.end(), corpus().embedding(row), corpus().embedding(row) + kDim);
  for (int64_t row : set.negative_rows) neg.insert(neg.end(), corpus().embedding(row), corpus().embedding(row) + kDim);
  int iterations = 0;
  for (auto _ : state) iterations = train_svm_direction(pos.data(), 100, neg.data(), 100, kDim).iterations;
  state.SetLabel("100 + 100 x 512, liblinear solver 1 (dense), " + std::to_string(iterations) + " passes");
}
BENCHMARK(BM_Svm)->Unit(benchmark::kMillisecond);

void BM_Mapping(benchmark::State& state) {
  // Arg: β x 100, or 0 for auto (min 20 channels). With these random unit
  // fs3 rows r ~ N(0, 1/512): β 0.05 keeps ~26% of the channels, 0.15 ~0.1%.
  const auto dt = query();
  const std::vector<float> s(mapper().total_channels(), 1.0f);
  std::vector<float> edited(s.size());
  BetaRule rule;
  rule.automatic = state.range(0) == 0;
  rule.beta = state.range(0) / 100.0;
  int64_t channels = 0;
  for (auto _ : state) {
    const auto kept = mapper().kept_relevance(dt.data(), rule);
    const auto delta = mapper().delta_s(kept);
    benchmark::DoNotOptimize(mapper().top_channels(delta, 10));
    StyleDirectionMapper::apply(s.data(), delta.data(), static_cast<int64_t>(s.size()), 4.1, edited.data());
    benchmark::DoNotOptimize(edited.data());
    channels = kept.channels;
  }
  state.SetLabel("fs3 5376 x 512, S 9088, beta " + (rule.automatic ? std::string("auto") : std::to_string(rule.beta)) +
                 ", channels changed " + std::to_string(channels));
}
BENCHMARK(BM_Mapping)->Arg(5)->Arg(15)->Arg(0)->Unit(benchmark::kMillisecond);

void BM_RetrievalSvmMapping(benchmark::State& state) {
  // The target: everything between the text embedding and synthesis.
  // Arg: corpus scan threads (the engine's retrieval_threads).
  const int threads = static_cast<int>(state.range(0));
  const auto q = query();
  const std::vector<float> s(mapper().total_channels(), 1.0f);
  std::vector<float> edited(s.size());
  std::vector<float> pos(100 * kDim), neg(100 * kDim);
  corpus();
  scanner();
  for (auto _ : state) {
    const RetrievedSet set = scanner().training_set(q.data(), 100, 100, NegativeSampling::kFarthest, 0, threads);
    for (int i = 0; i < 100; ++i) {
      std::copy(corpus().embedding(set.positive_rows[i]), corpus().embedding(set.positive_rows[i]) + kDim, pos.begin() + i * kDim);
      std::copy(corpus().embedding(set.negative_rows[i]), corpus().embedding(set.negative_rows[i]) + kDim, neg.begin() + i * kDim);
    }
    const SvmDirection svm = train_svm_direction(pos.data(), 100, neg.data(), 100, kDim);
    BetaRule rule;
    rule.automatic = true;
    const auto kept = mapper().kept_relevance(svm.normal.data(), rule);
    const auto delta = mapper().delta_s(kept);
    StyleDirectionMapper::apply(s.data(), delta.data(), static_cast<int64_t>(s.size()), 4.1, edited.data());
    benchmark::DoNotOptimize(edited.data());
  }
  state.SetLabel("70k index, 200 SVM samples, 5376 x 512 fs3, beta auto, scan threads " + std::to_string(threads));
}
BENCHMARK(BM_RetrievalSvmMapping)->Arg(1)->Arg(2)->Unit(benchmark::kMillisecond);

// Stand-ins for the models so the engine's own cost (everything but the
// networks) is measured at real sizes: config-f S layout, 512-d text.
class LayoutOnlyGenerator : public StyleGenerator {
 public:
  LayoutOnlyGenerator() : layout_(mapper().layout()) {}
  int64_t w_dim() const override { return 512; }
  int64_t num_ws() const override { return 18; }
  const StyleLayout& layout() const override { return layout_; }
  int resolution() const override { return 1024; }
  const std::string& fingerprint() const override { return fingerprint_; }
  std::vector<float> styles_from_seed(int64_t, double) override { return std::vector<float>(layout_.total_channels(), 1.0f); }
  std::vector<float> styles_from_ws(const std::vector<float>&, bool) override { return styles_from_seed(0, 0); }
  std::vector<image::Image> render(const std::vector<float>&, int64_t count) override {
    image::Image tiny;  // 1x1: synthesis and encoding are measured separately
    tiny.width = tiny.height = 1;
    tiny.rgb = {0, 0, 0};
    return std::vector<image::Image>(static_cast<size_t>(count), tiny);
  }

 private:
  StyleLayout layout_;
  std::string fingerprint_ = "bench-generator";
};

class RandomTextEncoder : public TextEncoder {
 public:
  int64_t embed_dim() const override { return kDim; }
  const std::string& fingerprint() const override { return fingerprint_; }
  void check_prompt(const std::string&) const override {}
  std::vector<float> encode(const std::vector<std::string>& prompts) override {
    return random_unit_rows(static_cast<int64_t>(prompts.size()), kDim, prompts.front().size());
  }

 private:
  std::string fingerprint_ = "bench-text";
};

void BM_EngineEditWithoutNetworks(benchmark::State& state) {
  // A whole Engine::edit with stand-in networks: validation, (cached) text,
  // retrieval, SVM, mapping, S codes, diagnostics. First arg 0: every edit a
  // new instruction for the direction (cold); 1: a repeated instruction
  // (warm). Second arg: retrieval_threads.
  auto artifacts = std::make_shared<Artifacts>();
  artifacts->generator_sha256 = "bench-generator";
  artifacts->clip_sha256 = "bench-text";
  artifacts->corpus = std::shared_ptr<const index::CorpusIndex>(&corpus(), [](const index::CorpusIndex*) {});
  artifacts->mapper = std::shared_ptr<const StyleDirectionMapper>(&mapper(), [](const StyleDirectionMapper*) {});
  EditDefaults defaults;
  defaults.beta_auto = true;
  defaults.direction_cache_size = state.range(0) ? 256 : 0;
  defaults.retrieval_threads = static_cast<int>(state.range(1));
  auto engine = Engine::from_parts(std::make_shared<LayoutOnlyGenerator>(), std::make_shared<RandomTextEncoder>(),
                                   artifacts, defaults);
  EditRequest request;
  request.instruction = "blond hair";
  engine->edit(request);  // text embedding cached in both cases
  for (auto _ : state) benchmark::DoNotOptimize(engine->edit(request));
  state.SetLabel(std::string(state.range(0) ? "repeated instruction: direction cached"
                                             : "direction cache off: retrieval + SVM every time") +
                 ", retrieval threads " + std::to_string(state.range(1)));
}
BENCHMARK(BM_EngineEditWithoutNetworks)->Args({0, 1})->Args({0, 2})->Args({1, 1})->Unit(benchmark::kMillisecond);

image::Image face_like_image(int side) {
  // A smooth gradient with mild noise: compresses like a generated face, not like white noise.
  image::Image img;
  img.width = img.height = side;
  img.rgb.resize(static_cast<size_t>(side) * side * 3);
  std::mt19937 rng(5);
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x)
      for (int c = 0; c < 3; ++c)
        img.rgb[(static_cast<size_t>(y) * side + x) * 3 + c] =
            static_cast<uint8_t>((x * (c + 1) / 8 + y / 5 + rng() % 6) & 0xFF);
  return img;
}

void BM_EncodePng(benchmark::State& state) {
  const image::Image img = face_like_image(1024);
  for (auto _ : state) benchmark::DoNotOptimize(image::encode_png(img, 1));
  state.SetLabel("1024x1024, zlib level 1");
}
BENCHMARK(BM_EncodePng)->Unit(benchmark::kMillisecond);

void BM_EncodeJpeg(benchmark::State& state) {
  const image::Image img = face_like_image(1024);
  for (auto _ : state) benchmark::DoNotOptimize(image::encode_jpeg(img, 92));
  state.SetLabel("1024x1024, quality 92");
}
BENCHMARK(BM_EncodeJpeg)->Unit(benchmark::kMillisecond);

#ifdef FEU_EDIT_WITH_MODELS
void BM_TextEncodeVitB32(benchmark::State& state) {
  // 79 templated prompts through a random-weight ViT-B/32 text tower (a cache miss).
  static const clip::ClipModel model = clip::ClipModel::random(clip::ClipConfig::vit_b_32(), 1, at::kCPU);
  const auto prompts = prompts_for("blond hair", TemplateSet::kImagenet);
  // Token ids are irrelevant to the cost; 12 ids per prompt like the real ones.
  at::Tensor tokens = at::zeros({static_cast<int64_t>(prompts.size()), 77}, at::kLong);
  tokens.narrow(1, 0, 1).fill_(49406);
  tokens.narrow(1, 1, 10).fill_(320);
  tokens.narrow(1, 11, 1).fill_(49407);
  c10::InferenceMode guard;
  at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  for (auto _ : state) benchmark::DoNotOptimize(model.encode_text(tokens));
  state.SetLabel("79 prompts, ViT-B/32 text tower, random weights, threads " + std::to_string(at::get_num_threads()));
}
BENCHMARK(BM_TextEncodeVitB32)->Unit(benchmark::kMillisecond)->Iterations(3);

void BM_Synthesis1024(benchmark::State& state) {
  static const stylegan2::Generator generator =
      stylegan2::Generator::random(stylegan2::GeneratorConfig::config_f(), 1, at::kCPU);
  c10::InferenceMode guard;
  at::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  const at::Tensor ws = generator.mapping(at::randn({state.range(0), 512}), 0.7);
  const auto styles = generator.styles_from_ws(ws);
  for (auto _ : state) benchmark::DoNotOptimize(generator.synthesize(styles));
  state.SetLabel("config-f 1024², random weights, batch " + std::to_string(state.range(0)) + ", threads " +
                 std::to_string(at::get_num_threads()));
}
BENCHMARK(BM_Synthesis1024)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(2);
#endif

}  // namespace
