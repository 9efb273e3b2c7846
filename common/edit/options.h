// Edit defaults (the config's `edit:` section) and request validation: every
// request is resolved against the defaults and the loaded models' shapes into
// a ResolvedEdit, or rejected with a typed feu::Error. Plain C++ so the daemon
// can validate before queueing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/config.h"
#include "edit/request.h"
#include "edit/templates.h"

namespace feu::edit {

enum class NegativeSampling {
  kFarthest,  // the k_neg least similar corpus images (the paper's wording)
  kRandom,    // a seeded random sample of the images that are not positives
};
NegativeSampling parse_negative_sampling(const std::string& name);
const char* negative_sampling_name(NegativeSampling sampling);

// Truncation ψ of a face from a seed when none is asked for: StyleCLIP's 0.7,
// for `feu edit` (the config's edit.psi defaults to it) and `feu-indexer
// generate` alike, so both show the same face for a seed. NVlabs'
// generate.py defaults to 1 (untruncated): ask for it with --psi 1.
inline constexpr double kDefaultPsi = 0.7;

struct EditDefaults {
  std::vector<double> alphas{4.1};     // StyleCLIP's notebook
  double beta = 0.15;                  // StyleCLIP's notebook
  bool beta_auto = false;              // `beta: auto`
  double beta_auto_low = 0.08;         // StyleCLIP's β slider range
  double beta_auto_high = 0.30;
  int64_t min_channels = 20;           // auto β keeps at least this many (StyleCLIP GUI, ffhq)
  int64_t k_pos = 100;
  int64_t k_neg = 100;
  NegativeSampling negatives = NegativeSampling::kFarthest;
  uint64_t negatives_seed = 0;         // for kRandom: the same request picks the same negatives
  TemplateSet templates = TemplateSet::kImagenet;
  double psi = kDefaultPsi;            // truncation for seeds
  size_t text_cache_size = 1024;       // LRU entries of text embeddings
  size_t direction_cache_size = 256;   // LRU entries of FEU directions (retrieval + SVM results)
  int64_t top_channels = 10;           // channels listed in diagnostics
  int retrieval_threads = 0;           // threads scanning the corpus; 0: one per hardware thread, up to 8
  int png_compression = 1;             // fast
  int jpeg_quality = 92;

  // Reads the keys above from an `edit:` section and calls finish() on it.
  // `beta` is a number or the string "auto".
  static EditDefaults from_config(const ConfigMap& edit_section);
  // Range checks (config_error naming the key).
  void validate(const std::string& origin) const;
  // retrieval_threads with 0 resolved. The daemon runs one job at a time,
  // so the memory-bound scan may take the cores; eight streams already
  // reach most servers' DRAM bandwidth.
  int scan_threads() const;
};

// The shapes of the loaded models and artifacts a request must fit.
struct ModelLimits {
  int64_t w_dim = 0;
  int64_t num_ws = 0;
  int64_t total_channels = 0;
  int64_t corpus_size = 0;  // images in the retrieval index
  bool photos = false;      // a face encoder is loaded (photo requests can be served)
  int resolution = 0;       // the generator's image side (previews are smaller powers of two)
};

// A request with every default filled in and every value checked.
struct ResolvedEdit {
  std::string instruction;
  Method method = Method::kFeu;
  std::string neutral;
  LatentKind latent_kind = LatentKind::kSeed;
  int64_t seed = 0;
  double psi = kDefaultPsi;
  std::vector<float> latent;
  std::optional<int64_t> face;  // kPhoto (the photo's bytes stay in the request)
  int size = 0;                 // the images' side: the generator's resolution, or a preview's
  bool paste = false;           // kPhoto
  std::vector<double> alphas;
  double beta = 0.15;
  bool beta_auto = false;
  int64_t k_pos = 100;
  int64_t k_neg = 100;
  NegativeSampling negatives = NegativeSampling::kFarthest;
  ImageFormat format = ImageFormat::kPng;
  bool return_original = false;
  bool return_styles = false;
  bool grid = false;
};

// Errors (invalid_argument unless noted): empty or over-long instruction,
// global without neutral (or feu with one), no/too many alphas, |α| > 50,
// β outside [0, 1), |ψ| > 2, seed outside numpy's range, k_pos/k_neg < 1 or
// more than the corpus holds, unknown negatives, latent of the wrong size
// (shape_mismatch, naming the expected shape), NaN/inf in the latent; a photo
// that is empty, over EditLimits::kMaxPhotoBytes or neither PNG nor JPEG
// (corrupt_file), a photo where no face encoder is loaded (unsupported), face
// or paste without a photo.
ResolvedEdit resolve_request(const EditRequest& request, const EditDefaults& defaults, const ModelLimits& limits);

}  // namespace feu::edit
