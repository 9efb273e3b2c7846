// `feu edit --local`: the engine in-process, without a daemon.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edit/request.h"

namespace feu::edit {
class Engine;
}

namespace feu::daemon {

// The engine loaded once from `config_path` (the same file the daemon reads),
// for a client that asks its shapes before it makes requests (--latent-file).
class LocalEngine {
 public:
  explicit LocalEngine(const std::string& config_path);
  ~LocalEngine();
  // Engine::info(): its "generator" holds w_dim, num_ws and the S layers.
  nlohmann::json info() const;
  // Every request, in batches of `batch` (their images synthesized together).
  // A request that fails has EditResult::error set; the others run.
  std::vector<edit::EditResult> edit(const std::vector<edit::EditRequest>& requests, size_t batch = 8);

 private:
  std::unique_ptr<edit::Engine> engine_;
};

// Loads the engine from `config_path` (the same file the daemon reads) once
// and runs every request, in batches of `batch` (their images synthesized
// together). A request that fails has EditResult::error set; the others run.
// Errors: feu::Error from loading.
std::vector<edit::EditResult> run_local_edits(const std::string& config_path,
                                              const std::vector<edit::EditRequest>& requests, size_t batch = 8);

// `feu retrieve --local --contact-sheet`: what an FEU edit of
// `request.instruction` is learned from (Engine::explain), and, when
// `sheet_path` is set, its positives (green) and negatives (red) as
// `thumb`-pixel thumbnails read from the corpus root, written as an image.
// Unreadable corpus files become grey placeholders, counted in "missing".
nlohmann::json run_local_explain(const std::string& config_path, const edit::EditRequest& request,
                                 const std::string& sheet_path, int thumb = 96);

}  // namespace feu::daemon
