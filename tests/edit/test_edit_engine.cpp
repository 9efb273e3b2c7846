// The engine end to end, in the known-truth world of known_truth_world.h:
// behaviour of edit/edit_batch/retrieve/reload, typed errors, and the paper's
// claims measured (printed to the log and recorded as test properties).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "edit/engine.h"
#include "image/codec.h"
#include "image/pillow_resample.h"
#include "known_truth_world.h"

namespace feu::edit {
namespace {

using toy::kAttributes;
using toy::kAttributeNames;

toy::ToyWorld& world() {
  static toy::ToyWorld shared;  // built once per test binary (~0.1 s)
  return shared;
}

std::unique_ptr<Engine> make_engine(EditDefaults defaults = {}) {
  return Engine::from_parts(world().generator, world().text, world().artifacts, defaults);
}

// Dataset std of each attribute, to express changes in units of natural variation.
std::array<double, kAttributes> attribute_std() {
  std::array<double, kAttributes> sum{}, sum_sq{};
  const int n = 500;
  for (int i = 0; i < n; ++i) {
    const auto a = toy::measure(world().generator->render_one(world().generator->styles_from_seed(i, 1.0).data()));
    for (int k = 0; k < kAttributes; ++k) sum[k] += a[k], sum_sq[k] += a[k] * a[k];
  }
  std::array<double, kAttributes> out{};
  for (int k = 0; k < kAttributes; ++k) out[k] = std::sqrt(sum_sq[k] / n - (sum[k] / n) * (sum[k] / n));
  return out;
}

struct Effect {
  std::array<double, kAttributes> mean_change{};  // mean (edited - original) / dataset std
  double target = 0;                              // mean change of the target attribute
  double off_target = 0;                          // mean over the other attributes of mean |change|
  int64_t channels = 0;
};

// Edits faces of seeds 5000.. toward attribute `target` and measures every attribute.
Effect measure_edit(Engine& engine, int target, Method method, const std::string& neutral, double alpha, int faces = 24) {
  static const std::array<double, kAttributes> stds = attribute_std();
  Effect effect;
  std::array<double, kAttributes> abs_change{};
  for (int face = 0; face < faces; ++face) {
    EditRequest request;
    request.instruction = kAttributeNames[target];
    request.method = method;
    request.neutral = neutral;
    request.seed = 5000 + face;
    request.psi = 1.0;
    request.alphas = {alpha};
    request.return_original = true;
    const EditResult result = engine.edit(request);
    const image::Image original = image::decode_bytes(result.original->bytes.data(), result.original->bytes.size(), "original");
    const image::Image edited = image::decode_bytes(result.images[0].bytes.data(), result.images[0].bytes.size(), "edited");
    const auto before = toy::measure(original), after = toy::measure(edited);
    for (int k = 0; k < kAttributes; ++k) {
      const double change = (after[k] - before[k]) / stds[k];
      effect.mean_change[k] += change / faces;
      abs_change[k] += std::fabs(change) / faces;
    }
    effect.channels = result.diagnostics["channels_changed"].get<int64_t>();
  }
  effect.target = effect.mean_change[target];
  for (int k = 0; k < kAttributes; ++k) {
    if (k != target) effect.off_target += abs_change[k] / (kAttributes - 1);
  }
  return effect;
}

std::string describe(const Effect& e) {
  char buffer[256];
  std::snprintf(buffer, sizeof buffer, "target %+.3f, off-target |.| %.3f, per attribute [%+.3f %+.3f %+.3f %+.3f], channels %lld",
                e.target, e.off_target, e.mean_change[0], e.mean_change[1], e.mean_change[2], e.mean_change[3],
                static_cast<long long>(e.channels));
  return buffer;
}

TEST(KnownTruthWorld, Fs3RowsOfAttributeChannelsAreDistinctUnitDirections) {
  const toy::ToyWorld& w = world();
  // The attribute channels' measured Δi are unit and nearly orthogonal to each other.
  std::vector<const float*> rows;
  for (int k = 0; k < kAttributes; ++k) {
    const int64_t channel = w.generator->attribute_channel(k);
    const auto it = std::find(w.covered.begin(), w.covered.end(), channel);
    ASSERT_NE(it, w.covered.end());
    rows.push_back(&w.fs3[(it - w.covered.begin()) * toy::kEmbed]);
    EXPECT_NEAR(norm(rows.back(), toy::kEmbed), 1.0, 1e-5);
  }
  for (int a = 0; a < kAttributes; ++a)
    for (int b = a + 1; b < kAttributes; ++b) EXPECT_LT(std::fabs(dot(rows[a], rows[b], toy::kEmbed)), 0.3);
}

TEST(KnownTruthWorld, FeuEditRaisesTheTargetAttributeAndBarelyMovesTheOthers) {
  auto engine = make_engine();
  for (int target = 0; target < kAttributes; ++target) {
    const Effect feu = measure_edit(*engine, target, Method::kFeu, "", 4.0);
    std::printf("[known-truth] feu  '%s' alpha 4: %s\n", kAttributeNames[target], describe(feu).c_str());
    RecordProperty(std::string("feu_target_") + std::to_string(target), std::to_string(feu.target));
    RecordProperty(std::string("feu_off_target_") + std::to_string(target), std::to_string(feu.off_target));
    EXPECT_GT(feu.target, 1.0) << kAttributeNames[target];                 // at least one natural std up
    EXPECT_LT(feu.off_target, 0.25 * feu.target) << kAttributeNames[target];
    // A negative strength lowers it.
    const Effect reverse = measure_edit(*engine, target, Method::kFeu, "", -4.0, 8);
    EXPECT_LT(reverse.target, -1.0) << kAttributeNames[target];
  }
}

TEST(KnownTruthWorld, FeuWithoutNeutralMatchesOrBeatsGlobalWithAWrongNeutral) {
  auto engine = make_engine();
  // Wrong neutral: it names another attribute, so unit(T(target) - T(neutral)) also pushes that one down.
  const int pairs[][2] = {{0, 2}, {1, 3}, {2, 0}, {3, 1}};
  for (const auto& pair : pairs) {
    const int target = pair[0];
    const std::string wrong = std::string("face with ") + kAttributeNames[pair[1]];
    const Effect feu = measure_edit(*engine, target, Method::kFeu, "", 4.0);
    const Effect global_right = measure_edit(*engine, target, Method::kGlobal, "face", 4.0);
    const Effect global_wrong = measure_edit(*engine, target, Method::kGlobal, wrong, 4.0);
    std::printf("[known-truth] '%s': feu            %s\n", kAttributeNames[target], describe(feu).c_str());
    std::printf("[known-truth] '%s': global 'face'  %s\n", kAttributeNames[target], describe(global_right).c_str());
    std::printf("[known-truth] '%s': global '%s' %s\n", kAttributeNames[target], wrong.c_str(), describe(global_wrong).c_str());
    const double feu_selectivity = feu.target / (feu.off_target + 1e-3);
    const double wrong_selectivity = global_wrong.target / (global_wrong.off_target + 1e-3);
    RecordProperty(std::string("selectivity_feu_") + std::to_string(target), std::to_string(feu_selectivity));
    RecordProperty(std::string("selectivity_global_wrong_") + std::to_string(target), std::to_string(wrong_selectivity));
    EXPECT_LE(feu.off_target, global_wrong.off_target + 0.02) << kAttributeNames[target];
    EXPECT_GE(feu_selectivity, wrong_selectivity) << kAttributeNames[target];
    EXPECT_GE(feu.target, 0.9 * global_wrong.target) << kAttributeNames[target];
    // The wrongly named attribute really moves under global (the trap is real).
    EXPECT_LT(global_wrong.mean_change[pair[1]], -0.5) << wrong;
  }
}

TEST(Engine, EditReportsDiagnosticsAndBatchesAlphas) {
  auto engine = make_engine();
  EditRequest request;
  request.instruction = "red hair";
  request.seed = 3;
  request.alphas = {-3, 0, 3, 6};
  request.return_styles = true;
  const EditResult result = engine->edit(request);
  ASSERT_EQ(result.images.size(), 4u);
  EXPECT_FALSE(result.original);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(result.images[i].alpha, request.alphas[i]);
    EXPECT_EQ(result.images[i].width, toy::kSide);
    ASSERT_GT(result.images[i].bytes.size(), 8u);
    EXPECT_EQ(result.images[i].bytes[1], 'P');  // \x89PNG
  }
  const auto& d = result.diagnostics;
  EXPECT_EQ(d["method"], "feu");
  EXPECT_EQ(d["artifact_version"], "toy-1");
  EXPECT_EQ(d["retrieval"]["positives"].size(), 100u);
  EXPECT_EQ(d["retrieval"]["negatives"].size(), 100u);
  EXPECT_GE(d["svm"]["accuracy"].get<double>(), 0.9);
  EXPECT_GT(d["svm"]["margin"].get<double>(), 0.0);
  EXPECT_GT(d["channels_changed"].get<int64_t>(), 0);
  EXPECT_EQ(d["top_channels"][0]["channel"], world().generator->attribute_channel(0));
  EXPECT_EQ(d["top_channels"][0]["layer"], "b4.conv1");
  for (const char* stage : {"text", "retrieval", "svm", "mapping", "synthesis", "encoding", "total"}) {
    EXPECT_TRUE(d["timings_ms"].contains(stage)) << stage;
  }
  // Retrieved positives are redder than negatives (scores in order).
  EXPECT_GT(d["retrieval"]["positives"][0]["score"].get<double>(), d["retrieval"]["negatives"][0]["score"].get<double>());
  // Edited codes: s + α·Δs; α = 0 is the original code.
  const int64_t total = result.total_channels;
  ASSERT_EQ(result.edited_styles.size(), static_cast<size_t>(4 * total));
  const std::vector<float> base = world().generator->styles_from_seed(3, 0.7);
  for (int64_t c = 0; c < total; ++c) EXPECT_EQ(result.edited_styles[1 * total + c], base[c]);
  // Only covered conv channels change; toRGB channels never do.
  for (int64_t c : {6, 7, 8, 21, 22, 23}) EXPECT_EQ(result.edited_styles[3 * total + c], base[c]);
  // Same request again: the text embedding comes from the cache.
  const int64_t calls = world().text->calls();
  const EditResult again = engine->edit(request);
  EXPECT_EQ(world().text->calls(), calls);
  EXPECT_EQ(again.diagnostics["text_cache"], "hit");
  EXPECT_EQ(result.diagnostics["direction_cache"], "miss");
  EXPECT_EQ(again.diagnostics["direction_cache"], "hit");  // retrieval + SVM skipped
  EXPECT_EQ(again.diagnostics["svm"], result.diagnostics["svm"]);
  EXPECT_EQ(again.diagnostics["channels_changed"], result.diagnostics["channels_changed"]);
  // Other retrieval settings are a different direction.
  EditRequest other = request;
  other.k_pos = 50;
  EXPECT_EQ(engine->edit(other).diagnostics["direction_cache"], "miss");
  EXPECT_EQ(again.images[3].bytes, result.images[3].bytes);  // deterministic
}

TEST(Engine, GridIsOriginalAndEditsSideBySide) {
  auto engine = make_engine();
  EditRequest request;
  request.instruction = "blue skin";
  request.seed = 9;
  request.alphas = {2, 4};
  request.grid = true;
  request.format = ImageFormat::kJpeg;
  const EditResult result = engine->edit(request);
  ASSERT_EQ(result.images.size(), 1u);
  EXPECT_EQ(result.images[0].width, 3 * toy::kSide);
  // The panels, with the instruction above and each panel's label below (14 px strips).
  EXPECT_EQ(result.images[0].height, toy::kSide + 2 * 14);
  EXPECT_EQ(result.images[0].bytes[0], 0xFF);  // JPEG SOI
  EXPECT_FALSE(result.diagnostics.contains("grid_labels")) << result.diagnostics["grid_labels"];

  // In PNG, the panel row is exactly the original and the edits side by side.
  request.format = ImageFormat::kPng;
  request.return_original = true;
  const EditResult png = engine->edit(request);
  const image::Image grid = image::decode_bytes(png.images[0].bytes.data(), png.images[0].bytes.size(), "grid");
  const image::Image original = image::decode_bytes(png.original->bytes.data(), png.original->bytes.size(), "o");
  for (int y = 0; y < toy::kSide; ++y)
    for (int x = 0; x < toy::kSide; ++x)
      for (int c = 0; c < 3; ++c)
        ASSERT_EQ(grid.rgb[((y + 14) * grid.width + x) * 3 + c], original.rgb[(y * toy::kSide + x) * 3 + c]);
  // The strips carry text: bright pixels on the dark background.
  int bright_above = 0, bright_below = 0;
  for (int y = 0; y < 14; ++y)
    for (int x = 0; x < grid.width; ++x) {
      bright_above += grid.rgb[(y * grid.width + x) * 3] > 128;
      bright_below += grid.rgb[((y + 14 + toy::kSide) * grid.width + x) * 3] > 128;
    }
  EXPECT_GT(bright_above, 10);
  EXPECT_GT(bright_below, 10);
}

TEST(Engine, APreviewOfAGeneratorWithoutOneIsTheFullImageScaledDown) {
  auto engine = make_engine();
  EditRequest full;
  full.instruction = "blue skin";
  full.seed = 9;
  full.alphas = {2};
  EditRequest preview = full;
  preview.size = 8;
  // One batch, two sizes: each request gets its own.
  const std::vector<EditResult> results = engine->edit_batch({full, preview});
  const image::Image big = image::decode_bytes(results[0].images[0].bytes.data(), results[0].images[0].bytes.size(), "a");
  const image::Image small = image::decode_bytes(results[1].images[0].bytes.data(), results[1].images[0].bytes.size(), "b");
  EXPECT_EQ(big.width, toy::kSide);
  EXPECT_EQ(small.width, 8);
  EXPECT_EQ(small.rgb, image::pillow_resize(big, 8, 8, image::PillowFilter::kLanczos).rgb);
}

TEST(Engine, BatchSharesOneSynthesisAndIsolatesFailures) {
  auto engine = make_engine();
  std::vector<EditRequest> requests(3);
  requests[0].instruction = "red hair";
  requests[0].alphas = {1, 2};
  requests[1].instruction = "green background";
  requests[1].beta = 0.99;  // nothing survives
  requests[2].instruction = "bright eyes";
  requests[2].method = Method::kGlobal;
  requests[2].neutral = "face";
  requests[2].return_original = true;
  const std::vector<EditResult> results = engine->edit_batch(requests);
  ASSERT_EQ(results.size(), 3u);
  EXPECT_FALSE(results[0].error);
  EXPECT_EQ(results[0].images.size(), 2u);
  ASSERT_TRUE(results[1].error);
  EXPECT_EQ(results[1].error->code, "no_channels");
  EXPECT_TRUE(results[1].images.empty());
  EXPECT_FALSE(results[2].error);
  EXPECT_TRUE(results[2].original);
  EXPECT_EQ(results[0].diagnostics["batch_images"], 4);  // 2 + (1 + original)
  EXPECT_EQ(results[2].diagnostics["method"], "global");
}

// Mixed requests: PNG and JPEG, a grid, originals, a failure in the middle.
std::vector<EditRequest> mixed_batch(int seed) {
  std::vector<EditRequest> requests(4);
  requests[0].instruction = "red hair";
  requests[0].alphas = {1, 2, 3};
  requests[0].return_original = true;
  requests[1].instruction = "green background";
  requests[1].beta = 0.99;  // nothing survives
  requests[2].instruction = "blue skin";
  requests[2].alphas = {2, 4};
  requests[2].grid = true;
  requests[2].format = ImageFormat::kJpeg;
  requests[3].instruction = "bright eyes";
  requests[3].format = ImageFormat::kJpeg;
  for (size_t i = 0; i < requests.size(); ++i) requests[i].seed = seed + static_cast<int64_t>(i);
  return requests;
}

void expect_same_images(const std::vector<EditResult>& a, const std::vector<EditResult>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].error.has_value(), b[i].error.has_value()) << i;
    ASSERT_EQ(a[i].images.size(), b[i].images.size()) << i;
    for (size_t k = 0; k < a[i].images.size(); ++k) {
      EXPECT_EQ(a[i].images[k].bytes, b[i].images[k].bytes) << i << "/" << k;
      EXPECT_EQ(a[i].images[k].alpha, b[i].images[k].alpha) << i << "/" << k;
    }
    ASSERT_EQ(a[i].original.has_value(), b[i].original.has_value()) << i;
    if (a[i].original) {
      EXPECT_EQ(a[i].original->bytes, b[i].original->bytes) << i;
    }
  }
}

