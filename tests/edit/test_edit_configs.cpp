// The shipped configs/*.yaml parse: engine sections valid, no unknown top-level key.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/config.h"
#include "edit/engine.h"

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

}  // namespace
}  // namespace feu::edit
