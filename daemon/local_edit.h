// `feu edit --local`: the engine in-process, without a daemon.
#pragma once

#include <string>

#include "edit/request.h"

namespace feu::daemon {

// Loads the engine from `config_path` (the same file the daemon reads) and
// runs one edit. Errors: feu::Error from loading or editing.
edit::EditResult run_local_edit(const std::string& config_path, const edit::EditRequest& request);

}  // namespace feu::daemon
