// Request validation and the config's edit: section.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "core/config.h"
#include "core/error.h"
#include "edit/options.h"

namespace feu::edit {
namespace {

ModelLimits limits() {
  ModelLimits l;
  l.w_dim = 4;
  l.num_ws = 3;
  l.total_channels = 10;
  l.corpus_size = 300;
  return l;
}

EditRequest valid() {
  EditRequest request;
  request.instruction = "blond hair";
  request.seed = 42;
  return request;
}

ErrorCode code_of(const EditRequest& request, const EditDefaults& defaults = {}) {
  try {
    resolve_request(request, defaults, limits());
  } catch (const Error& error) {
    return error.code();
  }
  ADD_FAILURE() << "request was accepted";
  return ErrorCode::kInternal;
}

TEST(ResolveRequest, FillsDefaults) {
  EditDefaults defaults;
  defaults.alphas = {-3, 3};
  const ResolvedEdit edit = resolve_request(valid(), defaults, limits());
  EXPECT_EQ(edit.alphas, (std::vector<double>{-3, 3}));
  EXPECT_DOUBLE_EQ(edit.beta, 0.15);
  EXPECT_DOUBLE_EQ(edit.psi, 0.7);
  EXPECT_EQ(edit.k_pos, 100);
  EXPECT_EQ(edit.negatives, NegativeSampling::kFarthest);
  EditRequest request = valid();
  request.alphas = {1};
  request.beta = 0.2;
  request.negatives = "random";
  const ResolvedEdit custom = resolve_request(request, defaults, limits());
  EXPECT_EQ(custom.alphas, std::vector<double>{1});
  EXPECT_DOUBLE_EQ(custom.beta, 0.2);
  EXPECT_EQ(custom.negatives, NegativeSampling::kRandom);
}

TEST(ResolveRequest, RejectsBadInstructionsAndMethods) {
  EditRequest request = valid();
  request.instruction = "  ";
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request.instruction = std::string(2000, 'a');
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request = valid();
  request.method = Method::kGlobal;
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);  // no neutral
  request.neutral = "face";
  EXPECT_NO_THROW(resolve_request(request, {}, limits()));
  request.method = Method::kFeu;  // feu takes no neutral
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request = valid();
  request.method = static_cast<Method>(7);
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  EXPECT_THROW(parse_method("stylegan"), Error);
  EXPECT_EQ(parse_method("global"), Method::kGlobal);
}

TEST(ResolveRequest, RejectsWrongLatentShapesAndNonFiniteValues) {
  EditRequest request = valid();
  request.latent_kind = LatentKind::kW;
  request.latent = std::vector<float>(5, 0.0f);
  EXPECT_EQ(code_of(request), ErrorCode::kShapeMismatch);
  request.latent = std::vector<float>(4, 0.0f);
  EXPECT_NO_THROW(resolve_request(request, {}, limits()));
  request.latent[2] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request.latent[2] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request.latent_kind = LatentKind::kWPlus;
  request.latent = std::vector<float>(12, 0.0f);
  EXPECT_NO_THROW(resolve_request(request, {}, limits()));
  request.latent = std::vector<float>(4, 0.0f);
  try {
    resolve_request(request, {}, limits());
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kShapeMismatch);
    EXPECT_NE(std::string(error.what()).find("[3, 4]"), std::string::npos) << error.what();
  }
  request.latent_kind = LatentKind::kS;
  request.latent = std::vector<float>(10, 0.0f);
  EXPECT_NO_THROW(resolve_request(request, {}, limits()));
  request = valid();
  request.seed = -1;
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
}

TEST(ResolveRequest, RejectsOutOfRangeStrengthsAndThresholds) {
  EditRequest request = valid();
  request.alphas = {3, 51};
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request.alphas = {std::nan("")};
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request.alphas = std::vector<double>(17, 1.0);
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request = valid();
  request.beta = 1.0;
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request.beta = -0.1;
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request.beta = 0.0;
  EXPECT_NO_THROW(resolve_request(request, {}, limits()));
  request = valid();
  request.psi = 3;
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request = valid();
  request.k_pos = 250;
  request.k_neg = 100;  // 350 > 300 images
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request.k_pos = 0;
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
  request = valid();
  request.negatives = "nearest";
  EXPECT_EQ(code_of(request), ErrorCode::kInvalidArgument);
}

TEST(EditDefaults, ReadsTheEditSectionIncludingBetaAuto) {
  const ConfigMap root = ConfigMap::parse(
      "edit: {alphas: [-3, 0, 3], beta: auto, min_channels: 12, k_pos: 50, negatives: random, templates: none}",
      "test.yaml");
  const EditDefaults defaults = EditDefaults::from_config(root.child("edit"));
  EXPECT_EQ(defaults.alphas, (std::vector<double>{-3, 0, 3}));
  EXPECT_TRUE(defaults.beta_auto);
  EXPECT_EQ(defaults.min_channels, 12);
  EXPECT_EQ(defaults.k_pos, 50);
  EXPECT_EQ(defaults.negatives, NegativeSampling::kRandom);
  EXPECT_EQ(defaults.templates, TemplateSet::kNone);
  const EditDefaults numeric = EditDefaults::from_config(ConfigMap::parse("edit: {beta: 0.2}", "t").child("edit"));
  EXPECT_FALSE(numeric.beta_auto);
  EXPECT_DOUBLE_EQ(numeric.beta, 0.2);
}

TEST(EditDefaults, RejectsUnknownKeysAndBadValues) {
  for (const char* text : {"edit: {alpah: 3}", "edit: {beta: often}", "edit: {beta: 1.5}", "edit: {negatives: near}",
                           "edit: {alphas: []}", "edit: {k_neg: 0}", "edit: {retrieval_threads: -1}"}) {
    try {
      EditDefaults::from_config(ConfigMap::parse(text, "t.yaml").child("edit"));
      ADD_FAILURE() << text << " was accepted";
    } catch (const Error& error) {
      EXPECT_EQ(error.code(), ErrorCode::kConfigError) << text << ": " << error.what();
    }
  }
}

TEST(EditDefaults, RetrievalThreadsZeroMeansOnePerHardwareThreadUpToEight) {
  const auto read = [](const char* text) {
    return EditDefaults::from_config(ConfigMap::parse(text, "t.yaml").child("edit"));
  };
  EXPECT_EQ(read("edit: {retrieval_threads: 3}").scan_threads(), 3);
  const int automatic = read("edit: {retrieval_threads: 0}").scan_threads();
  EXPECT_GE(automatic, 1);
  EXPECT_LE(automatic, 8);
  EXPECT_EQ(EditDefaults{}.scan_threads(), automatic);  // the default
}

}  // namespace
}  // namespace feu::edit
