// The production Backend: edit::Engine behind the service interface.
#pragma once

#include <memory>

#include "edit/engine.h"
#include "service/backend.h"

namespace feu::daemon {

class EngineBackend : public service::Backend {
 public:
  explicit EngineBackend(std::unique_ptr<edit::Engine> engine);

  // Engine::edit_batch marks each failed request with EditResult::error;
  // those become that request's outcome and the rest of the batch stands.
  std::vector<service::EditOutcome> edit_batch(const std::vector<edit::EditRequest>& requests) override;
  // Engine::render_batch now; its RenderedBatch::finish (encoding) in the function.
  FinishBatch start_edit_batch(const std::vector<edit::EditRequest>& requests) override;
  void validate(const edit::EditRequest& request) const override;
  nlohmann::json retrieve(const std::string& text, int64_t k) override;
  std::string artifact_version() const override;
  nlohmann::json describe() const override;
  // Engine::reload loads and verifies off to the side and swaps atomically;
  // a batch keeps the version it started with.
  void reload(const std::string& version_dir) override;

  edit::Engine& engine() { return *engine_; }

 private:
  std::unique_ptr<edit::Engine> engine_;
};

}  // namespace feu::daemon
