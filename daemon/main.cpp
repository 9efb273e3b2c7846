// feu-daemon: the production daemon, serving edit::Engine.
#include <filesystem>

#include "core/logging.h"
#include "daemon_app.h"
#include "engine_backend.h"
#include "index/pull.h"

int main(int argc, char** argv) {
  using namespace feu;
  return daemon::run_daemon(argc, argv, "feu-daemon", [](const ConfigMap& root) {
    edit::EngineConfig config = edit::EngineConfig::from_config(root);
    daemon::BackendSetup setup;
    index::PullOptions follow;
    follow.from = config.artifacts_follow;
    follow.root = config.artifacts_root;
    // A fresh machine has nothing to serve before its first pull.
    if (!follow.from.empty() && !std::filesystem::exists(follow.root + "/current")) {
      log_line(LogLevel::kInfo, "artifacts: " + index::pull(follow).text());
    }
    setup.backend = std::make_unique<daemon::EngineBackend>(edit::Engine::create(config));
    if (!config.artifacts_root.empty() || !config.artifacts_version.empty())
      setup.resolve_current = [config] { return config.resolve_version_dir(); };
    // Pulls land in <root>/current, which the server's reload poll watches
    // (and verifies before switching: a bad version never replaces a good one).
    if (!follow.from.empty())
      setup.background = std::make_shared<index::ArtifactFollower>(
          follow, std::chrono::seconds(config.artifacts_poll_s), [](const std::string& line, bool failed) {
            log_line(failed ? LogLevel::kWarn : LogLevel::kInfo, line);
          });
    return setup;
  });
}
