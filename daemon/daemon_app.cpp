#include "daemon_app.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <filesystem>

#include "core/cli.h"
#include "core/files.h"
#include "core/logging.h"
#include "service/http_front.h"
#include "service/server.h"
#include "web_assets.h"

namespace feu::daemon {
namespace fs = std::filesystem;
namespace {

// The one server of this process, for the signal handlers.
std::atomic<service::Server*> g_server{nullptr};
// A stop signal that came while the backend was still loading (before the
// server existed): honoured as soon as it does.
std::atomic<bool> g_stop_early{false};

void on_stop_signal(int) {
  if (auto* server = g_server.load()) server->request_stop();
  else g_stop_early.store(true);
}

void on_reload_signal(int) {
  if (auto* server = g_server.load()) server->request_reload();
}

void install_signal_handlers() {
  struct sigaction action = {};
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  action.sa_handler = on_stop_signal;
  sigaction(SIGTERM, &action, nullptr);
  sigaction(SIGINT, &action, nullptr);
  action.sa_handler = on_reload_signal;
  sigaction(SIGHUP, &action, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

}  // namespace

std::string resolve_current_link(const std::string& root) {
  fs::path current = fs::path(root) / "current";
  std::error_code ec;
  if (fs::is_symlink(current, ec) || fs::is_directory(current, ec)) {
    fs::path target = fs::canonical(current, ec);
    if (ec) throw Error(ErrorCode::kNotFound, current.string() + " points to a missing version: " + ec.message());
    return target.string();
  }
  if (fs::is_regular_file(current, ec)) {
    std::vector<uint8_t> bytes = read_file(current.string());
    std::string name(bytes.begin(), bytes.end());
    name.erase(name.find_last_not_of(" \t\r\n") + 1);
    return fs::weakly_canonical(fs::path(root) / name).string();
  }
  throw Error(ErrorCode::kNotFound, current.string() + " does not exist (no artifact version published)");
}

int run_daemon(int argc, char** argv, const std::string& program, const BackendFactory& factory,
               const std::function<void(CLI::App&)>& add_options) {
  CLI::App app{"feu-daemon: serves text-driven face edits over ZeroMQ (protocol: daemon/PROTOCOL.md)", program};
  std::string config_path, bind, journal_dir, endpoint_file, http_bind, http_url_file, log_level = "info";
  app.add_option("--config", config_path, "config file (YAML: device, models, artifacts, edit, daemon)")->required();
  app.add_option("--bind", bind, "override daemon.bind, e.g. tcp://127.0.0.1:5555 (port * = any free port)");
  app.add_option("--journal-dir", journal_dir, "override daemon.journal_dir (journal + results)");
  app.add_option("--endpoint-file", endpoint_file, "write the bound endpoint here once listening");
  app.add_option("--http", http_bind, "override daemon.http.bind, e.g. 127.0.0.1:9464 (port 0 = any free port)");
  app.add_option("--http-url-file", http_url_file, "write the HTTP front's URL here once it listens");
  std::string role = "both";
  app.add_option("--role", role,
                 "front (takes client requests), worker (runs jobs) or both; front and worker alone need "
                 "daemon.queue.backend: redis")
      ->check(CLI::IsMember({"front", "worker", "both"}));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
  std::string log_format = "text";
  app.add_option("--log-format", log_format, "text, or json (one JSON object per line, for log shippers)")
      ->check(CLI::IsMember({"text", "json"}));
  if (add_options) add_options(app);
  app.callback([&] {
    configure_logging(log_format, log_level);
    // Every line reaches the log before the next event: a kill -9 must not
    // take the last finished jobs' lines with it (stdout to a file is buffered).
    spdlog::flush_on(spdlog::level::trace);
    ConfigMap root = ConfigMap::load_file(config_path);
    // (child() of an absent key is not usable: an absent section is an empty one.)
    service::ServerConfig config = service::ServerConfig::from_config(
        root.has("daemon") ? root.child("daemon") : ConfigMap(YAML::Node(), root.file(), "daemon.", "."));
    if (!bind.empty()) config.bind = bind;
    if (!journal_dir.empty()) config.journal_dir = journal_dir;
    if (!http_bind.empty()) config.http.bind = http_bind;
    config.role = service::parse_role(role);
    try {
      config.validate();
    } catch (const Error& e) {
      throw Error(ErrorCode::kConfigError, std::string("command line: ") + e.what());
    }
    for (const std::string& warning : config.warnings()) spdlog::warn("{}", warning);
    install_signal_handlers();  // before the (possibly long) model load
    // Up before the models load, so /healthz answers and /readyz says "not yet".
    std::unique_ptr<service::HttpFront> http;
    if (config.http.enabled()) {
      http = std::make_unique<service::HttpFront>(config.http, web_assets());
      http->start();
      spdlog::info("HTTP front (API, web page, /metrics) at {}", http->url());
      if (!http_url_file.empty()) write_file_atomic(http_url_file, http->url() + "\n");
    }
    BackendSetup setup = factory(root);
    root.finish();  // unknown top-level sections

    service::Server server(config, *setup.backend, setup.resolve_current);
    g_server.store(&server);
    if (g_stop_early.load()) server.request_stop();
    // A worker alone listens nowhere: its file holds an empty line once it runs.
    if (!endpoint_file.empty()) write_file_atomic(endpoint_file, server.endpoint() + "\n");
    if (http && !server.endpoint().empty()) http->attach(server.local_client());  // a worker serves no clients
    server.run();
    if (http) http->detach();
    g_server.store(nullptr);
  });
  return run_cli(app, argc, argv);
}

}  // namespace feu::daemon
