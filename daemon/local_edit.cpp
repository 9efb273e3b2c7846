#include "local_edit.h"

#include "edit/engine.h"

namespace feu::daemon {

edit::EditResult run_local_edit(const std::string& config_path, const edit::EditRequest& request) {
  ConfigMap root = ConfigMap::load_file(config_path);
  root.has("daemon");  // the daemon's section: not needed in-process
  auto engine = edit::Engine::create(edit::EngineConfig::from_config(root));
  return engine->edit(request);
}

}  // namespace feu::daemon
