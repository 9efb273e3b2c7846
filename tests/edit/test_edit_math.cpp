// Unit tests of the edit math that the parity fixture does not pin down:
// templates, the text-embedding cache, the SVM on data with a known answer,
// auto beta, top channels.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "edit/mapping.h"
#include "edit/svm.h"
#include "edit/templates.h"
#include "edit/text_direction.h"

namespace feu::edit {
namespace {

TEST(Templates, StyleClipImagenetListHas79InOrderWithoutPhotoOfMany) {
  const auto& templates = imagenet_templates();
  ASSERT_EQ(templates.size(), 79u);
  EXPECT_EQ(templates.front(), "a bad photo of a {}.");
  EXPECT_EQ(templates[1], "a sculpture of a {}.");
  EXPECT_EQ(templates.back(), "a tattoo of the {}.");
  std::set<std::string> unique(templates.begin(), templates.end());
  EXPECT_EQ(unique.size(), 79u);
  EXPECT_EQ(unique.count("a photo of many {}."), 0u);
  for (const std::string& templ : templates) EXPECT_NE(templ.find("{}"), std::string::npos) << templ;
}

TEST(Templates, PromptsSubstituteTheText) {
  const auto prompts = prompts_for("blond hair", TemplateSet::kImagenet);
  ASSERT_EQ(prompts.size(), 79u);
  EXPECT_EQ(prompts[0], "a bad photo of a blond hair.");
  EXPECT_EQ(prompts[34], "a blond hair in a video game.");
  EXPECT_EQ(prompts_for("blond hair", TemplateSet::kNone), std::vector<std::string>{"blond hair"});
  EXPECT_EQ(parse_template_set("none"), TemplateSet::kNone);
  EXPECT_THROW(parse_template_set("imagenet80"), Error);
}

TEST(TextDirection, TemplateEmbeddingIsUnitMeanOfUnitRows) {
  // Two rows of very different length: the mean must weigh them equally.
  const std::vector<float> raw = {10, 0, 0, /**/ 0, 0.5f, 0};
  const auto t = template_embedding(raw.data(), 2, 3);
  EXPECT_NEAR(t[0], std::sqrt(0.5), 1e-7);
  EXPECT_NEAR(t[1], std::sqrt(0.5), 1e-7);
  EXPECT_EQ(t[2], 0.0f);
  const std::vector<float> zero = {0, 0, 0};
  EXPECT_THROW(template_embedding(zero.data(), 1, 3), Error);
}

TEST(TextDirection, GlobalDirectionPointsFromNeutralToTarget) {
  const auto dt = global_direction({1, 0}, {0, 1});
  EXPECT_NEAR(dt[0], std::sqrt(0.5), 1e-7);
  EXPECT_NEAR(dt[1], -std::sqrt(0.5), 1e-7);
  try {
    global_direction({1, 0}, {1, 0});
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kInvalidArgument);
  }
}

TEST(TextCache, LruEvictsLeastRecentlyUsedAndKeysOnTemplatesAndModel) {
  TextEmbeddingCache cache(2);
  cache.put("a", TemplateSet::kImagenet, "clip1", {1});
  cache.put("b", TemplateSet::kImagenet, "clip1", {2});
  ASSERT_TRUE(cache.get("a", TemplateSet::kImagenet, "clip1"));  // a is now most recent
  cache.put("c", TemplateSet::kImagenet, "clip1", {3});           // evicts b
  EXPECT_FALSE(cache.get("b", TemplateSet::kImagenet, "clip1"));
  EXPECT_EQ(cache.get("a", TemplateSet::kImagenet, "clip1")->at(0), 1.0f);
  EXPECT_EQ(cache.get("c", TemplateSet::kImagenet, "clip1")->at(0), 3.0f);
  EXPECT_FALSE(cache.get("a", TemplateSet::kNone, "clip1"));
  EXPECT_FALSE(cache.get("a", TemplateSet::kImagenet, "clip2"));
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_EQ(cache.hits(), 3u);
  EXPECT_EQ(cache.misses(), 3u);
  TextEmbeddingCache disabled(0);
  disabled.put("a", TemplateSet::kImagenet, "clip1", {1});
  EXPECT_FALSE(disabled.get("a", TemplateSet::kImagenet, "clip1"));
}

TEST(Svm, RecoversAKnownSeparatingDirection) {
  // Points on the unit sphere in 8-d, labelled by the sign of their component
  // along a known unit direction, with a gap around the hyperplane.
  const int64_t dim = 8;
  std::vector<float> truth(dim);
  std::mt19937 rng(3);
  std::normal_distribution<float> gauss;
  for (float& v : truth) v = gauss(rng);
  truth = unit(truth, "truth");
  std::vector<float> positives, negatives;
  while (positives.size() < 60 * dim || negatives.size() < 60 * dim) {
    std::vector<float> x(dim);
    for (float& v : x) v = gauss(rng);
    x = unit(x, "x");
    const double along = dot(x.data(), truth.data(), dim);
    if (std::fabs(along) < 0.3) continue;
    auto& into = along > 0 ? positives : negatives;
    if (into.size() < 60 * dim) into.insert(into.end(), x.begin(), x.end());
  }
  const SvmDirection svm = train_svm_direction(positives.data(), 60, negatives.data(), 60, dim);
  EXPECT_EQ(svm.accuracy, 1.0);
  EXPECT_GT(dot(svm.normal.data(), truth.data(), dim), 0.9);  // oriented toward positives
  EXPECT_GT(svm.margin, 0.0);
  // Swapping the classes flips the normal.
  const SvmDirection swapped = train_svm_direction(negatives.data(), 60, positives.data(), 60, dim);
  EXPECT_LT(dot(swapped.normal.data(), svm.normal.data(), dim), -0.999);
  // Deterministic.
  const SvmDirection again = train_svm_direction(positives.data(), 60, negatives.data(), 60, dim);
  EXPECT_EQ(again.normal, svm.normal);
}

TEST(Svm, RejectsEmptyClassesAndZeroRows) {
  const std::vector<float> row = {1, 0}, zero = {0, 0};
  EXPECT_THROW(train_svm_direction(row.data(), 1, row.data(), 0, 2), Error);
  EXPECT_THROW(train_svm_direction(row.data(), 1, zero.data(), 1, 2), Error);
}

StyleDirectionMapper tiny_mapper() {
  // S = conv "a" (3 channels, covered), toRGB "rgb" (2, never covered), conv "b" (2, covered).
  // fs3 rows are unit vectors in 2-d.
  std::vector<float> fs3 = {1, 0, 0, 1, 0.6f, 0.8f, -0.8f, 0.6f, 0, -1};
  StyleLayout layout{{"a", "rgb", "b"}, {0, 3, 5}, {3, 2, 2}};
  return StyleDirectionMapper(fs3, 2, {0, 1, 2, 5, 6}, {1, 2, 3, 4, 5, 6, 7}, layout);
}

TEST(Mapping, DeltaSIsScaledByStdOnCoveredChannelsOnly) {
  const auto mapper = tiny_mapper();
  const std::vector<float> dt = {1, 0};
  const auto r = mapper.relevance(dt.data());
  EXPECT_EQ(r, (std::vector<float>{1, 0, 0.6f, -0.8f, 0}));
  const auto kept = StyleDirectionMapper::threshold(r, 0.7);
  EXPECT_EQ(kept.channels, 2);
  EXPECT_EQ(kept.values, (std::vector<float>{1, 0, 0, -0.8f, 0}));
  const auto delta = mapper.delta_s(kept);
  EXPECT_EQ(delta, (std::vector<float>{1, 0, 0, 0, 0, -0.8f * 6, 0}));
  const auto top = mapper.top_channels(delta, 5);
  ASSERT_EQ(top.size(), 2u);
  EXPECT_EQ(top[0].channel, 5);
  EXPECT_EQ(top[0].layer, "b");
  EXPECT_EQ(top[0].layer_channel, 0);
  EXPECT_EQ(top[1].channel, 0);
  std::vector<float> s(7, 1.0f), out(7);
  StyleDirectionMapper::apply(s.data(), delta.data(), 7, -2.0, out.data());
  EXPECT_FLOAT_EQ(out[5], 1 + 2 * 0.8f * 6);
  EXPECT_EQ(out[3], 1.0f);  // toRGB untouched
}

TEST(Mapping, ThresholdNormalizesByTheLargestSurvivor) {
  const auto kept = StyleDirectionMapper::threshold({0.2f, -0.4f, 0.1f}, 0.15);
  EXPECT_EQ(kept.values, (std::vector<float>{0.5f, -1.0f, 0.0f}));
  EXPECT_DOUBLE_EQ(kept.max_abs, 0.4f);
}

TEST(Mapping, NoSurvivorNamesTheLargestWorkableBeta) {
  try {
    StyleDirectionMapper::threshold({0.2f, -0.25f}, 0.3);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kNoChannels);
    EXPECT_NE(std::string(error.what()).find("0.25"), std::string::npos) << error.what();
  }
}

