// The edit engine: instruction + face -> edited face(s), with diagnostics.
// Runs inside the daemon and from `feu edit --local`.
//
//   text      T(instruction) over the prompt templates (LRU-cached)
//   retrieval (feu) k_pos most / k_neg least similar corpus images
//   svm       (feu) liblinear normal of positives vs negatives = Δt
//             (global: Δt = unit(T(instruction) - T(neutral)))
//   mapping   r = fs3·Δt, β threshold (or auto), max-normalize, ⊙σ -> Δs
//   synthesis s + α·Δs for every α (and the original), one batch
//   encoding  PNG (fast) or JPEG; optional grid
//
// No torch in this header: the models sit behind edit/models.h. Engine::create
// builds StyleGAN2 + CLIP from files (engine_models.cpp); Engine::from_parts
// takes any models and in-memory artifacts (tests, benchmarks).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/config.h"
#include "core/error.h"
#include "edit/gpu_scan.h"
#include "edit/mapping.h"
#include "edit/models.h"
#include "edit/options.h"
#include "edit/photo_inversion.h"
#include "edit/request.h"
#include "edit/retrieval.h"
#include "edit/text_direction.h"
#include "index/corpus.h"
#include "tensor/cpu_allocation_cache.h"

namespace feu::edit {

// The config file's device/models/artifacts/edit sections.
//   device: auto | cpu | cuda
//   models: {generator: G.h5, clip: ViT-B-32.pt|.h5, vocab: bpe.txt.gz, clip_fp16: false,
//            e4e: e4e_ffhq_encode.pt|.h5 (optional: photos are edited only with it),
//            precision: fp32|fp16|bf16 (synthesis; fp16 needs cuda), num_fp16_res: 4,
//            cuda_graphs: true (synthesis replayed as CUDA graphs on cuda),
//            modulation: auto | non_fused | grouped (fp32 modulated convolutions; auto: measured
//            at load on cuda, non_fused on the cpu),
//            memory_format: auto | contiguous | channels_last (synthesis on cuda; auto: measured
//            at load on cuda, contiguous on the cpu),
//            cpu_render_lanes: 0 (auto), cpu_allocation_cache_mb: auto | MB}
//   artifacts: {root: DIR (serves DIR/current)} or {version: DIR}, verify: true,
//              follow: URL, poll_s: 300 (with root: the daemon pulls the publisher's new versions into it)
//   edit: see EditDefaults
//   face: {predictor: dlib 68-landmark model, upsample: 1, detect_max_pixels: 2000000,
//          inversion_cache_size: 256, paste_feather: 0.1}
struct EngineConfig {
  std::string device = "auto";
  std::string generator_path;
  std::string clip_path;
  std::string vocab_path;
  bool clip_fp16 = false;
  // CPU synthesis renders a batch's images one at a time in this many
  // concurrent lanes, each on its share of the ATen threads (0 = one lane per
  // ATen thread, at most 8; a single image takes every thread). On a 2-core
  // VM, 2 lanes of one thread rendered a batch of 4 at 1.41 s per 1024²
  // image against 1.52-1.54 s for one image on both threads
  // (bench_stylegan2 BM_ServedRender): a batch is cheaper per image than a
  // single edit.
  int cpu_render_lanes = 0;
  // Freed CPU blocks of 4 MB and more kept for reuse (tensor/cpu_allocation_cache.h):
  // without it a 1024² render spends 40% of its time in the kernel faulting in
  // fresh activations. Process-wide; 0 = off; kAutoCpuAllocationCache = 1 GB per
  // render lane (a 1024² render's peak), at least the programs' default (2 GB).
  static constexpr int64_t kAutoCpuAllocationCache = -1;
  int64_t cpu_allocation_cache_mb = kAutoCpuAllocationCache;
  // Synthesis in reduced precision over the num_fp16_res highest-resolution blocks, as NVlabs'
  // (stylegan2::Precision); "fp32" is the parity path.
  std::string precision = "fp32";
  int num_fp16_res = 4;
  bool cuda_graphs = true;  // on a CUDA device, synthesis replays CUDA graphs per batch bucket
  // How the fp32 modulated convolutions run (stylegan2::Modulation): "auto" times both at load on
  // a CUDA device at the largest graph bucket (stylegan2::measure_modulation) and keeps the
  // faster; on the CPU it is non_fused, which has the CPU's own faster forms.
  std::string modulation = "auto";
  // The layout of synthesis's activations and convolution weights (stylegan2::MemoryFormat):
  // "auto" times both at load on a CUDA device, after the modulation is chosen, at the same batch
  // (stylegan2::measure_memory_format) and keeps the faster; contiguous on the CPU, where
  // channels_last is a config error.
  std::string memory_format = "auto";
  std::string artifacts_root;     // serves <root>/current
  std::string artifacts_version;  // or this version directory
  bool verify_artifacts = true;   // recheck sha256 of every artifact file at load/reload
  std::string artifacts_follow;   // publisher root URL to pull new versions from ("" = none)
  int artifacts_poll_s = 300;     // seconds between pulls
  EditDefaults edit;
  std::string e4e_path;           // "" = no photo editing
  // HOG with one upsample scans 4x the photo's pixels (8 s for 12 MP on two
  // cores): the daemon detects on a copy of at most 2 MP by default (boxes
  // scaled back, landmarks on the full photo); 0 = the reference's exact scan.
  face::DetectorOptions face_detector = [] {
    face::DetectorOptions options;
    options.detect_max_pixels = 2'000'000;
    return options;
  }();
  size_t inversion_cache_size = 256;  // photos' inversions kept (LRU)
  double paste_feather = 0.1;     // paste's blend border, a fraction of the face square's side

