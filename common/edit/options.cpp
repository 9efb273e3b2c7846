#include "edit/options.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "core/text.h"
#include "image/codec.h"

namespace feu::edit {
namespace {

std::string number(double value) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%g", value);
  return buffer;
}

bool is_blank(const std::string& text) {
  for (char ch : text) {
    if (!std::isspace(static_cast<unsigned char>(ch))) return false;
  }
  return true;
}

void check_alpha(double alpha, const std::string& where) {
  check(std::isfinite(alpha) && std::fabs(alpha) <= EditLimits::kMaxAbsAlpha, ErrorCode::kInvalidArgument,
        where + " alpha " + number(alpha) + " is out of range (expected |alpha| <= " +
            number(EditLimits::kMaxAbsAlpha) + ")");
}

void check_beta(double beta, const std::string& where) {
  check(std::isfinite(beta) && beta >= 0 && beta < EditLimits::kMaxBeta, ErrorCode::kInvalidArgument,
        where + " beta " + number(beta) + " is out of range (expected 0 <= beta < 1)");
}

}  // namespace

NegativeSampling parse_negative_sampling(const std::string& name) {
  if (name == "farthest") return NegativeSampling::kFarthest;
  if (name == "random") return NegativeSampling::kRandom;
  throw Error(ErrorCode::kInvalidArgument, "unknown negatives " + quote_text(name) + " (expected farthest or random)");
}

const char* negative_sampling_name(NegativeSampling sampling) {
  return sampling == NegativeSampling::kFarthest ? "farthest" : "random";
}

EditDefaults EditDefaults::from_config(const ConfigMap& edit) {
  EditDefaults out;
  out.alphas = edit.get<std::vector<double>>("alphas", out.alphas);
  if (edit.has("beta")) {
    const std::string beta = edit.require<std::string>("beta");
    if (beta == "auto") {
      out.beta_auto = true;
    } else {
      try {
        size_t used = 0;
        out.beta = std::stod(beta, &used);
        if (used != beta.size()) throw std::invalid_argument(beta);
      } catch (const std::exception&) {
        edit.fail("beta", "must be a number or auto, got " + quote_text(beta));
      }
    }
  }
  out.beta_auto_low = edit.get<double>("beta_auto_low", out.beta_auto_low);
  out.beta_auto_high = edit.get<double>("beta_auto_high", out.beta_auto_high);
  out.min_channels = edit.get<int64_t>("min_channels", out.min_channels);
  out.k_pos = edit.get<int64_t>("k_pos", out.k_pos);
  out.k_neg = edit.get<int64_t>("k_neg", out.k_neg);
  const std::string negatives = edit.get<std::string>("negatives", negative_sampling_name(out.negatives));
  try {
    out.negatives = parse_negative_sampling(negatives);
  } catch (const Error& error) {
    edit.fail("negatives", error.what());
  }
  out.negatives_seed = edit.get<uint64_t>("negatives_seed", out.negatives_seed);
  const std::string templates = edit.get<std::string>("templates", template_set_name(out.templates));
  try {
    out.templates = parse_template_set(templates);
  } catch (const Error& error) {
    edit.fail("templates", error.what());
  }
  out.psi = edit.get<double>("psi", out.psi);
  out.text_cache_size = edit.get<size_t>("text_cache_size", out.text_cache_size);
  out.direction_cache_size = edit.get<size_t>("direction_cache_size", out.direction_cache_size);
  out.top_channels = edit.get<int64_t>("top_channels", out.top_channels);
  out.retrieval_threads = edit.get<int>("retrieval_threads", out.retrieval_threads);
  out.png_compression = edit.get<int>("png_compression", out.png_compression);
  out.jpeg_quality = edit.get<int>("jpeg_quality", out.jpeg_quality);
  edit.finish();
  out.validate(edit.file());
  return out;
}

