// `feu edit --local`: the engine in-process, without a daemon.
#pragma once

#include <string>
#include <vector>

#include "edit/request.h"

namespace feu::daemon {

// Loads the engine from `config_path` (the same file the daemon reads) once
// and runs every request, in batches of `batch` (their images synthesized
// together). A request that fails has EditResult::error set; the others run.
// Errors: feu::Error from loading.
std::vector<edit::EditResult> run_local_edits(const std::string& config_path,
                                              const std::vector<edit::EditRequest>& requests, size_t batch = 8);

}  // namespace feu::daemon
