// The `daemon:` section of a feu config file.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "service/protocol.h"
#include "service/redis_queue.h"

namespace feu::service {

struct CurveConfig {
  bool enabled = false;
  std::string secret_key_file;     // Z85 server secret key (40 chars), e.g. from `feu keygen`
  std::string allowed_clients_file;// Z85 client public keys, one per line ('#' comments)
};

// The HTTP front (service/http_front.h): REST API, web page, /metrics.
struct HttpConfig {
  std::string bind;                        // "127.0.0.1:9464"; empty = no HTTP listener (":0" = any free port)
  // Hex sha256 of the bearer tokens accepted; empty = no authentication,
  // which only a loopback bind may have.
  std::vector<std::string> token_sha256;
  size_t max_body_bytes = 16u << 20;       // a request body (a photo upload) larger is refused, unread (413)
  int64_t max_wait_s = 300;                // the most `?wait=SECONDS` holds a request open
  // GET /v1/corpus/{id}/thumbnail: the corpus image's longer side shrunk to
  // at most this many pixels (as Pillow's Image.thumbnail), and how many
  // encoded thumbnails are kept (least recently used dropped; 0 = none).
  int thumbnail_px = 128;
  static constexpr int kMinThumbnailPx = 16, kMaxThumbnailPx = 1024;
  size_t thumbnail_cache = 512;
  bool enabled() const { return !bind.empty(); }
};

// `daemon.queue`: where accepted jobs wait. `local` is the single machine's
// journal; `redis` a stream shared by a fleet of fronts and workers.
struct QueueConfig {
  std::string backend = "local";  // local | redis
  RedisQueueConfig redis;         // backend: redis (result_ttl_s is daemon.result_retention_s)
  bool is_redis() const { return backend == "redis"; }
};

// What one daemon process does (`feu-daemon --role`): a front takes client
// requests and queues them, a worker runs queued jobs; `both` does both.
// front and worker alone need the redis queue (the local one is in-process).
enum class Role { kBoth, kFront, kWorker };
Role parse_role(const std::string& name);  // config_error naming the three roles
const char* role_name(Role role);

struct ServerConfig {
  std::string bind = "tcp://127.0.0.1:5555";  // ROUTER endpoint; "tcp://127.0.0.1:*" picks a free port
  size_t max_queue = 256;          // waiting jobs before `busy`
  size_t max_batch = 8;            // edits synthesized together
  int max_wait_ms = 5;             // how long the worker waits to fill a batch
  int64_t default_deadline_ms = 300000;  // per-job deadline when the request sets none; 0 = none
  std::string journal_dir = "feu-daemon-state";  // journal.log and results/
  int64_t result_retention_s = 3600;   // finished results served by id this long
  size_t max_results = 100000;         // stored results kept at most (oldest evicted first)
  uint64_t max_result_bytes = 4ull << 30;  // bytes of stored results kept at most (oldest evicted first)
  int drain_timeout_ms = 10000;    // on SIGTERM: run queued jobs this long, journal the rest
  int reload_poll_ms = 1000;       // how often <artifacts root>/current is checked; 0 = only SIGHUP
  bool allow_insecure_remote = false;  // bind a non-loopback address without CURVE
  size_t max_queue_bytes = 256u << 20;  // request bytes held by waiting jobs before `busy`
  CurveConfig curve;
  Limits limits;
  HttpConfig http;
  QueueConfig queue;
  Role role = Role::kBoth;
  bool serves_clients() const { return role != Role::kWorker; }
  bool runs_jobs() const { return role != Role::kFront; }

  // Reads the `daemon` section (any key may be absent), resolving journal_dir
  // and key files against the config file; calls finish() on it.
  static ServerConfig from_config(const ConfigMap& daemon_section);
  // The largest frame a legal request has: ZeroMQ drops a connection that
  // sends a bigger one before buffering it (ZMQ_MAXMSGSIZE).
  size_t max_frame_bytes() const {
    return std::max({limits.max_header_bytes, limits.max_payload_bytes, limits.max_photo_bytes});
  }
  // The largest legal request: its header and max_frames - 1 payloads, or a
  // header and one photo.
  size_t max_request_bytes() const {
    return limits.max_header_bytes +
           std::max((limits.max_frames - 1) * limits.max_payload_bytes, limits.max_photo_bytes);
  }
  // Rejects inconsistent values (config_error): zero sizes, limits above the
  // engine's, a bind ZeroMQ cannot bind (tcp://localhost), a non-loopback bind
  // without CURVE, and with CURVE the key files: the secret key missing,
  // marked public or not matching its .pub (read_secret_key_file), the
  // allow-list missing or empty (read_allowed_clients).
  void validate() const;
  // What is valid but unwise, one line each, for the daemon to log at start:
  // a secret key file readable by group or others.
  std::vector<std::string> warnings() const;
};

// True for tcp://127.0.0.1, localhost, [::1], ipc:// and inproc:// endpoints.
bool is_loopback_endpoint(const std::string& endpoint);

// An HTTP bind "HOST:PORT" ("[::1]:PORT" for IPv6) split into its parts.
// Errors: config_error naming the expected form.
struct HostPort {
  std::string host;  // without brackets
  int port = 0;
};
HostPort parse_http_bind(const std::string& bind);
// True for 127.0.0.1 and ::1 only: any other address (127.0.0.2 included)
// is reachable by more than this host's own clients and needs tokens.
bool is_loopback_host(const std::string& host);

}  // namespace feu::service