void EditDefaults::validate(const std::string& origin) const {
  auto fail = [&](const std::string& key, const std::string& message) {
    throw Error(ErrorCode::kConfigError, origin + ": key 'edit." + key + "' " + message);
  };
  if (alphas.empty()) fail("alphas", "must list at least one strength");
  if (alphas.size() > EditLimits::kMaxAlphas)
    fail("alphas", "lists " + std::to_string(alphas.size()) + " strengths (at most " +
                       std::to_string(EditLimits::kMaxAlphas) + ")");
  for (double alpha : alphas) {
    if (!(std::fabs(alpha) <= EditLimits::kMaxAbsAlpha)) fail("alphas", "has " + number(alpha) + " (expected |alpha| <= 50)");
  }
  if (!(beta >= 0 && beta < EditLimits::kMaxBeta)) fail("beta", "is " + number(beta) + " (expected 0 <= beta < 1)");
  if (!(beta_auto_low >= 0 && beta_auto_low <= beta_auto_high && beta_auto_high < EditLimits::kMaxBeta))
    fail("beta_auto_low", "and beta_auto_high must satisfy 0 <= low <= high < 1");
  if (min_channels < 1) fail("min_channels", "must be at least 1");
  if (k_pos < 1) fail("k_pos", "must be at least 1");
  if (k_neg < 1) fail("k_neg", "must be at least 1");
  if (!(std::fabs(psi) <= EditLimits::kMaxAbsPsi)) fail("psi", "is " + number(psi) + " (expected |psi| <= 2)");
  if (top_channels < 0) fail("top_channels", "must be >= 0");
  if (retrieval_threads < 0 || retrieval_threads > 256) {
    fail("retrieval_threads", "must be in 0..256 (0: one per hardware thread)");
  }
  if (png_compression < 0 || png_compression > 9) fail("png_compression", "must be in 0..9");
  if (jpeg_quality < 1 || jpeg_quality > 100) fail("jpeg_quality", "must be in 1..100");
}

int EditDefaults::scan_threads() const {
  if (retrieval_threads > 0) return retrieval_threads;
  const unsigned hardware = std::thread::hardware_concurrency();
  return static_cast<int>(std::clamp(hardware, 1u, 8u));
}