TEST(Engine, ABatchFinishedOnAnotherThreadWhileTheNextRendersIsTheSame) {
  auto engine = make_engine();
  const std::vector<EditResult> first = engine->edit_batch(mixed_batch(10));
  const std::vector<EditResult> second = engine->edit_batch(mixed_batch(20));
  ASSERT_EQ(first[0].images.size(), 3u);
  EXPECT_TRUE(first[0].original);
  ASSERT_TRUE(first[1].error);
  EXPECT_EQ(first[1].error->code, "no_channels");
  ASSERT_EQ(first[2].images.size(), 1u);
  EXPECT_EQ(first[2].images[0].bytes[0], 0xFF);  // a JPEG grid
  EXPECT_EQ(first[2].images[0].width, 3 * toy::kSide);
  EXPECT_EQ(first[3].images.at(0).bytes[0], 0xFF);
  EXPECT_EQ(first[0].images[0].bytes[0], 0x89);  // PNG
  // Every image is encoded, in its own slot: the α of each edit in order.
  EXPECT_EQ(first[0].images[2].alpha, 3.0);
  EXPECT_NE(first[0].images[0].bytes, first[0].images[1].bytes);
  EXPECT_GT(first[0].diagnostics["timings_ms"]["encoding"].get<double>(), 0.0);

  // The daemon's pipeline: batch 1 is encoded on another thread while batch 2 renders.
  Engine::RenderedBatch rendered = engine->render_batch(mixed_batch(10));
  std::vector<EditResult> first_again;
  std::thread finisher([&] { first_again = rendered.finish(); });
  Engine::RenderedBatch next = engine->render_batch(mixed_batch(20));
  finisher.join();
  expect_same_images(first_again, first);
  expect_same_images(next.finish(), second);
  EXPECT_THROW(rendered.finish(), Error) << "a rendered batch is finished once";
}

