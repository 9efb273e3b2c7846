#include "service/backend.h"

#include <memory>

namespace feu::service {

EditOutcome EditOutcome::success(edit::EditResult result) {
  EditOutcome outcome;
  outcome.result = std::move(result);
  return outcome;
}

EditOutcome EditOutcome::failure(std::string code, std::string message) {
  EditOutcome outcome;
  outcome.error_code = std::move(code);
  outcome.error_message = std::move(message);
  return outcome;
}

EditOutcome EditOutcome::failure(const Error& error) { return failure(error.code_name(), error.what()); }

Backend::FinishBatch Backend::start_edit_batch(const std::vector<edit::EditRequest>& requests) {
  auto outcomes = std::make_shared<std::vector<EditOutcome>>(edit_batch(requests));
  return [outcomes] { return std::move(*outcomes); };
}

std::vector<EditOutcome> edit_each(const std::vector<edit::EditRequest>& requests,
                                   const std::function<edit::EditResult(const edit::EditRequest&)>& run_one) {
  std::vector<EditOutcome> outcomes;
  outcomes.reserve(requests.size());
  for (const auto& request : requests) {
    try {
      outcomes.push_back(EditOutcome::success(run_one(request)));
    } catch (const Error& e) {
      outcomes.push_back(EditOutcome::failure(e));
    } catch (const std::exception& e) {
      outcomes.push_back(EditOutcome::failure(error_code_name(ErrorCode::kInternal), e.what()));
    }
  }
  return outcomes;
}

}  // namespace feu::service