  // Reads the four sections (finish() on each; the daemon reads `daemon:`).
  static EngineConfig from_config(const ConfigMap& root);
  static EngineConfig load_file(const std::string& path);
  // The version directory to serve: artifacts_version, else <root>/current.
  std::string resolve_version_dir() const;
};

// One loaded artifact version: the corpus index and the Δi directions.
struct Artifacts {
  std::string version;      // manifest version ("" for in-memory artifacts)
  std::string version_dir;
  std::string generator_sha256;  // models the artifacts were made with
  std::string clip_sha256;
  std::shared_ptr<const index::CorpusIndex> corpus;
  std::shared_ptr<const StyleDirectionMapper> mapper;
  // int8 codes of the corpus for the exact fast scan; built by load_artifacts,
  // or by the engine when absent.
  std::shared_ptr<const CorpusScanner> scanner;
  // The corpus on the GPU (the same ids as the scans above): set by an engine on a CUDA device,
  // which then retrieves with it.
  std::shared_ptr<const GpuCorpusScan> gpu_scanner;
};

// Opens a version directory (ArtifactSet, verifying when asked) and checks it
// against the models: manifest fingerprints = the models' fingerprints, the
// directions' S layout = the generator's, embedding sizes agree. A
// disagreement is an artifact_mismatch error naming both sides.
std::shared_ptr<const Artifacts> load_artifacts(const std::string& version_dir, bool verify,
                                                const StyleGenerator& generator, const TextEncoder& text);
// Checks in-memory artifacts against the models the same way.
void check_artifacts(const Artifacts& artifacts, const StyleGenerator& generator, const TextEncoder& text);

class Engine {
 public:
  // Loads generator, CLIP + tokenizer and the artifact version of `config`.
  static std::unique_ptr<Engine> create(const EngineConfig& config);
  // `photos` (optional) inverts photo requests; its encoder must give the
  // generator's W+ shape (config_error otherwise).
  // `device` is where retrieval scans: "cpu" (the int8 scan) or "cuda"/"cuda:N" (GpuCorpusScan).
  static std::unique_ptr<Engine> from_parts(std::shared_ptr<StyleGenerator> generator,
                                            std::shared_ptr<TextEncoder> text,
                                            std::shared_ptr<const Artifacts> artifacts, EditDefaults defaults,
                                            std::shared_ptr<PhotoInverter> photos = nullptr,
                                            double paste_feather = 0.1, std::string device = "cpu");