TEST(Engine, BetaAutoKeepsAtLeastMinChannelsWhenPossible) {
  EditDefaults defaults;
  defaults.beta_auto = true;
  defaults.min_channels = 3;
  auto engine = make_engine(defaults);
  EditRequest request;
  request.instruction = "red hair";
  const EditResult result = engine->edit(request);
  EXPECT_TRUE(result.diagnostics["beta_auto"].get<bool>());
  const double beta = result.diagnostics["beta"].get<double>();
  EXPECT_GE(beta, 0.08);
  EXPECT_LE(beta, 0.30);
  if (beta > 0.08) {
    EXPECT_GE(result.diagnostics["channels_changed"].get<int64_t>(), 3);
  }
}

ErrorCode code_of(Engine& engine, const EditRequest& request) {
  try {
    engine.edit(request);
  } catch (const Error& error) {
    return error.code();
  }
  ADD_FAILURE() << "request accepted";
  return ErrorCode::kInternal;
}

TEST(Engine, BadRequestsAreTypedErrors) {
  auto engine = make_engine();
  EditRequest ok;
  ok.instruction = "red hair";
  EditRequest r = ok;
  r.method = Method::kGlobal;
  EXPECT_EQ(code_of(*engine, r), ErrorCode::kInvalidArgument);  // global without neutral
  r = ok;
  r.instruction = "";
  EXPECT_EQ(code_of(*engine, r), ErrorCode::kInvalidArgument);
  r = ok;
  r.instruction.clear();
  for (int i = 0; i < 80; ++i) r.instruction += "red ";
  EXPECT_EQ(code_of(*engine, r), ErrorCode::kInvalidArgument);  // over the 75-token limit
  EXPECT_THROW(engine->validate(r), Error);
  r = ok;
  r.latent_kind = LatentKind::kW;
  r.latent = {1, 2, 3};
  EXPECT_EQ(code_of(*engine, r), ErrorCode::kShapeMismatch);
  r.latent = std::vector<float>(toy::kWDim, 0.0f);
  r.latent[1] = NAN;
  EXPECT_EQ(code_of(*engine, r), ErrorCode::kInvalidArgument);
  r = ok;
  r.alphas = {100};
  EXPECT_EQ(code_of(*engine, r), ErrorCode::kInvalidArgument);
  r = ok;
  r.beta = 0.999;
  EXPECT_EQ(code_of(*engine, r), ErrorCode::kNoChannels);
  r = ok;
  r.k_pos = 1990;
  EXPECT_EQ(code_of(*engine, r), ErrorCode::kInvalidArgument);
  r = ok;
  r.method = static_cast<Method>(5);
  EXPECT_EQ(code_of(*engine, r), ErrorCode::kInvalidArgument);
  // W, W+ and S latents work.
  r = ok;
  r.latent_kind = LatentKind::kS;
  r.latent = world().generator->styles_from_seed(1, 1.0);
  EXPECT_NO_THROW(engine->edit(r));
  r.latent_kind = LatentKind::kWPlus;
  r.latent = std::vector<float>(toy::kWDim, 0.5f);
  EXPECT_NO_THROW(engine->edit(r));
}

