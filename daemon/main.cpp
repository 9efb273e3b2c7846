// feu-daemon: the production daemon, serving edit::Engine.
#include "daemon_app.h"
#include "engine_backend.h"

int main(int argc, char** argv) {
  using namespace feu;
  return daemon::run_daemon(argc, argv, "feu-daemon", [](const ConfigMap& root) {
    edit::EngineConfig config = edit::EngineConfig::from_config(root);
    daemon::BackendSetup setup;
    setup.backend = std::make_unique<daemon::EngineBackend>(edit::Engine::create(config));
    if (!config.artifacts_root.empty() || !config.artifacts_version.empty())
      setup.resolve_current = [config] { return config.resolve_version_dir(); };
    return setup;
  });
}
