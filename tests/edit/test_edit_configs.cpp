// The shipped configs/*.yaml parse: engine sections valid, no unknown top-level key.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/config.h"
#include "edit/engine.h"
#include "test_support.h"

namespace feu::edit {
namespace {

TEST(ShippedConfigs, EngineSectionsParse) {
  int parsed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(FEU_SOURCE_DIR) + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    const ConfigMap root = ConfigMap::load_file(entry.path().string());
    const EngineConfig config = EngineConfig::from_config(root);
    EXPECT_FALSE(config.generator_path.empty());
    EXPECT_FALSE(config.artifacts_root.empty() && config.artifacts_version.empty());
    root.child("daemon");  // feu-daemon validates its own section
    EXPECT_NO_THROW(root.finish());
    ++parsed;
  }
  EXPECT_GE(parsed, 2);
}

TEST(EngineConfigArtifacts, FollowNeedsARootAndAPositivePeriod) {
  auto parse = [](const std::string& artifacts) {
    const YAML::Node node =
        YAML::Load("models: {generator: g.h5, clip: c.pt, vocab: v.txt.gz}\nartifacts: " + artifacts);
    return EngineConfig::from_config(ConfigMap(node, "test.yaml", "", "/srv"));
  };
  const EngineConfig follow = parse("{root: /srv/feu, follow: 'http://publisher/feu', poll_s: 60}");
  EXPECT_EQ(follow.artifacts_follow, "http://publisher/feu");
  EXPECT_EQ(follow.artifacts_poll_s, 60);
  EXPECT_EQ(parse("{root: /srv/feu}").artifacts_follow, "");
  EXPECT_EQ(parse("{root: /srv/feu}").artifacts_poll_s, 300);
  test::expect_error([&] { parse("{version: /srv/feu/v1, follow: 'http://publisher/feu'}"); },
                     ErrorCode::kConfigError, {"follow", "needs artifacts.root"});
  test::expect_error([&] { parse("{root: /srv/feu, follow: 'http://publisher/feu', poll_s: 0}"); },
                     ErrorCode::kConfigError, {"poll_s", "positive"});
}

}  // namespace
}  // namespace feu::edit