TEST(Mapping, ZeroBetaWithAllZeroRelevanceIsNoChannelsNotNaN) {
  EXPECT_EQ(StyleDirectionMapper::threshold({0.0f, -0.5f}, 0.0).values, (std::vector<float>{0.0f, -1.0f}));
  try {
    StyleDirectionMapper::threshold({0.0f, 0.0f}, 0.0);
    FAIL();
  } catch (const Error& error) {
    EXPECT_EQ(error.code(), ErrorCode::kNoChannels);
  }
}

TEST(Mapping, AutoBetaIsTheLargestKeepingMinChannels) {
  std::vector<float> r;
  for (int i = 0; i < 40; ++i) r.push_back((i % 2 ? -1.0f : 1.0f) * 0.005f * i);  // |r| = 0, .005, ..., .195
  // The 20th largest |r| is 0.005 * 20 = 0.1.
  const double beta = StyleDirectionMapper::auto_beta(r, 0.08, 0.30, 20);
  EXPECT_NEAR(beta, 0.1, 1e-7);
  EXPECT_EQ(StyleDirectionMapper::threshold(r, beta).channels, 20);
  EXPECT_NEAR(StyleDirectionMapper::auto_beta(r, 0.08, 0.30, 2), 0.19, 1e-7);
  EXPECT_DOUBLE_EQ(StyleDirectionMapper::auto_beta(r, 0.08, 0.12, 2), 0.12);   // capped at high
  EXPECT_DOUBLE_EQ(StyleDirectionMapper::auto_beta(r, 0.08, 0.30, 35), 0.08);  // floor at low
}