TEST(Engine, ArtifactsFromOtherModelsAreRejected) {
  auto other = std::make_shared<Artifacts>(*world().artifacts);
  other->clip_sha256 = "0123abcd";
  try {
    Engine::from_parts(world().generator, world().text, other, {});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kArtifactMismatch);
    EXPECT_NE(std::string(error.what()).find("0123abcd"), std::string::npos);
  }
  other->clip_sha256 = world().artifacts->clip_sha256;
  other->generator_sha256 = "feedbeef";
  EXPECT_THROW(Engine::from_parts(world().generator, world().text, other, {}), Error);
}

TEST(Engine, RetrieveReturnsMostSimilarImages) {
  auto engine = make_engine();
  const nlohmann::json hits = engine->retrieve("green background", 5);
  ASSERT_EQ(hits["hits"].size(), 5u);
  EXPECT_EQ(hits["artifact_version"], "toy-1");
  // The retrieved faces have greener backgrounds than average.
  double green = 0;
  for (const auto& hit : hits["hits"]) {
    const int64_t seed = hit["id"].get<int64_t>();
    green += toy::measure(world().generator->render_one(world().generator->styles_from_seed(seed, 1.0).data()))[2] / 5;
  }
  double average = 0;
  for (int seed = 0; seed < 200; ++seed) {
    average += toy::measure(world().generator->render_one(world().generator->styles_from_seed(seed, 1.0).data()))[2] / 200;
  }
  EXPECT_GT(green, average + 0.05);
  EXPECT_THROW(engine->retrieve("green background", 0), Error);
  EXPECT_EQ(engine->info()["corpus_size"], 2000);
}

}  // namespace
}  // namespace feu::edit
