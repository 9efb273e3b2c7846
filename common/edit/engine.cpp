// The model-independent part of the engine (plain C++): config, artifacts,
// and the edit pipeline over the StyleGenerator/TextEncoder interfaces.
#include "edit/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <thread>

#include "core/error.h"
#include "core/text.h"
#include "edit/retrieval.h"
#include "edit/svm.h"
#include "face/paste.h"
#include "image/caption.h"
#include "image/pillow_resample.h"
#include "index/artifacts.h"
#include "index/directions.h"

namespace feu::edit {
namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// "4.1", "-3", "0.25": a strength as a label shows it.
std::string format_alpha(double alpha) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", alpha);
  return text;
}

nlohmann::json hits_json(const std::vector<index::CorpusIndex::Hit>& hits) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& hit : hits) out.push_back({{"id", hit.id}, {"score", hit.score}});
  return out;
}

}  // namespace

// ---------------------------------------------------------------- config

EngineConfig EngineConfig::from_config(const ConfigMap& root) {
  EngineConfig out;
  out.device = root.get<std::string>("device", out.device);
  if (out.device != "auto" && out.device != "cpu" && out.device != "cuda") {
    root.fail("device", "must be auto, cpu or cuda, got '" + out.device + "'");
  }
  const ConfigMap models = root.child("models");
  out.generator_path = models.require_path("generator");
  out.clip_path = models.require_path("clip");
  out.vocab_path = models.require_path("vocab");
  out.clip_fp16 = models.get<bool>("clip_fp16", false);
  out.cpu_render_lanes = models.get<int>("cpu_render_lanes", out.cpu_render_lanes);
  if (out.cpu_render_lanes < 0 || out.cpu_render_lanes > 64)
    models.fail("cpu_render_lanes", "must be 1..64, or 0 for one lane per ATen thread (at most 8)");
  if (models.has("cpu_allocation_cache_mb")) {
    const std::string cache = models.require<std::string>("cpu_allocation_cache_mb");
    if (cache != "auto") {
      size_t used = 0;
      try {
        out.cpu_allocation_cache_mb = std::stoll(cache, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || used != cache.size() || out.cpu_allocation_cache_mb < 0)
        models.fail("cpu_allocation_cache_mb",
                    "must be auto or the MB of freed CPU blocks kept for reuse (>= 0; 0: off), got " + quote_text(cache));
    }
  }
  out.e4e_path = models.path("e4e");
  out.precision = models.get<std::string>("precision", out.precision);
  if (out.precision != "fp32" && out.precision != "fp16" && out.precision != "bf16")
    models.fail("precision", "must be fp32, fp16 or bf16, got '" + out.precision + "'");
  if (out.precision == "fp16" && out.device == "cpu")
    models.fail("precision", "fp16 needs device cuda (libtorch has no fp16 convolutions on the CPU); use bf16 or fp32");
  out.num_fp16_res = models.get<int>("num_fp16_res", out.num_fp16_res);
  if (out.num_fp16_res < 0)
    models.fail("num_fp16_res", "must be the number of highest-resolution blocks in reduced precision, >= 0");
  out.cuda_graphs = models.get<bool>("cuda_graphs", out.cuda_graphs);
  out.modulation = models.get<std::string>("modulation", out.modulation);
  if (out.modulation != "auto" && out.modulation != "non_fused" && out.modulation != "grouped")
    models.fail("modulation", "must be auto, non_fused or grouped, got '" + out.modulation + "'");
  out.memory_format = models.get<std::string>("memory_format", out.memory_format);
  if (out.memory_format != "auto" && out.memory_format != "contiguous" && out.memory_format != "channels_last")
    models.fail("memory_format", "must be auto, contiguous or channels_last, got '" + out.memory_format + "'");
  if (out.memory_format == "channels_last" && out.device == "cpu")
    models.fail("memory_format", "channels_last needs device cuda (the CPU's convolution forms read NCHW); use auto or "
                                 "contiguous");
  models.finish();
  const ConfigMap artifacts = root.child("artifacts");
  out.artifacts_root = artifacts.path("root");
  out.artifacts_version = artifacts.path("version");
  out.verify_artifacts = artifacts.get<bool>("verify", true);
  out.artifacts_follow = artifacts.get<std::string>("follow", "");
  out.artifacts_poll_s = artifacts.get<int>("poll_s", out.artifacts_poll_s);
  if (out.artifacts_poll_s <= 0) artifacts.fail("poll_s", "must be a positive number of seconds");
  if (!out.artifacts_follow.empty() && out.artifacts_root.empty())
    artifacts.fail("follow", "needs artifacts.root: the pulled versions are installed there");
  artifacts.finish();
  if (out.artifacts_root.empty() == out.artifacts_version.empty()) {
    root.fail("artifacts", "needs exactly one of root (serves <root>/current) or version (a version directory)");
  }
  out.edit = EditDefaults::from_config(root.child("edit"));
  const ConfigMap face = root.child("face");
  out.face_detector.predictor_path = face.path("predictor", out.face_detector.predictor_path);
  out.face_detector.upsample = face.get<int>("upsample", out.face_detector.upsample);
  out.face_detector.detect_max_pixels = face.get<int64_t>("detect_max_pixels", out.face_detector.detect_max_pixels);
  const int64_t cache_size = face.get<int64_t>("inversion_cache_size", static_cast<int64_t>(out.inversion_cache_size));
  if (cache_size < 0) face.fail("inversion_cache_size", "must be >= 0 (0 disables the cache)");
  out.inversion_cache_size = static_cast<size_t>(cache_size);
  out.paste_feather = face.get<double>("paste_feather", out.paste_feather);
  if (!(out.paste_feather > 0 && out.paste_feather <= 0.5)) face.fail("paste_feather", "must be in (0, 0.5]");
  if (out.face_detector.upsample < 0 || out.face_detector.upsample > 3) face.fail("upsample", "must be in 0..3");
  if (out.face_detector.detect_max_pixels < 0) face.fail("detect_max_pixels", "must be >= 0 (0: detect on the photo itself)");
  face.finish();
  return out;
}

EngineConfig EngineConfig::load_file(const std::string& path) { return from_config(ConfigMap::load_file(path)); }

std::string EngineConfig::resolve_version_dir() const {
  if (!artifacts_version.empty()) return artifacts_version;
  return index::ArtifactSet::resolve_current(artifacts_root);
}

// ---------------------------------------------------------------- artifacts

void check_artifacts(const Artifacts& artifacts, const StyleGenerator& generator, const TextEncoder& text) {
  const std::string where = artifacts.version.empty() ? std::string("artifacts") : "artifact version " + artifacts.version;
  check(artifacts.corpus && artifacts.mapper, ErrorCode::kInternal, where + " lack a corpus or directions");
  check(artifacts.generator_sha256 == generator.fingerprint(), ErrorCode::kArtifactMismatch,
        where + " was made with generator " + artifacts.generator_sha256 + " but the loaded generator is " +
            (generator.fingerprint().empty() ? std::string("unsaved") : generator.fingerprint()));
  check(artifacts.clip_sha256 == text.fingerprint(), ErrorCode::kArtifactMismatch,
        where + " was made with CLIP " + artifacts.clip_sha256 + " but the loaded CLIP is " +
            (text.fingerprint().empty() ? std::string("unsaved") : text.fingerprint()));
  const StyleLayout& expected = generator.layout();
  const StyleLayout& actual = artifacts.mapper->layout();
  check(expected.layer_names == actual.layer_names && expected.layer_offsets == actual.layer_offsets &&
            expected.layer_channels == actual.layer_channels,
        ErrorCode::kArtifactMismatch,
        where + " directions describe an S of " + std::to_string(actual.layer_names.size()) + " layers / " +
            std::to_string(actual.total_channels()) + " channels, the generator has " +
            std::to_string(expected.layer_names.size()) + " layers / " + std::to_string(expected.total_channels()));
  check(artifacts.mapper->dim() == text.embed_dim() && artifacts.corpus->dim() == text.embed_dim(),
        ErrorCode::kArtifactMismatch,
        where + " embeddings have " + std::to_string(artifacts.corpus->dim()) + " (corpus) and " +
            std::to_string(artifacts.mapper->dim()) + " (directions) dimensions, CLIP has " +
            std::to_string(text.embed_dim()));
}

std::shared_ptr<const Artifacts> load_artifacts(const std::string& version_dir, bool verify,
                                                const StyleGenerator& generator, const TextEncoder& text) {
  const index::ArtifactSet set = index::ArtifactSet::open(version_dir, verify);
  const index::Directions directions = index::Directions::load(set.directions_path());
  auto artifacts = std::make_shared<Artifacts>();
  artifacts->version = set.manifest().version;
  artifacts->version_dir = set.version_dir();
  artifacts->generator_sha256 = set.manifest().generator_sha256;
  artifacts->clip_sha256 = set.manifest().clip_sha256;
  check(directions.info.generator_sha256.empty() || directions.info.generator_sha256 == artifacts->generator_sha256,
        ErrorCode::kArtifactMismatch, "directions.h5 of " + version_dir + " names generator " +
                                          directions.info.generator_sha256 + ", its manifest " +
                                          artifacts->generator_sha256);
  StyleLayout layout{directions.layer_names, directions.layer_offsets, directions.layer_channels};
  artifacts->mapper = std::make_shared<StyleDirectionMapper>(directions.fs3, directions.embed_dim,
                                                             directions.covered_channels, directions.s_std, layout);
  artifacts->corpus = std::make_shared<index::CorpusIndex>(index::CorpusIndex::load(set.corpus_dir()));
  check_artifacts(*artifacts, generator, text);
  artifacts->scanner = std::make_shared<CorpusScanner>(artifacts->corpus);
  return artifacts;
}

// ---------------------------------------------------------------- models

std::vector<image::Image> StyleGenerator::render_preview(const std::vector<float>& styles, int64_t count, int size) {
  std::vector<image::Image> images = render(styles, count);
  for (image::Image& image : images) image = image::pillow_resize(image, size, size, image::PillowFilter::kLanczos);
  return images;
}

// ---------------------------------------------------------------- engine

struct Engine::Prepared {
  ResolvedEdit edit;
  std::vector<float> base;        // [total]
  std::vector<float> delta;       // [total]
  std::vector<float> codes;       // [num_codes, total]: original (if shown) then one per alpha
  bool has_original = false;
  std::optional<PhotoInversion> inversion;  // kPhoto
  std::optional<image::Image> photo;        // kPhoto with paste: the upright photo
  nlohmann::json diagnostics;
  std::optional<Error> error;
};

Engine::Engine(std::shared_ptr<StyleGenerator> generator, std::shared_ptr<TextEncoder> text,
               std::shared_ptr<const Artifacts> artifacts, EditDefaults defaults, bool verify, std::string device,
               std::shared_ptr<PhotoInverter> photos, double paste_feather)
    : generator_(std::move(generator)),
      text_(std::move(text)),
      photos_(std::move(photos)),
      paste_feather_(paste_feather),
      defaults_(std::move(defaults)),
      verify_(verify),
      device_(std::move(device)),
      cache_(defaults_.text_cache_size),
      directions_(defaults_.direction_cache_size),
      artifacts_(std::move(artifacts)) {
  check(generator_ && text_ && artifacts_, ErrorCode::kInternal, "engine needs a generator, a text encoder and artifacts");
  defaults_.validate("engine defaults");
  check_artifacts(*artifacts_, *generator_, *text_);
  if (photos_) {
    const FaceEncoder& encoder = photos_->encoder();
    check(encoder.num_ws() == generator_->num_ws() && encoder.w_dim() == generator_->w_dim(), ErrorCode::kConfigError,
          "models.e4e encodes faces to W+ [" + std::to_string(encoder.num_ws()) + ", " +
              std::to_string(encoder.w_dim()) + "] but the generator takes [" + std::to_string(generator_->num_ws()) +
              ", " + std::to_string(generator_->w_dim()) + "]: the encoder was trained for another generator");
  }
  artifacts_ = with_scanners(std::move(artifacts_));
}

std::shared_ptr<const Artifacts> Engine::with_scanners(std::shared_ptr<const Artifacts> artifacts) const {
  const bool cuda = device_.rfind("cuda", 0) == 0;
  if (artifacts->scanner && (!cuda || artifacts->gpu_scanner)) return artifacts;
  auto completed = std::make_shared<Artifacts>(*artifacts);
  if (!completed->scanner) completed->scanner = std::make_shared<CorpusScanner>(completed->corpus);
#ifdef FEU_EDIT_WITH_MODELS
  if (cuda && !completed->gpu_scanner)
    completed->gpu_scanner = std::make_shared<GpuCorpusScan>(completed->corpus, device_);
#else
  check(!cuda, ErrorCode::kUnsupported, "this build has no libtorch: retrieval cannot run on " + device_);
#endif
  return completed;
}

RetrievedSet Engine::retrieve_training_set(const Artifacts& artifacts, const float* query,
                                           const ResolvedEdit& edit) const {
  if (artifacts.gpu_scanner)
    return artifacts.gpu_scanner->training_set(query, edit.k_pos, edit.k_neg, edit.negatives, defaults_.negatives_seed);
  return artifacts.scanner->training_set(query, edit.k_pos, edit.k_neg, edit.negatives, defaults_.negatives_seed,
                                         defaults_.scan_threads());
}

std::unique_ptr<Engine> Engine::from_parts(std::shared_ptr<StyleGenerator> generator, std::shared_ptr<TextEncoder> text,
                                           std::shared_ptr<const Artifacts> artifacts, EditDefaults defaults,
                                           std::shared_ptr<PhotoInverter> photos, double paste_feather,
                                           std::string device) {
  return std::unique_ptr<Engine>(new Engine(std::move(generator), std::move(text), std::move(artifacts),
                                            std::move(defaults), true, std::move(device), std::move(photos),
                                            paste_feather));
}

std::shared_ptr<const Artifacts> Engine::artifacts(uint64_t* generation) const {
  std::lock_guard<std::mutex> lock(artifacts_mutex_);
  if (generation) *generation = generation_;
  return artifacts_;
}

std::string Engine::artifact_version() const { return artifacts()->version; }

ModelLimits Engine::limits(const Artifacts& artifacts) const {
  ModelLimits limits;
  limits.w_dim = generator_->w_dim();
  limits.num_ws = generator_->num_ws();
  limits.total_channels = generator_->total_channels();
  limits.corpus_size = artifacts.corpus->size();
  limits.photos = photos_ != nullptr;
  limits.resolution = generator_->resolution();
  return limits;
}

void Engine::validate(const EditRequest& request) const {
  const auto current = artifacts();
  const ResolvedEdit edit = resolve_request(request, defaults_, limits(*current));
  for (const std::string& prompt : prompts_for(edit.instruction, defaults_.templates)) text_->check_prompt(prompt);
  if (edit.method == Method::kGlobal) {
    for (const std::string& prompt : prompts_for(edit.neutral, defaults_.templates)) text_->check_prompt(prompt);
  }
}

std::vector<float> Engine::text_embedding(const std::string& text) {
  if (auto cached = cache_.get(text, defaults_.templates, text_->fingerprint())) return *cached;
  const std::vector<std::string> prompts = prompts_for(text, defaults_.templates);
  for (const std::string& prompt : prompts) text_->check_prompt(prompt);
  const std::vector<float> raw = text_->encode(prompts);
  std::vector<float> embedding =
      template_embedding(raw.data(), static_cast<int64_t>(prompts.size()), text_->embed_dim());
  cache_.put(text, defaults_.templates, text_->fingerprint(), embedding);
  return embedding;
}

void Engine::prepare(const EditRequest& request, const Artifacts& artifacts, uint64_t generation, Prepared& out) {
  const StyleDirectionMapper& mapper = *artifacts.mapper;
  nlohmann::json& diag = out.diagnostics;
  nlohmann::json timings = nlohmann::json::object();
  out.edit = resolve_request(request, defaults_, limits(artifacts));
  const ResolvedEdit& edit = out.edit;
  diag["method"] = method_name(edit.method);
  diag["instruction"] = edit.instruction;
  if (edit.method == Method::kGlobal) diag["neutral"] = edit.neutral;
  diag["templates"] = template_set_name(defaults_.templates);
  diag["artifact_version"] = artifacts.version;
  diag["alphas"] = edit.alphas;
  diag["grid"] = edit.grid;

  // text
  auto start = Clock::now();
  const uint64_t misses_before = cache_.misses();
  const std::vector<float> target = text_embedding(edit.instruction);
  std::vector<float> neutral;
  if (edit.method == Method::kGlobal) neutral = text_embedding(edit.neutral);
  diag["text_cache"] = cache_.misses() == misses_before ? "hit" : "miss";
  timings["text"] = ms_since(start);

  // retrieval + svm (feu) or the global direction
  std::vector<float> direction;
  if (edit.method == Method::kFeu) {
    bool cached = false;
    const FeuDirection feu = feu_direction(edit, target, artifacts, generation, &cached);
    diag["direction_cache"] = cached ? "hit" : "miss";
    // cached: the first request of this instruction paid retrieval and SVM
    timings["retrieval"] = cached ? 0.0 : feu.retrieval_ms;
    timings["svm"] = cached ? 0.0 : feu.svm_ms;
    diag["retrieval"] = feu.retrieval;
    diag["svm"] = feu.svm;
    direction = feu.normal;
  } else {
    direction = global_direction(target, neutral);
  }

  // mapping
  start = Clock::now();
  BetaRule rule;
  rule.beta = edit.beta;
  rule.automatic = edit.beta_auto;
  rule.low = defaults_.beta_auto_low;
  rule.high = defaults_.beta_auto_high;
  rule.min_channels = defaults_.min_channels;
  const ThresholdedRelevance kept = mapper.kept_relevance(direction.data(), rule);
  const double beta = kept.beta;
  out.delta = mapper.delta_s(kept);
  const std::vector<ChannelChange> top = mapper.top_channels(out.delta, defaults_.top_channels);
  timings["mapping"] = ms_since(start);
  diag["beta"] = beta;
  diag["beta_auto"] = edit.beta_auto;
  diag["channels_changed"] = kept.channels;
  diag["relevance_max"] = kept.max_abs;
  nlohmann::json top_json = nlohmann::json::array();
  for (const ChannelChange& change : top) {
    top_json.push_back({{"channel", change.channel},
                        {"layer", change.layer},
                        {"layer_channel", change.layer_channel},
                        {"delta", change.delta}});
  }
  diag["top_channels"] = top_json;

  // base code and edited codes
  start = Clock::now();
  switch (edit.latent_kind) {
    case LatentKind::kSeed:
      out.base = generator_->styles_from_seed(edit.seed, edit.psi);
      diag["seed"] = edit.seed;
      diag["psi"] = edit.psi;
      break;
    case LatentKind::kW: out.base = generator_->styles_from_ws(edit.latent, false); break;
    case LatentKind::kWPlus: out.base = generator_->styles_from_ws(edit.latent, true); break;
    case LatentKind::kS: out.base = edit.latent; break;
    case LatentKind::kPhoto: {
      const auto invert_start = Clock::now();
      bool cache_hit = false;
      image::Image photo;
      out.inversion = photos_->invert(request.photo, edit.face, edit.paste ? &photo : nullptr, &cache_hit);
      if (edit.paste) out.photo = std::move(photo);
      timings["inversion"] = ms_since(invert_start);
      diag["face"] = out.inversion->describe();
      diag["face"]["inversion_cache"] = cache_hit ? "hit" : "miss";
      diag["face"]["pasted"] = edit.paste;
      out.base = generator_->styles_from_ws(out.inversion->wplus, true);
      break;
    }
  }
  diag["latent_kind"] = latent_kind_name(edit.latent_kind);
  const int64_t total = generator_->total_channels();
  check(static_cast<int64_t>(out.base.size()) == total, ErrorCode::kInternal, "generator returned a style code of the wrong size");
  // A photo's edits come with its reconstruction: what the edits change is
  // judged against it, not against the photo the generator cannot reproduce.
  out.has_original = edit.return_original || edit.grid || edit.latent_kind == LatentKind::kPhoto;
  const int64_t codes = static_cast<int64_t>(edit.alphas.size()) + (out.has_original ? 1 : 0);
  out.codes.resize(static_cast<size_t>(codes * total));
  int64_t next = 0;
  if (out.has_original) std::copy(out.base.begin(), out.base.end(), out.codes.begin() + (next++) * total);
  for (double alpha : edit.alphas) {
    StyleDirectionMapper::apply(out.base.data(), out.delta.data(), total, alpha, out.codes.data() + (next++) * total);
  }
  timings["latent"] = ms_since(start);
  diag["timings_ms"] = timings;
}

Engine::FeuDirection Engine::feu_direction(const ResolvedEdit& edit, const std::vector<float>& target,
                                           const Artifacts& artifacts, uint64_t generation, bool* cached) {
  const std::string key = std::to_string(generation) + '\n' + std::to_string(edit.k_pos) + '\n' +
                          std::to_string(edit.k_neg) + '\n' + negative_sampling_name(edit.negatives) + '\n' +
                          template_set_name(defaults_.templates) + '\n' + edit.instruction;
  if (std::optional<FeuDirection> hit = directions_.get(key)) {
    if (cached) *cached = true;
    return *hit;
  }
  if (cached) *cached = false;
  FeuDirection feu;
  auto start = Clock::now();
  const RetrievedSet retrieved = retrieve_training_set(artifacts, target.data(), edit);
  feu.retrieval_ms = ms_since(start);
  feu.retrieval = {{"k_pos", edit.k_pos},
                   {"k_neg", edit.k_neg},
                   {"negatives_mode", negative_sampling_name(edit.negatives)},
                   {"positives", hits_json(retrieved.positives)},
                   {"negatives", hits_json(retrieved.negatives)},
                   {"scored_in_float", retrieved.scored_in_float}};
  start = Clock::now();
  const int64_t dim = artifacts.corpus->dim();
  std::vector<float> positives(retrieved.positive_rows.size() * dim);
  std::vector<float> negatives(retrieved.negative_rows.size() * dim);
  for (size_t i = 0; i < retrieved.positive_rows.size(); ++i) {
    const float* row = artifacts.corpus->embedding(retrieved.positive_rows[i]);
    std::copy(row, row + dim, positives.begin() + i * dim);
  }
  for (size_t i = 0; i < retrieved.negative_rows.size(); ++i) {
    const float* row = artifacts.corpus->embedding(retrieved.negative_rows[i]);
    std::copy(row, row + dim, negatives.begin() + i * dim);
  }
  const SvmDirection svm = train_svm_direction(positives.data(), edit.k_pos, negatives.data(), edit.k_neg, dim);
  feu.svm_ms = ms_since(start);
  feu.svm = {{"accuracy", svm.accuracy},
             {"margin", svm.margin},
             {"iterations", svm.iterations},
             {"bias", svm.bias},
             {"cosine_with_text", dot(svm.normal.data(), target.data(), dim)}};
  feu.normal = svm.normal;
  directions_.put(key, feu);
  return feu;
}

nlohmann::json Engine::explain(const EditRequest& request) {
  uint64_t generation = 0;
  const auto current = artifacts(&generation);
  EditRequest probe = request;
  probe.method = Method::kFeu;
  probe.neutral.clear();
  const ResolvedEdit edit = resolve_request(probe, defaults_, limits(*current));
  const std::vector<float> target = text_embedding(edit.instruction);
  const FeuDirection feu = feu_direction(edit, target, *current, generation, nullptr);
  nlohmann::json out = {{"instruction", edit.instruction},
                        {"artifact_version", current->version},
                        {"corpus_root", current->corpus->provenance().corpus_root},
                        {"retrieval", feu.retrieval},
                        {"svm", feu.svm}};
  for (const char* side : {"positives", "negatives"})
    for (auto& hit : out["retrieval"][side]) hit["path"] = current->corpus->path_of(hit["id"].get<int64_t>());
  return out;
}

std::vector<EditResult> Engine::edit_batch(const std::vector<EditRequest>& requests) {
  return render_batch(requests).finish();
}

// What finish() needs: the prepared requests, their images and the encoder
// settings, copied so that finishing touches nothing of the engine.
struct Engine::RenderedBatch::State {
  std::vector<Prepared> prepared;
  std::vector<std::vector<image::Image>> rendered;  // per request: original (if shown) then one per alpha
  Clock::time_point batch_start;
  double synthesis_ms = 0;
  int64_t batch_images = 0;
  int64_t total_channels = 0;
  int64_t num_ws = 0;
  int png_compression = 1;
  int jpeg_quality = 92;
  double paste_feather = 0.1;
};

Engine::RenderedBatch::RenderedBatch(std::unique_ptr<State> state) : state_(std::move(state)) {}
Engine::RenderedBatch::RenderedBatch(RenderedBatch&&) noexcept = default;
Engine::RenderedBatch& Engine::RenderedBatch::operator=(RenderedBatch&&) noexcept = default;
Engine::RenderedBatch::~RenderedBatch() = default;

Engine::RenderedBatch Engine::render_batch(const std::vector<EditRequest>& requests) {
  auto state = std::make_unique<RenderedBatch::State>();
  state->batch_start = Clock::now();
  uint64_t generation = 0;
  const auto current = artifacts(&generation);  // the whole batch uses one version, even across a reload
  std::vector<Prepared>& prepared = state->prepared;
  prepared.resize(requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    try {
      prepare(requests[i], *current, generation, prepared[i]);
    } catch (const Error& error) {
      prepared[i].error = error;
    }
  }

  // synthesis: every code of every successful request in one batch (one per
  // image size asked for: full, or a preview)
  const int64_t total = generator_->total_channels();
  std::vector<std::vector<image::Image>>& rendered = state->rendered;
  rendered.resize(requests.size());
  const auto start = Clock::now();
  int64_t count = 0;
  std::vector<int> sizes;
  for (const Prepared& p : prepared)
    if (!p.error && std::find(sizes.begin(), sizes.end(), p.edit.size) == sizes.end()) sizes.push_back(p.edit.size);
  for (int size : sizes) {
    std::vector<float> codes;
    std::vector<size_t> owners;
    for (size_t i = 0; i < prepared.size(); ++i) {
      if (prepared[i].error || prepared[i].edit.size != size) continue;
      codes.insert(codes.end(), prepared[i].codes.begin(), prepared[i].codes.end());
      owners.push_back(i);
    }
    const int64_t n = static_cast<int64_t>(codes.size()) / total;
    std::vector<image::Image> images = size == generator_->resolution() ? generator_->render(codes, n)
                                                                        : generator_->render_preview(codes, n, size);
    check(static_cast<int64_t>(images.size()) == n, ErrorCode::kInternal, "generator rendered the wrong number of images");
    size_t next = 0;
    for (size_t owner : owners) {
      const size_t mine = prepared[owner].codes.size() / total;
      rendered[owner].assign(std::make_move_iterator(images.begin() + next),
                             std::make_move_iterator(images.begin() + next + mine));
      next += mine;
    }
    count += n;
  }
  state->synthesis_ms = ms_since(start);
  state->batch_images = count;
  state->total_channels = total;
  state->num_ws = generator_->num_ws();
  state->png_compression = defaults_.png_compression;
  state->jpeg_quality = defaults_.jpeg_quality;
  state->paste_feather = paste_feather_;
  return RenderedBatch(std::move(state));
}

std::vector<EditResult> Engine::RenderedBatch::finish(std::vector<std::optional<Error>>* errors) {
  // Taken out first: whatever happens below, a second call finds no state.
  const std::unique_ptr<State> state = std::move(state_);
  check(state != nullptr, ErrorCode::kInternal, "a rendered batch is finished once");
  State& batch = *state;
  const int64_t total = batch.total_channels;
  // Every image the batch returns, encoded in parallel below: one image per
  // core instead of one after another (a 1024² PNG takes ~60 ms, as long as
  // a GPU renders a whole batch).
  struct Encoding {
    const image::Image* image;
    EncodedImage* out;
    size_t request;
  };
  std::vector<Encoding> encodings;
  std::vector<image::Image> grids(batch.prepared.size());
  std::vector<EditResult> results(batch.prepared.size());
  for (size_t i = 0; i < batch.prepared.size(); ++i) {
    Prepared& p = batch.prepared[i];
    EditResult& result = results[i];
    result.total_channels = total;
    if (p.error) continue;
    const ResolvedEdit& edit = p.edit;
    auto encode_into = [&](const image::Image& img, double alpha, EncodedImage* out) {
      out->format = edit.format;
      out->width = img.width;
      out->height = img.height;
      out->alpha = alpha;
      encodings.push_back({&img, out, i});
    };
    std::vector<image::Image>& mine = batch.rendered[i];
    const bool photo = edit.latent_kind == LatentKind::kPhoto;
    if (photo && edit.paste) {
      const auto paste_start = Clock::now();
      for (image::Image& face_image : mine)
        face_image = face::paste_face(*p.photo, face_image, p.inversion->quad, batch.paste_feather);
      p.diagnostics["timings_ms"]["paste"] = ms_since(paste_start);
    }
    if (photo) {
      result.wplus = p.inversion->wplus;
      result.wplus_rows = batch.num_ws;
    }
    const bool original = p.has_original && (edit.return_original || (photo && !edit.grid));
    if (original) result.original.emplace();
    if (edit.grid) {
      image::Image grid = image::hstack(mine);
      // Labelled as a user reads it: the instruction above, each panel's α below.
      std::vector<std::string> labels;
      if (p.has_original) labels.push_back(photo ? "reconstruction" : "original");
      for (double alpha : edit.alphas) labels.push_back("\u03b1 = " + format_alpha(alpha));
      std::string title = edit.instruction;
      if (edit.method == Method::kGlobal) title += "  (global; neutral: " + edit.neutral + ")";
      try {
        grid = image::label_grid(grid, labels, title);
      } catch (const Error& error) {
        p.diagnostics["grid_labels"] = std::string("none: ") + error.what();
      }
      grids[i] = std::move(grid);
      result.images.resize(1);
      encode_into(grids[i], edit.alphas.front(), &result.images[0]);
    } else {
      const size_t first_edit = p.has_original ? 1 : 0;
      result.images.resize(edit.alphas.size());
      for (size_t a = 0; a < edit.alphas.size(); ++a)
        encode_into(mine[first_edit + a], edit.alphas[a], &result.images[a]);
    }
    if (original) encode_into(mine[0], 0.0, &*result.original);
    if (edit.return_styles) {
      const size_t skip = p.has_original ? static_cast<size_t>(total) : 0;
      result.edited_styles.assign(p.codes.begin() + skip, p.codes.end());
    }
  }

  const auto encode_start = Clock::now();
  std::vector<std::string> failures(encodings.size());
  const int64_t jobs = static_cast<int64_t>(encodings.size());
  const int threads =
      static_cast<int>(std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, std::max<int64_t>(jobs, 1)));
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1)
  for (int64_t e = 0; e < jobs; ++e) {
    Encoding& encoding = encodings[static_cast<size_t>(e)];
    try {
      encoding.out->bytes = encoding.out->format == ImageFormat::kPng
                                ? image::encode_png(*encoding.image, batch.png_compression)
                                : image::encode_jpeg(*encoding.image, batch.jpeg_quality);
    } catch (const std::exception& error) {
      failures[static_cast<size_t>(e)] = error.what();
    }
  }
  const double encoding_ms = ms_since(encode_start);
  for (size_t e = 0; e < encodings.size(); ++e) {
    Prepared& p = batch.prepared[encodings[e].request];
    if (!failures[e].empty() && !p.error) p.error = Error(ErrorCode::kInternal, "image encoding failed: " + failures[e]);
  }

  for (size_t i = 0; i < batch.prepared.size(); ++i) {
    Prepared& p = batch.prepared[i];
    EditResult& result = results[i];
    if (errors) errors->push_back(p.error);
    if (p.error) {
      result = EditResult{};
      result.total_channels = total;
      result.error = EditError{p.error->code_name(), p.error->what()};
      result.diagnostics = {{"error", {{"code", p.error->code_name()}, {"message", p.error->what()}}}};
      continue;
    }
    p.diagnostics["timings_ms"]["synthesis"] = batch.synthesis_ms;
    p.diagnostics["timings_ms"]["encoding"] = encoding_ms;  // the batch's, as synthesis
    p.diagnostics["timings_ms"]["total"] = ms_since(batch.batch_start);
    p.diagnostics["batch_images"] = batch.batch_images;
    p.diagnostics["size"] = p.edit.size;
    p.diagnostics["images_per_request"] = static_cast<int64_t>(p.codes.size()) / total;
    result.diagnostics = std::move(p.diagnostics);
  }
  return results;
}

