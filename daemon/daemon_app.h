// What feu-daemon does around a Backend: command line, config, signals,
// logging, the Server loop. Torch-free, so the production daemon (engine
// backend, main.cpp) and the service tests' daemon (a test double backend,
// tests/daemon/) share every line of it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <memory>
#include <string>

#include "core/config.h"
#include "service/backend.h"

namespace feu::daemon {

struct BackendSetup {
  std::unique_ptr<service::Backend> backend;
  // Returns the version dir <artifacts root>/current points to; empty
  // function when the backend has no artifact root to watch.
  std::function<std::string()> resolve_current;
  // Background work the backend needs while serving (main.cpp: the
  // artifacts.follow puller); released after the server stops.
  std::shared_ptr<void> background;
};

// Builds the backend from the whole config file (every section but `daemon`,
// calling finish() on the sections it reads).
using BackendFactory = std::function<BackendSetup(const ConfigMap& root)>;

// Parses `feu-daemon --config C [--bind A] [--journal-dir D] [--endpoint-file F]
// [--log-level L]`, serves until SIGTERM/SIGINT (graceful: exit 0), reloads
// on SIGHUP. `add_options` may register more options (test doubles).
int run_daemon(int argc, char** argv, const std::string& program, const BackendFactory& factory,
               const std::function<void(CLI::App&)>& add_options = nullptr);

// <root>/current resolved: a symlink to a version directory, or a file holding
// the version directory's name. Errors: not_found.
std::string resolve_current_link(const std::string& root);

}  // namespace feu::daemon