// A mapper shaped like FFHQ's at small size: `covered` fs3 rows in `dim`
// dimensions, a few of them aligned with a hidden "attribute" direction so
// that some |r| are large (as real Δi are for the edits they serve).
StyleDirectionMapper structured_mapper(int64_t covered, int64_t dim, uint64_t seed, std::vector<float>& attribute) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> gauss;
  attribute.assign(dim, 0.0f);
  for (float& v : attribute) v = gauss(rng);
  attribute = unit(attribute, "attribute");
  std::vector<float> fs3;
  for (int64_t c = 0; c < covered; ++c) {
    std::vector<float> row(dim);
    for (float& v : row) v = gauss(rng);
    const float pull = c % 37 == 0 ? 8.0f * (c % 2 ? 1 : -1) : 0.0f;
    for (int64_t k = 0; k < dim; ++k) row[k] += pull * std::sqrt(float(dim)) * attribute[k] * (1 + c % 5) / 5;
    row = unit(row, "row");
    fs3.insert(fs3.end(), row.begin(), row.end());
  }
  std::vector<int64_t> channels(covered);
  for (int64_t c = 0; c < covered; ++c) channels[c] = c;
  StyleLayout layout{{"conv"}, {0}, {covered}};
  return StyleDirectionMapper(std::move(fs3), dim, std::move(channels), std::vector<float>(covered, 0.5f), layout);
}

