// TEST DOUBLE — feu-daemon-fake: the real daemon program (daemon_app: config,
// signals, journal, socket) around tests/service/fake_backend.h instead of the
// edit engine, so the integration tests can exercise process-level behaviour
// (kill -9 recovery, SIGTERM, SIGHUP, reload) in seconds. Built into
// build/tests, never installed; the production feu-daemon serves edit::Engine.
#include "daemon_app.h"
#include "fake_backend.h"

#include <chrono>
#include <thread>

int main(int argc, char** argv) {
  using namespace feu;
  test::FakeBackend::Options options;
  int load_ms = 0;
  return daemon::run_daemon(
      argc, argv, "feu-daemon-fake",
      [&](const ConfigMap& root) {
        // Accepts the real config's sections without using them.
        for (const char* section : {"device", "models", "edit"}) root.has(section);
        std::string artifacts_root;
        if (root.has("artifacts")) {
          ConfigMap artifacts = root.child("artifacts");
          artifacts_root = artifacts.path("root", "");
          artifacts.has("version");
          artifacts.has("verify");
          artifacts.finish();
        }
        // As a real engine takes to load its models (the HTTP front answers meanwhile).
        if (load_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(load_ms));
        daemon::BackendSetup setup;
        if (!artifacts_root.empty()) {
          options.version_dir = daemon::resolve_current_link(artifacts_root);
          options.version = std::filesystem::path(options.version_dir).filename().string();
          setup.resolve_current = [artifacts_root] { return daemon::resolve_current_link(artifacts_root); };
        }
        setup.backend = std::make_unique<test::FakeBackend>(options);
        return setup;
      },
      [&](CLI::App& app) {
        app.add_option("--fake-batch-ms", options.batch_ms, "simulated time per batch");
        app.add_option("--fake-reload-ms", options.reload_ms, "simulated load time per reload");
        app.add_option("--fake-exec-log", options.exec_log, "append each executed instruction here");
        app.add_flag("--fake-page-like", options.page_like, "real PNGs and an engine's diagnostics (page tests)");
        app.add_option("--fake-load-ms", load_ms, "simulated model load time before serving");
        app.add_option("--fake-latent-values", options.latent_values, "the latent size validate() accepts");
      });
}
