// What one edit asks for and what it returns: the contract between the edit
// engine (common/edit), the daemon protocol (common/service) and the clients.
// Plain C++ (no torch) so that the service and clients compile fast.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace feu::edit {

enum class Method {
  kFeu,     // the paper's: retrieval + SVM normal, no neutral text
  kGlobal,  // StyleCLIP global directions: unit(T(target) - T(neutral))
};

enum class LatentKind {
  kSeed,   // z = numpy RandomState(seed).randn(1, z_dim), mapped with psi
  kW,      // latent = W, [w_dim]
  kWPlus,  // latent = W+, [num_ws, w_dim] row-major
  kS,      // latent = all style layers concatenated in synthesis order, [total_channels]
  kPhoto,  // photo = an encoded PNG/JPEG: a face found, aligned and inverted to W+ (e4e)
};

enum class ImageFormat { kPng, kJpeg };

// Ranges a request must respect: the engine checks them, and the daemon
// protocol derives its size limits from them (service::Limits).
struct EditLimits {
  static constexpr double kMaxAbsAlpha = 50.0;   // |α|; StyleCLIP's GUI stops at -15..25
  static constexpr double kMaxBeta = 1.0;        // β in [0, 1): |r| are cosines, β >= 1 keeps nothing
  static constexpr double kMaxAbsPsi = 2.0;      // truncation ψ
  static constexpr size_t kMaxInstructionBytes = 1000;  // any text; pre-check before CLIP's 75-token limit
  static constexpr size_t kMaxAlphas = 16;              // strengths per request
  static constexpr int64_t kMaxSeed = 4294967295;       // numpy RandomState accepts [0, 2^32 - 1]
  static constexpr size_t kMaxPhotoBytes = 32u << 20;   // an encoded photo (a 12 MP JPEG is 4-8 MB)
  static constexpr int64_t kMaxFaceIndex = 999;         // `face`: index in the detector's order
};

struct EditRequest {
  std::string instruction;                 // e.g. "blond hair"; non-empty
  Method method = Method::kFeu;
  std::string neutral;                     // required by kGlobal, e.g. "face"
  LatentKind latent_kind = LatentKind::kSeed;
  int64_t seed = 0;                        // for kSeed
  std::optional<double> psi;               // truncation for kSeed; default from config
  std::vector<float> latent;               // for kW / kWPlus / kS, flat float32
  std::vector<uint8_t> photo;              // for kPhoto: the file's bytes (PNG or JPEG)
  std::optional<int64_t> face;             // for kPhoto: which face (detector order); unset = the largest
  bool paste = false;                      // for kPhoto: return the edits pasted back into the photo
  std::vector<double> alphas;              // strengths; empty = config default
  std::optional<double> beta;              // threshold; unset = config default
  bool beta_auto = false;                  // pick the largest beta keeping min_channels
  std::optional<int64_t> k_pos;            // positives retrieved (feu)
  std::optional<int64_t> k_neg;            // negatives (feu)
  std::optional<std::string> negatives;    // "farthest" or "random"
  ImageFormat format = ImageFormat::kPng;
  bool return_original = false;            // also encode the unedited image
  bool return_styles = false;              // also return the edited S codes
  bool grid = false;                       // one image: original and edits side by side
  std::optional<int64_t> size;             // a preview: images at this power-of-two side (< the generator's)
};

struct EncodedImage {
  ImageFormat format = ImageFormat::kPng;
  std::vector<uint8_t> bytes;              // the encoded file
  int width = 0;
  int height = 0;
  double alpha = 0;                        // strength it shows (0 for the original)
};

// Why one request of a batch failed (Engine::edit_batch): code is the stable
// feu::error_code_name ("no_channels", ...), message the one-line explanation.
struct EditError {
  std::string code;
  std::string message;
};

struct EditResult {
  std::vector<EncodedImage> images;        // one per alpha (or one grid)
  // The unedited image; for a photo always present: the reconstruction (the
  // inversion rendered, α = 0), pasted like the edits when they are.
  std::optional<EncodedImage> original;
  // For a photo: the W+ it was inverted to, [wplus_rows, w_dim] row-major, so
  // a client can edit it again (latent kWPlus) without sending the photo.
  std::vector<float> wplus;
  int64_t wplus_rows = 0;
  std::vector<float> edited_styles;        // [alphas, total_channels] when asked
  int64_t total_channels = 0;
  // Retrieved ids/scores, SVM accuracy/margin, beta used, channels changed,
  // top channels by |Δs|, per-stage timings in ms, artifact version.
  nlohmann::json diagnostics;
  // Set when this request failed inside Engine::edit_batch (the others ran);
  // images are then empty. Engine::edit throws instead.
  std::optional<EditError> error;
};

const char* method_name(Method method);
const char* latent_kind_name(LatentKind kind);
const char* image_format_name(ImageFormat format);

// Inverses of the names above ("feu"/"global", "seed"/"w"/"wplus"/"s"/"photo",
// "png"/"jpeg"|"jpg"); anything else is an invalid_argument error naming the
// accepted values.
Method parse_method(const std::string& name);
LatentKind parse_latent_kind(const std::string& name);
ImageFormat parse_image_format(const std::string& name);

}  // namespace feu::edit