void expect_same(const ThresholdedRelevance& fast, const ThresholdedRelevance& plain) {
  EXPECT_EQ(fast.values, plain.values);
  EXPECT_EQ(fast.channels, plain.channels);
  EXPECT_EQ(fast.beta, plain.beta);
  EXPECT_EQ(fast.max_abs, plain.max_abs);
}

TEST(Mapping, KeptRelevanceFromInt8CodesEqualsThePlainPath) {
  for (const auto& [covered, dim, seed] : std::vector<std::tuple<int64_t, int64_t, uint64_t>>{
           {1500, 64, 1}, {600, 512, 2}, {300, 33, 3}}) {
    std::vector<float> attribute;
    const StyleDirectionMapper mapper = structured_mapper(covered, dim, seed, attribute);
    std::mt19937_64 rng(seed + 100);
    std::normal_distribution<float> gauss;
    for (int q = 0; q < 6; ++q) {
      // The attribute itself (many large |r|), then noisier versions of it,
      // then plain random directions (every |r| small).
      std::vector<float> direction(dim);
      for (int64_t k = 0; k < dim; ++k) direction[k] = (q < 3 ? attribute[k] * (3 - q) : 0.0f) + 0.05f * q * gauss(rng);
      direction = unit(direction, "direction");
      SCOPED_TRACE("covered " + std::to_string(covered) + " dim " + std::to_string(dim) + " q " + std::to_string(q));
      const std::vector<float> r = mapper.relevance(direction.data());
      for (const double beta : {0.0, 0.02, 0.1, 0.15, 0.3}) {
        SCOPED_TRACE("beta " + std::to_string(beta));
        BetaRule rule;
        rule.beta = beta;
        ThresholdedRelevance plain;
        try {
          plain = StyleDirectionMapper::threshold(r, beta);
        } catch (const Error& e) {
          // The same typed error, with the same largest workable β.
          try {
            mapper.kept_relevance(direction.data(), rule);
            ADD_FAILURE() << "expected no_channels";
          } catch (const Error& fast) {
            EXPECT_EQ(fast.code(), e.code());
            EXPECT_STREQ(fast.what(), e.what());
          }
          continue;
        }
        expect_same(mapper.kept_relevance(direction.data(), rule), plain);
      }
      for (const int64_t min_channels : {1, 5, 20, 200}) {
        SCOPED_TRACE("min_channels " + std::to_string(min_channels));
        BetaRule rule;
        rule.automatic = true;
        rule.min_channels = min_channels;
        const double beta = StyleDirectionMapper::auto_beta(r, rule.low, rule.high, min_channels);
        expect_same(mapper.kept_relevance(direction.data(), rule), StyleDirectionMapper::threshold(r, beta));
      }
    }
  }
}

TEST(Mapping, RejectsInconsistentShapes) {
  StyleLayout layout{{"a"}, {0}, {3}};
  EXPECT_THROW(StyleDirectionMapper({1, 0}, 2, {0, 1}, {1, 1, 1}, layout), Error);    // fs3 too short
  EXPECT_THROW(StyleDirectionMapper({1, 0}, 2, {3}, {1, 1, 1}, layout), Error);       // channel outside S
  EXPECT_THROW(StyleDirectionMapper({1, 0}, 2, {0}, {1, 1}, layout), Error);          // std vs layout
}

}  // namespace
}  // namespace feu::edit