  // One request; errors are feu::Error with codes.
  EditResult edit(const EditRequest& request);
  // Several requests; their images synthesize as one batch. A request that
  // fails validation or a per-request stage (e.g. no_channels) gets
  // EditResult::error set and no images; the others still complete.
  std::vector<EditResult> edit_batch(const std::vector<EditRequest>& requests);
  // A batch whose model work is done (validation, retrieval, SVM, Δs,
  // synthesis) and whose images are not encoded yet. finish() needs nothing
  // of the engine (models, caches, artifacts), so it may run on another thread
  // while the engine renders the next batch: the daemon's pipeline.
  class RenderedBatch {
   public:
    RenderedBatch(RenderedBatch&&) noexcept;
    RenderedBatch& operator=(RenderedBatch&&) noexcept;
    ~RenderedBatch();
    // Pastes photos back, builds grids and encodes every image of the batch,
    // in parallel; returns what edit_batch returns. `errors` (when given)
    // receives each request's typed error. Called once.
    std::vector<EditResult> finish(std::vector<std::optional<Error>>* errors = nullptr);

   private:
    friend class Engine;
    struct State;
    explicit RenderedBatch(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
  };
  // edit_batch up to the encoding: edit_batch(r) is render_batch(r).finish().
  RenderedBatch render_batch(const std::vector<EditRequest>& requests);
  // Throws what edit() would throw for a malformed request, without running it.
  void validate(const EditRequest& request) const;

  // The k corpus images most similar to T(text): {text, artifact_version, hits: [{id, score, path}]}.
  nlohmann::json retrieve(const std::string& text, int64_t k);
  // What an FEU edit of `request.instruction` is built from, with the corpus
  // paths of the images: {instruction, artifact_version, corpus_root,
  // retrieval: {positives: [{id, score, path}], negatives: [...], k_pos, ...},
  // svm: {accuracy, margin, ...}} (shares the direction cache with edits).
  nlohmann::json explain(const EditRequest& request);
  // Unit T(text) with the configured templates (cached).
  std::vector<float> text_embedding(const std::string& text);

  std::string artifact_version() const;
  // Loads and verifies another version, then swaps it in; in-flight edits
  // finish on the version they started with. On error the old version stays.
  void reload(const std::string& version_dir);
  // Device, models, artifact version, defaults, cache statistics.
  nlohmann::json info() const;

  const EditDefaults& defaults() const { return defaults_; }
  StyleGenerator& generator() { return *generator_; }
  TextEncoder& text_encoder() { return *text_; }

 private:
  Engine(std::shared_ptr<StyleGenerator> generator, std::shared_ptr<TextEncoder> text,
         std::shared_ptr<const Artifacts> artifacts, EditDefaults defaults, bool verify, std::string device,
         std::shared_ptr<PhotoInverter> photos, double paste_feather);
  std::shared_ptr<const Artifacts> artifacts(uint64_t* generation = nullptr) const;
  ModelLimits limits(const Artifacts& artifacts) const;
  // `artifacts` with the scanners this engine retrieves with (the int8 scan; on CUDA the GPU scan).
  std::shared_ptr<const Artifacts> with_scanners(std::shared_ptr<const Artifacts> artifacts) const;
  RetrievedSet retrieve_training_set(const Artifacts& artifacts, const float* query, const ResolvedEdit& edit) const;
  struct Prepared;
  void prepare(const EditRequest& request, const Artifacts& artifacts, uint64_t generation, Prepared& out);
  // The FEU direction of one instruction: retrieval + SVM (or the cache).
  struct FeuDirection;
  FeuDirection feu_direction(const ResolvedEdit& edit, const std::vector<float>& target, const Artifacts& artifacts,
                             uint64_t generation, bool* cached);
  struct FeuDirection {
    std::vector<float> normal;   // unit, [embed]
    nlohmann::json retrieval;    // diagnostics
    nlohmann::json svm;
    double retrieval_ms = 0;
    double svm_ms = 0;
  };

  std::shared_ptr<StyleGenerator> generator_;
  std::shared_ptr<TextEncoder> text_;
  std::shared_ptr<PhotoInverter> photos_;  // null: photo requests are unsupported
  double paste_feather_ = 0.1;
  EditDefaults defaults_;
  bool verify_ = true;
  std::string device_;  // where the models run ("cpu", "cuda:0")
  TextEmbeddingCache cache_;
  // Production instructions repeat: a repeated FEU instruction skips retrieval
  // and SVM. Keyed by artifact generation (bumped by every install), so a
  // reload never serves a direction of the previous corpus.
  LruCache<FeuDirection> directions_;
  mutable std::mutex artifacts_mutex_;
  std::shared_ptr<const Artifacts> artifacts_;
  uint64_t generation_ = 0;
};

}  // namespace feu::edit
