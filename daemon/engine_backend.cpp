#include "engine_backend.h"

namespace feu::daemon {

EngineBackend::EngineBackend(std::unique_ptr<edit::Engine> engine) : engine_(std::move(engine)) {
  check(engine_ != nullptr, ErrorCode::kInternal, "EngineBackend needs an engine");
}

std::vector<service::EditOutcome> EngineBackend::edit_batch(const std::vector<edit::EditRequest>& requests) {
  std::vector<edit::EditResult> results = engine_->edit_batch(requests);
  check(results.size() == requests.size(), ErrorCode::kInternal,
        "engine returned " + std::to_string(results.size()) + " results for " + std::to_string(requests.size()) +
            " requests");
  std::vector<service::EditOutcome> outcomes;
  outcomes.reserve(results.size());
  for (auto& result : results) {
    if (result.error)
      outcomes.push_back(service::EditOutcome::failure(result.error->code, result.error->message));
    else
      outcomes.push_back(service::EditOutcome::success(std::move(result)));
  }
  return outcomes;
}

void EngineBackend::validate(const edit::EditRequest& request) const { engine_->validate(request); }

nlohmann::json EngineBackend::retrieve(const std::string& text, int64_t k) { return engine_->retrieve(text, k); }

std::string EngineBackend::artifact_version() const { return engine_->artifact_version(); }

nlohmann::json EngineBackend::describe() const { return engine_->info(); }

void EngineBackend::reload(const std::string& version_dir) { engine_->reload(version_dir); }

}  // namespace feu::daemon