EditResult Engine::edit(const EditRequest& request) {
  std::vector<std::optional<Error>> errors;
  std::vector<EditResult> results = render_batch({request}).finish(&errors);
  if (errors.at(0)) throw *errors[0];
  return std::move(results[0]);
}

nlohmann::json Engine::retrieve(const std::string& text, int64_t k) {
  EditRequest probe;
  probe.instruction = text;
  const auto current = artifacts();
  check(k >= 1 && k <= current->corpus->size(), ErrorCode::kInvalidArgument,
        "k = " + std::to_string(k) + " is out of range (expected 1.." + std::to_string(current->corpus->size()) + ")");
  resolve_request(probe, defaults_, limits(*current));
  const std::vector<float> embedding = text_embedding(text);
  const auto hits = current->gpu_scanner ? current->gpu_scanner->top(embedding.data(), k)
                                         : current->scanner->top(embedding.data(), k, nullptr, defaults_.scan_threads());
  nlohmann::json out = {{"text", text}, {"artifact_version", current->version}, {"hits", nlohmann::json::array()}};
  for (const auto& hit : hits) {
    out["hits"].push_back({{"id", hit.id}, {"score", hit.score}, {"path", current->corpus->path_of(hit.id)}});
  }
  return out;
}

void Engine::reload(const std::string& version_dir) {
  auto next = with_scanners(load_artifacts(version_dir, verify_, *generator_, *text_));
  {
    std::lock_guard<std::mutex> lock(artifacts_mutex_);
    artifacts_ = std::move(next);
    ++generation_;
  }
  directions_.clear();  // entries of older generations can never hit again; free them
}

