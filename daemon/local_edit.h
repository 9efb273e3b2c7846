// `feu edit --local`: the engine in-process, without a daemon.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "edit/request.h"

namespace feu::daemon {

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