ResolvedEdit resolve_request(const EditRequest& request, const EditDefaults& defaults, const ModelLimits& limits) {
  ResolvedEdit out;
  check(!is_blank(request.instruction), ErrorCode::kInvalidArgument, "the instruction is empty (expected text such as \"blond hair\")");
  check(request.instruction.size() <= EditLimits::kMaxInstructionBytes, ErrorCode::kInvalidArgument,
        "the instruction is " + std::to_string(request.instruction.size()) + " bytes long (CLIP reads at most 75 tokens; at most " +
            std::to_string(EditLimits::kMaxInstructionBytes) + " bytes are accepted)");
  out.instruction = request.instruction;
  out.method = request.method;
  if (request.method == Method::kGlobal) {
    check(!is_blank(request.neutral), ErrorCode::kInvalidArgument,
          "method global needs a neutral text (e.g. \"face\"); method feu does not");
  } else {
    check(request.method == Method::kFeu, ErrorCode::kInvalidArgument, "unknown edit method (expected feu or global)");
    check(request.neutral.empty(), ErrorCode::kInvalidArgument,
          "a neutral text is only used by method global; method feu edits from the instruction alone");
  }
  check(request.neutral.size() <= EditLimits::kMaxInstructionBytes, ErrorCode::kInvalidArgument,
        "the neutral text is longer than " + std::to_string(EditLimits::kMaxInstructionBytes) + " bytes");
  out.neutral = request.neutral;

  out.latent_kind = request.latent_kind;
  switch (request.latent_kind) {
    case LatentKind::kSeed:
      check(request.seed >= 0 && request.seed <= EditLimits::kMaxSeed, ErrorCode::kInvalidArgument,
            "seed " + std::to_string(request.seed) + " is out of range (expected 0..4294967295)");
      check(request.latent.empty(), ErrorCode::kInvalidArgument, "a seed request carries no latent values");
      break;
    case LatentKind::kW:
    case LatentKind::kWPlus:
    case LatentKind::kS: {
      int64_t expected = 0;
      std::string shape;
      if (request.latent_kind == LatentKind::kW) {
        expected = limits.w_dim;
        shape = "[" + std::to_string(limits.w_dim) + "]";
      } else if (request.latent_kind == LatentKind::kWPlus) {
        expected = limits.num_ws * limits.w_dim;
        shape = "[" + std::to_string(limits.num_ws) + ", " + std::to_string(limits.w_dim) + "]";
      } else {
        expected = limits.total_channels;
        shape = "[" + std::to_string(limits.total_channels) + "]";
      }
      check(static_cast<int64_t>(request.latent.size()) == expected, ErrorCode::kShapeMismatch,
            std::string("latent of kind ") + latent_kind_name(request.latent_kind) + " has " +
                std::to_string(request.latent.size()) + " values, expected " + shape + " = " +
                std::to_string(expected) + " for this generator");
      for (size_t i = 0; i < request.latent.size(); ++i) {
        check(std::isfinite(request.latent[i]), ErrorCode::kInvalidArgument,
              "latent value " + std::to_string(i) + " is " + (std::isnan(request.latent[i]) ? "NaN" : "infinite") +
                  " (expected finite numbers)");
      }
      break;
    }
    case LatentKind::kPhoto:
      check(limits.photos, ErrorCode::kUnsupported,
            "this engine has no face encoder, so it cannot edit photos (set models.e4e in its config)");
      check(request.latent.empty(), ErrorCode::kInvalidArgument, "a photo request carries no latent values");
      check(!request.photo.empty(), ErrorCode::kInvalidArgument, "the photo is empty (expected a PNG or JPEG file)");
      check(request.photo.size() <= EditLimits::kMaxPhotoBytes, ErrorCode::kInvalidArgument,
            "the photo is " + std::to_string(request.photo.size()) + " bytes (at most " +
                std::to_string(EditLimits::kMaxPhotoBytes) + ")");
      check(image::sniff_format(request.photo.data(), request.photo.size()) != nullptr, ErrorCode::kCorruptFile,
            "the photo is not a PNG or JPEG file (its first bytes are neither signature)");
      if (request.face) {
        check(*request.face >= 0 && *request.face <= EditLimits::kMaxFaceIndex, ErrorCode::kInvalidArgument,
              "face " + std::to_string(*request.face) + " is out of range (expected 0.." +
                  std::to_string(EditLimits::kMaxFaceIndex) + ", in the detector's order)");
      }
      break;
    default:
      throw Error(ErrorCode::kInvalidArgument, "unknown latent kind (expected seed, w, wplus, s or photo)");
  }
  if (request.latent_kind != LatentKind::kPhoto) {
    check(request.photo.empty(), ErrorCode::kInvalidArgument,
          std::string("a ") + latent_kind_name(request.latent_kind) + " request carries no photo");
    check(!request.face, ErrorCode::kInvalidArgument, "face selects a face of a photo: it needs a photo");
    check(!request.paste, ErrorCode::kInvalidArgument, "paste puts the edit back into a photo: it needs a photo");
  }
  out.face = request.face;
  out.paste = request.paste;
  out.size = limits.resolution;
  if (request.size) {
    const int64_t size = *request.size;
    check(size >= 4 && size <= limits.resolution && (size & (size - 1)) == 0, ErrorCode::kInvalidArgument,
          "size " + std::to_string(size) + " is not a preview size of this generator (expected a power of two from 4 to " +
              std::to_string(limits.resolution) + ")");
    out.size = static_cast<int>(size);
  }
  out.seed = request.seed;
  out.latent = request.latent;
  out.psi = request.psi.value_or(defaults.psi);
  check(std::isfinite(out.psi) && std::fabs(out.psi) <= EditLimits::kMaxAbsPsi, ErrorCode::kInvalidArgument,
        "psi " + number(out.psi) + " is out of range (expected |psi| <= 2)");

  out.alphas = request.alphas.empty() ? defaults.alphas : request.alphas;
  check(out.alphas.size() <= EditLimits::kMaxAlphas, ErrorCode::kInvalidArgument,
        "the request lists " + std::to_string(out.alphas.size()) + " strengths (at most " +
            std::to_string(EditLimits::kMaxAlphas) + ")");
  for (double alpha : out.alphas) check_alpha(alpha, "strength");

  out.beta_auto = request.beta_auto || (!request.beta && defaults.beta_auto);
  out.beta = request.beta.value_or(defaults.beta);
  check(!(request.beta_auto && request.beta), ErrorCode::kInvalidArgument,
        "give either beta or beta_auto, not both");
  check_beta(out.beta, "threshold");

  out.k_pos = request.k_pos.value_or(defaults.k_pos);
  out.k_neg = request.k_neg.value_or(defaults.k_neg);
  out.negatives = request.negatives ? parse_negative_sampling(*request.negatives) : defaults.negatives;
  if (out.method == Method::kFeu) {
    check(out.k_pos >= 1 && out.k_neg >= 1, ErrorCode::kInvalidArgument,
          "k_pos and k_neg must be at least 1 (got " + std::to_string(out.k_pos) + " and " +
              std::to_string(out.k_neg) + ")");
    check(out.k_pos + out.k_neg <= limits.corpus_size, ErrorCode::kInvalidArgument,
          "k_pos + k_neg = " + std::to_string(out.k_pos + out.k_neg) + " exceeds the " +
              std::to_string(limits.corpus_size) + " images of the corpus index");
  }
  out.format = request.format;
  check(out.format == ImageFormat::kPng || out.format == ImageFormat::kJpeg, ErrorCode::kInvalidArgument,
        "unknown image format (expected png or jpeg)");
  out.return_original = request.return_original;
  out.return_styles = request.return_styles;
  out.grid = request.grid;
  return out;
}

}  // namespace feu::edit
