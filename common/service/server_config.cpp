#include "service/server_config.h"

#include <algorithm>
#include <cctype>

#include "service/curve_keys.h"

namespace feu::service {
namespace {

// Counts and sizes: read signed, so that -1 is named as out of range rather
// than as a wrong type.
size_t positive_size(const ConfigMap& map, const std::string& key, size_t fallback) {
  if (!map.has(key)) return fallback;
  int64_t value = map.require<int64_t>(key);
  if (value <= 0) map.fail(key, "must be a positive integer, got " + std::to_string(value));
  return static_cast<size_t>(value);
}

std::string tcp_host(const std::string& endpoint) {
  if (endpoint.rfind("tcp://", 0) != 0) return "";
  std::string rest = endpoint.substr(6);
  size_t colon = rest.rfind(':');
  return colon == std::string::npos ? rest : rest.substr(0, colon);
}

// Key file errors as config errors, keeping their message.
template <typename Read>
void check_key_file(const Read& read) {
  try {
    read();
  } catch (const Error& e) {
    throw Error(ErrorCode::kConfigError, e.what());
  }
}

}  // namespace

ServerConfig ServerConfig::from_config(const ConfigMap& d) {
  ServerConfig c;
  c.bind = d.get<std::string>("bind", c.bind);
  c.max_queue = positive_size(d, "max_queue", c.max_queue);
  c.max_batch = positive_size(d, "max_batch", c.max_batch);
  c.max_wait_ms = d.get<int>("max_wait_ms", c.max_wait_ms);
  c.default_deadline_ms = d.get<int64_t>("default_deadline_ms", c.default_deadline_ms);
  c.journal_dir = d.path("journal_dir", c.journal_dir);  // relative to the config file when set
  c.result_retention_s = d.get<int64_t>("result_retention_s", c.result_retention_s);
  c.max_results = positive_size(d, "max_results", c.max_results);
  c.max_result_bytes = positive_size(d, "max_result_bytes", c.max_result_bytes);
  c.drain_timeout_ms = d.get<int>("drain_timeout_ms", c.drain_timeout_ms);
  c.reload_poll_ms = d.get<int>("reload_poll_ms", c.reload_poll_ms);
  c.allow_insecure_remote = d.get<bool>("allow_insecure_remote", c.allow_insecure_remote);
  c.max_queue_bytes = positive_size(d, "max_queue_bytes", c.max_queue_bytes);
  if (d.has("curve")) {
    ConfigMap curve = d.child("curve");
    c.curve.enabled = curve.get<bool>("enabled", true);
    c.curve.secret_key_file = curve.require_path("secret_key_file");
    c.curve.allowed_clients_file = curve.require_path("allowed_clients_file");
    curve.finish();
  }
  if (d.has("http")) {
    // `http: "127.0.0.1:9464"` is the short form of `http: {bind: ...}`.
    std::string short_form;
    try {
      short_form = d.require<std::string>("http");
    } catch (const Error&) {
      ConfigMap h = d.child("http");
      c.http.bind = h.require<std::string>("bind");
      c.http.token_sha256 = h.get<std::vector<std::string>>("token_sha256", {});
      c.http.max_body_bytes = positive_size(h, "max_body_bytes", c.http.max_body_bytes);
      c.http.max_wait_s = static_cast<int64_t>(positive_size(h, "max_wait_s", c.http.max_wait_s));
      c.http.thumbnail_px = h.get<int>("thumbnail_px", c.http.thumbnail_px);
      c.http.thumbnail_cache = h.get<size_t>("thumbnail_cache", c.http.thumbnail_cache);
      h.finish();
    }
    if (!short_form.empty()) c.http.bind = short_form;
  }
  if (d.has("queue")) {
    ConfigMap q = d.child("queue");
    c.queue.backend = q.get<std::string>("backend", c.queue.backend);
    if (c.queue.backend != "local" && c.queue.backend != "redis")
      q.fail("backend", "must be 'local' or 'redis', got '" + c.queue.backend + "'");
    if (c.queue.is_redis()) {
      RedisQueueConfig& r = c.queue.redis;
      r.url = q.require<std::string>("url");
      r.stream = q.get<std::string>("stream", r.stream);
      r.group = q.get<std::string>("group", r.group);
      r.visibility_timeout_ms = q.get<int64_t>("visibility_timeout_ms", r.visibility_timeout_ms);
      r.max_deliveries = q.get<int>("max_deliveries", r.max_deliveries);
      r.connect_timeout_ms = q.get<int>("connect_timeout_ms", r.connect_timeout_ms);
      r.worker_timeout_ms = q.get<int64_t>("worker_timeout_ms", r.worker_timeout_ms);
    }
    q.finish();
  }
  if (d.has("limits")) {
    ConfigMap l = d.child("limits");
    c.limits.max_frames = positive_size(l, "max_frames", c.limits.max_frames);
    c.limits.max_header_bytes = positive_size(l, "max_header_bytes", c.limits.max_header_bytes);
    c.limits.max_payload_bytes = positive_size(l, "max_payload_bytes", c.limits.max_payload_bytes);
    c.limits.max_photo_bytes = positive_size(l, "max_photo_bytes", c.limits.max_photo_bytes);
    c.limits.max_id_bytes = positive_size(l, "max_id_bytes", c.limits.max_id_bytes);
    c.limits.max_text_bytes = positive_size(l, "max_text_bytes", c.limits.max_text_bytes);
    c.limits.max_alphas = positive_size(l, "max_alphas", c.limits.max_alphas);
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
               limits.max_photo_bytes > 0 &&
               limits.max_id_bytes > 0 && limits.max_text_bytes > 0 && limits.max_alphas > 0,
           "limits.* (max_frames at least 2)");
  check(max_queue_bytes >= max_request_bytes(), ErrorCode::kConfigError,
        "daemon.max_queue_bytes (" + std::to_string(max_queue_bytes) +
            ") must hold at least one request of the largest legal size (" +
            std::to_string(max_request_bytes()) + " bytes)");
  // Above the engine's limits a request would be accepted and journaled, then fail.
  check(limits.max_text_bytes <= edit::EditLimits::kMaxInstructionBytes, ErrorCode::kConfigError,
        "daemon.limits.max_text_bytes = " + std::to_string(limits.max_text_bytes) + " is above the engine's " +
            std::to_string(edit::EditLimits::kMaxInstructionBytes) + " bytes (it may only be lowered)");
  check(limits.max_alphas <= edit::EditLimits::kMaxAlphas, ErrorCode::kConfigError,
        "daemon.limits.max_alphas = " + std::to_string(limits.max_alphas) + " is above the engine's " +
            std::to_string(edit::EditLimits::kMaxAlphas) + " strengths per request (it may only be lowered)");
  check(limits.max_photo_bytes <= edit::EditLimits::kMaxPhotoBytes, ErrorCode::kConfigError,
        "daemon.limits.max_photo_bytes = " + std::to_string(limits.max_photo_bytes) + " is above the engine's " +
            std::to_string(edit::EditLimits::kMaxPhotoBytes) + " bytes (it may only be lowered)");
  check(journal_dir != "", ErrorCode::kConfigError, "daemon.journal_dir must not be empty");
  check(queue.backend == "local" || queue.backend == "redis", ErrorCode::kConfigError,
        "daemon.queue.backend must be 'local' or 'redis', got '" + queue.backend + "'");
  check(role == Role::kBoth || queue.is_redis(), ErrorCode::kConfigError,
        std::string("--role ") + role_name(role) +
            " needs a shared queue (daemon.queue.backend: redis); the local queue serves only --role both");
  if (queue.is_redis()) {
    RedisAddress::parse(queue.redis.url);
    check(!queue.redis.stream.empty() && !queue.redis.group.empty(), ErrorCode::kConfigError,
          "daemon.queue.stream and daemon.queue.group must not be empty");
    positive(queue.redis.visibility_timeout_ms >= 100, "queue.visibility_timeout_ms (at least 100)");
    positive(queue.redis.max_deliveries >= 1, "queue.max_deliveries");
    positive(queue.redis.connect_timeout_ms >= 1, "queue.connect_timeout_ms");
    positive(queue.redis.worker_timeout_ms >= 100, "queue.worker_timeout_ms (at least 100)");
  }
  // ZeroMQ binds an interface or an address, never a host name: "localhost"
  // would pass the loopback rule and then fail to bind with "No such device".
  std::string host = tcp_host(bind);
  std::transform(host.begin(), host.end(), host.begin(), [](unsigned char c) { return std::tolower(c); });
  check(host != "localhost", ErrorCode::kConfigError,
        "daemon.bind '" + bind + "' names a host, and ZeroMQ binds only addresses: use '" + "tcp://127.0.0.1" +
            bind.substr(6 + host.size()) + "' (or tcp://[::1] for IPv6)");
  check(is_loopback_endpoint(bind) || curve.enabled || allow_insecure_remote, ErrorCode::kConfigError,
        "daemon.bind '" + bind +
            "' is not a loopback address: enable daemon.curve (encryption + client allow-list) or set "
            "daemon.allow_insecure_remote: true");
  if (http.enabled()) {
    HostPort hp = parse_http_bind(http.bind);
    check(is_loopback_host(hp.host) || !http.token_sha256.empty(), ErrorCode::kConfigError,
          "daemon.http.bind '" + http.bind +
              "' is not a loopback address (127.0.0.1 or [::1]): list the sha256 of accepted bearer tokens in "
              "daemon.http.token_sha256 (e.g. printf %s TOKEN | sha256sum)");
    for (const std::string& hash : http.token_sha256)
      check(hash.size() == 64 && std::all_of(hash.begin(), hash.end(),
                                             [](char ch) { return std::isxdigit(static_cast<unsigned char>(ch)); }),
            ErrorCode::kConfigError,
            "daemon.http.token_sha256 entry '" + hash.substr(0, 80) +
                "' is not a sha256 (expected 64 hex digits, the hash of a token, never the token itself)");
    check(http.max_body_bytes > 0 && http.max_wait_s > 0, ErrorCode::kConfigError,
          "daemon.http.max_body_bytes and max_wait_s must be positive");
    constexpr int kMinPx = HttpConfig::kMinThumbnailPx, kMaxPx = HttpConfig::kMaxThumbnailPx;
    check(http.thumbnail_px >= kMinPx && http.thumbnail_px <= kMaxPx, ErrorCode::kConfigError,
          "daemon.http.thumbnail_px is " + std::to_string(http.thumbnail_px) + ": expected " +
              std::to_string(kMinPx) + ".." + std::to_string(kMaxPx) +
              " (the longer side of a corpus thumbnail, in pixels)");
  }
  if (curve.enabled) {
    check_key_file([&] { read_secret_key_file(curve.secret_key_file, "daemon.curve.secret_key_file"); });
    check_key_file([&] { read_allowed_clients(curve.allowed_clients_file); });
  }
}

std::vector<std::string> ServerConfig::warnings() const {
  std::vector<std::string> out;
  if (curve.enabled) {
    std::string mode = secret_key_mode_warning(curve.secret_key_file, "daemon.curve.secret_key_file");
    if (!mode.empty()) out.push_back(mode);
  }
  return out;
}

HostPort parse_http_bind(const std::string& bind) {
  auto fail = [&] {
    throw Error(ErrorCode::kConfigError, "daemon.http.bind '" + bind +
                                             "' is not HOST:PORT (expected e.g. 127.0.0.1:9464, [::1]:9464; port 0 "
                                             "= any free port)");
  };
  size_t colon = bind.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == bind.size()) fail();
  HostPort out;
  out.host = bind.substr(0, colon);
  if (out.host.front() == '[') {
    if (out.host.back() != ']' || out.host.size() < 3) fail();
    out.host = out.host.substr(1, out.host.size() - 2);
  } else if (out.host.find(':') != std::string::npos) {
    fail();  // an IPv6 address needs brackets
  }
  std::string port = bind.substr(colon + 1);
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char ch) { return ch >= '0' && ch <= '9'; }))
    fail();
  out.port = std::stoi(port);
  if (out.port > 65535) fail();
  return out;
}

bool is_loopback_host(const std::string& host) { return host == "127.0.0.1" || host == "::1"; }

Role parse_role(const std::string& name) {
  if (name == "both") return Role::kBoth;
  if (name == "front") return Role::kFront;
  if (name == "worker") return Role::kWorker;
  throw Error(ErrorCode::kConfigError, "role '" + name + "' is not one of front, worker, both");
}

const char* role_name(Role role) {
  switch (role) {
    case Role::kFront: return "front";
    case Role::kWorker: return "worker";
    case Role::kBoth: break;
  }
  return "both";
}

bool is_loopback_endpoint(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) == 0 || endpoint.rfind("inproc://", 0) == 0) return true;
  std::string host = tcp_host(endpoint);
  return host == "127.0.0.1" || host == "localhost" || host == "[::1]" || host == "::1" ||
         host.rfind("127.", 0) == 0;
}

}  // namespace feu::service
