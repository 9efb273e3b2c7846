#include "service/server_config.h"

namespace feu::service {

ServerConfig ServerConfig::from_config(const ConfigMap& d) {
  ServerConfig c;
  c.bind = d.get<std::string>("bind", c.bind);
  c.max_queue = d.get<size_t>("max_queue", c.max_queue);
  c.max_batch = d.get<size_t>("max_batch", c.max_batch);
  c.max_wait_ms = d.get<int>("max_wait_ms", c.max_wait_ms);
  c.default_deadline_ms = d.get<int64_t>("default_deadline_ms", c.default_deadline_ms);
  c.journal_dir = d.path("journal_dir", c.journal_dir);  // relative to the config file when set
  c.result_retention_s = d.get<int64_t>("result_retention_s", c.result_retention_s);
  c.max_results = d.get<size_t>("max_results", c.max_results);
  c.max_result_bytes = d.get<uint64_t>("max_result_bytes", c.max_result_bytes);
  c.drain_timeout_ms = d.get<int>("drain_timeout_ms", c.drain_timeout_ms);
  c.reload_poll_ms = d.get<int>("reload_poll_ms", c.reload_poll_ms);
  c.allow_insecure_remote = d.get<bool>("allow_insecure_remote", c.allow_insecure_remote);
  c.max_queue_bytes = d.get<size_t>("max_queue_bytes", c.max_queue_bytes);
  if (d.has("curve")) {
    ConfigMap curve = d.child("curve");
    c.curve.enabled = curve.get<bool>("enabled", true);
    c.curve.secret_key_file = curve.require_path("secret_key_file");
    c.curve.allowed_clients_file = curve.require_path("allowed_clients_file");
    curve.finish();
  }
  if (d.has("limits")) {
    ConfigMap l = d.child("limits");
    c.limits.max_frames = l.get<size_t>("max_frames", c.limits.max_frames);
    c.limits.max_header_bytes = l.get<size_t>("max_header_bytes", c.limits.max_header_bytes);
    c.limits.max_payload_bytes = l.get<size_t>("max_payload_bytes", c.limits.max_payload_bytes);
    c.limits.max_id_bytes = l.get<size_t>("max_id_bytes", c.limits.max_id_bytes);
    c.limits.max_text_bytes = l.get<size_t>("max_text_bytes", c.limits.max_text_bytes);
    c.limits.max_alphas = l.get<size_t>("max_alphas", c.limits.max_alphas);
    l.finish();
  }
  d.finish();
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(ErrorCode::kConfigError, d.file() + ": " + e.what());
  }
  return c;
}

void ServerConfig::validate() const {
  auto positive = [](bool ok, const std::string& key) {
    check(ok, ErrorCode::kConfigError, "daemon." + key + " must be positive");
  };
  positive(max_queue > 0, "max_queue");
  positive(max_batch > 0, "max_batch");
  positive(max_wait_ms >= 0, "max_wait_ms (or 0)");
  positive(default_deadline_ms >= 0, "default_deadline_ms (or 0)");
  positive(result_retention_s > 0, "result_retention_s");
  positive(max_results > 0, "max_results");
  positive(max_result_bytes > 0, "max_result_bytes");
  positive(drain_timeout_ms >= 0, "drain_timeout_ms (or 0)");
  positive(reload_poll_ms >= 0, "reload_poll_ms (or 0)");
  positive(limits.max_frames >= 2 && limits.max_header_bytes > 0 && limits.max_payload_bytes > 0 &&
               limits.max_id_bytes > 0 && limits.max_text_bytes > 0 && limits.max_alphas > 0,
           "limits.* (max_frames at least 2)");
  check(max_queue_bytes >= max_request_bytes(), ErrorCode::kConfigError,
        "daemon.max_queue_bytes (" + std::to_string(max_queue_bytes) +
            ") must hold at least one request of the largest legal size (" +
            std::to_string(max_request_bytes()) + " bytes)");
  check(journal_dir != "", ErrorCode::kConfigError, "daemon.journal_dir must not be empty");
  check(is_loopback_endpoint(bind) || curve.enabled || allow_insecure_remote, ErrorCode::kConfigError,
        "daemon.bind '" + bind +
            "' is not a loopback address: enable daemon.curve (encryption + client allow-list) or set "
            "daemon.allow_insecure_remote: true");
}

bool is_loopback_endpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  if (endpoint.rfind("tcp://", 0) != 0) return false;
  std::string rest = endpoint.substr(6);
  size_t colon = rest.rfind(':');
  std::string host = colon == std::string::npos ? rest : rest.substr(0, colon);
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host == "::1" ||
         host.rfind("127.", 0) == 0;
}

}  // namespace feu::service