namespace {
// With its layers in S order: what a client needs to read latent files (latents::Shapes).
nlohmann::json generator_info(const StyleGenerator& generator) {
  nlohmann::json layers = nlohmann::json::array();
  const StyleLayout& layout = generator.layout();
  for (size_t l = 0; l < layout.layer_names.size(); ++l)
    layers.push_back({{"name", layout.layer_names[l]}, {"channels", layout.layer_channels[l]}});
  return {{"sha256", generator.fingerprint()},
          {"resolution", generator.resolution()},
          {"w_dim", generator.w_dim()},
          {"num_ws", generator.num_ws()},
          {"total_channels", generator.total_channels()},
          {"layers", layers}};
}
}  // namespace

namespace {

nlohmann::json cpu_allocation_cache_json() {
  const tensor::CpuAllocationCacheStats stats = tensor::cpu_allocation_cache_stats();
  return {{"hits", stats.hits},
          {"misses", stats.misses},
          {"cached_bytes", stats.cached_bytes},
          {"limit_bytes", stats.limit_bytes}};
}

}  // namespace

nlohmann::json Engine::info() const {
  const auto current = artifacts();
  return {{"device", device_},
          {"retrieval", current->gpu_scanner ? "gpu_scan" : "cpu_scan"},
          {"artifact_version", current->version},
          {"artifact_dir", current->version_dir},
          {"generator", generator_info(*generator_)},
          {"clip", {{"sha256", text_->fingerprint()}, {"embed_dim", text_->embed_dim()}}},
          {"corpus_size", current->corpus->size()},
          {"covered_channels", current->mapper->covered()},
          {"defaults", {{"alphas", defaults_.alphas},
                        {"beta", defaults_.beta_auto ? nlohmann::json("auto") : nlohmann::json(defaults_.beta)},
                        {"k_pos", defaults_.k_pos},
                        {"k_neg", defaults_.k_neg},
                        {"negatives", negative_sampling_name(defaults_.negatives)},
                        {"templates", template_set_name(defaults_.templates)},
                        {"psi", defaults_.psi}}},
          {"text_cache", {{"size", cache_.size()}, {"hits", cache_.hits()}, {"misses", cache_.misses()}}},
          {"direction_cache",
           {{"size", directions_.size()}, {"hits", directions_.hits()}, {"misses", directions_.misses()}}},
          {"photos", photos_ ? photos_->info() : nlohmann::json(nullptr)},
          {"cpu_allocation_cache", cpu_allocation_cache_json()}};
}

}  // namespace feu::edit

#ifndef FEU_EDIT_WITH_MODELS
namespace feu::edit {
std::unique_ptr<Engine> Engine::create(const EngineConfig&) {
  throw Error(ErrorCode::kUnsupported, "this build has no StyleGAN2/CLIP modules; Engine::create is unavailable");
}
}  // namespace feu::edit
#endif
