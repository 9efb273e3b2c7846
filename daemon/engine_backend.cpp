#include "engine_backend.h"

namespace feu::daemon {

EngineBackend::EngineBackend(std::unique_ptr<edit::Engine> engine) : engine_(std::move(engine)) {
  check(engine_ != nullptr, ErrorCode::kInternal, "EngineBackend needs an engine");
}

namespace {
std::vector<service::EditOutcome> outcomes_of(std::vector<edit::EditResult> results, size_t requests) {
  check(results.size() == requests, ErrorCode::kInternal,
        "engine returned " + std::to_string(results.size()) + " results for " + std::to_string(requests) +
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
}  // namespace

std::vector<service::EditOutcome> EngineBackend::edit_batch(const std::vector<edit::EditRequest>& requests) {
  return outcomes_of(engine_->edit_batch(requests), requests.size());
}

service::Backend::FinishBatch EngineBackend::start_edit_batch(const std::vector<edit::EditRequest>& requests) {
  auto rendered = std::make_shared<edit::Engine::RenderedBatch>(engine_->render_batch(requests));
  return [rendered, count = requests.size()] { return outcomes_of(rendered->finish(), count); };
}

void EngineBackend::validate(const edit::EditRequest& request) const { engine_->validate(request); }

nlohmann::json EngineBackend::retrieve(const std::string& text, int64_t k) { return engine_->retrieve(text, k); }

std::string EngineBackend::artifact_version() const { return engine_->artifact_version(); }

nlohmann::json EngineBackend::describe() const { return engine_->info(); }

void EngineBackend::reload(const std::string& version_dir) { engine_->reload(version_dir); }

}  // namespace feu::daemon
