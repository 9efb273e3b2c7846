// What the daemon serves edits with. The production implementation adapts
// edit::Engine (daemon/engine_backend.h); the service tests use a small
// deterministic test double (tests/service/fake_backend.h). Keeping the
// service behind this interface keeps feu_service free of torch.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "edit/request.h"

namespace feu::service {

// The outcome of one request of a batch: a result, or the typed error that
// request alone failed with (its neighbours in the batch are unaffected).
struct EditOutcome {
  std::optional<edit::EditResult> result;
  std::string error_code;     // feu::error_code_name() or a protocol code; empty on success
  std::string error_message;

  bool ok() const { return result.has_value(); }
  static EditOutcome success(edit::EditResult result);
  static EditOutcome failure(std::string code, std::string message);
  static EditOutcome failure(const Error& error);
};

class Backend {
 public:
  virtual ~Backend() = default;

  // Runs `requests` as one batch (the engine synthesizes them together).
  // Returns exactly one outcome per request, in order. A request's own bad
  // input is reported in its outcome; throwing fails every request of the
  // batch with that error. The server calls edit_batch, start_edit_batch and
  // retrieve one at a time (its engine lock), each from one thread of its own.
  virtual std::vector<EditOutcome> edit_batch(const std::vector<edit::EditRequest>& requests) = 0;

  // edit_batch in two steps, for the daemon's pipeline: the model work now
  // (on the worker's render thread) and the rest (encoding the images)
  // returned as a function that needs no model, which the worker runs,
  // outside the engine lock, while the next batch renders. The function is
  // called once; it returns (or throws) what edit_batch would. The default
  // does all of edit_batch now.
  using FinishBatch = std::function<std::vector<EditOutcome>()>;
  virtual FinishBatch start_edit_batch(const std::vector<edit::EditRequest>& requests);

  // Checks a request against the loaded models and the engine's own limits
  // (latent shape, text length in CLIP tokens, k, alphas, beta) before the
  // daemon accepts it: a request that can only fail is refused with its typed
  // error instead of being journaled and queued. Throws feu::Error. Called from
  // the I/O thread, concurrently with edit_batch and reload.
  virtual void validate(const edit::EditRequest& request) const = 0;

  // Top-k corpus entries for a text: {"version", "hits": [{"id","path","score"}...]}.
  // Throws feu::Error. Called from the server's retrieval thread.
  virtual nlohmann::json retrieve(const std::string& text, int64_t k) = 0;

  // The artifact version being served (manifest version). Any thread.
  virtual std::string artifact_version() const = 0;
  // What `status` shows of the backend: device, model fingerprints, cache
  // statistics. Any thread.
  virtual nlohmann::json describe() const = 0;

  // Loads and verifies the artifact version in `version_dir` while serving
  // continues, then swaps it in so that the next batch uses it (a batch never
  // sees two versions). Throws feu::Error on failure, keeping the old version.
  // Called from a background thread, concurrently with edit_batch/retrieve.
  virtual void reload(const std::string& version_dir) = 0;
};

// Runs `run_one` on each request separately, capturing each feu::Error as that
// request's outcome: how an adapter isolates per-request failures when its
// batched call failed as a whole.
std::vector<EditOutcome> edit_each(const std::vector<edit::EditRequest>& requests,
                                   const std::function<edit::EditResult(const edit::EditRequest&)>& run_one);

}  // namespace feu::service
