#include "local_edit.h"

#include <algorithm>

#include "edit/engine.h"

namespace feu::daemon {

std::vector<edit::EditResult> run_local_edits(const std::string& config_path,
                                              const std::vector<edit::EditRequest>& requests, size_t batch) {
  ConfigMap root = ConfigMap::load_file(config_path);
  root.has("daemon");  // the daemon's section: not needed in-process
  auto engine = edit::Engine::create(edit::EngineConfig::from_config(root));
  std::vector<edit::EditResult> results;
  for (size_t start = 0; start < requests.size(); start += batch) {
    const std::vector<edit::EditRequest> chunk(requests.begin() + start,
                                               requests.begin() + std::min(requests.size(), start + batch));
    for (edit::EditResult& result : engine->edit_batch(chunk)) results.push_back(std::move(result));
  }
  return results;
}

}  // namespace feu::daemon
