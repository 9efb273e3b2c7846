// The HTTP front of feu-daemon: a REST API (POST /v1/edits, GET/DELETE
// /v1/edits/{id}, images, POST /v1/retrieve, corpus thumbnails), the web page,
// /metrics (Prometheus), /healthz and /readyz, on one cpp-httplib listener.
//
// It is one more client of the daemon, not a second service: every API call
// becomes the wire protocol's message (service/protocol.h) and goes to the
// daemon's own ZeroMQ endpoint through service::Client, so the protocol's
// parsing, limits, admission checks, journal, idempotency and error codes
// apply to HTTP unchanged; the front only maps them to HTTP statuses
// (http_status_for). The API is described by daemon/openapi.json.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "service/client.h"
#include "service/server_config.h"

namespace httplib {
class Server;
}

namespace feu::service {

// A file the front serves as it is (the page, its script and style, the
// OpenAPI document), by URL path.
struct HttpAsset {
  std::string content_type;
  std::string body;
};
using HttpAssets = std::map<std::string, HttpAsset>;

// The HTTP status for a protocol or engine error code: 400 for a bad request,
// 404 not_found, 409 id_conflict and cancelled, 413 payload_too_large, 429
// busy, 503 shutting_down/io_error (the daemon cannot take it now), 504
// deadline_exceeded, 500 for the daemon's own failures.
int http_status_for(const std::string& code);

class HttpFront {
 public:
  HttpFront(HttpConfig config, HttpAssets assets);
  ~HttpFront();
  HttpFront(const HttpFront&) = delete;
  HttpFront& operator=(const HttpFront&) = delete;

  // Binds config.bind and serves on a background thread. Until attach(),
  // /healthz answers and everything else is 503 (/readyz: not ready).
  // Errors: io_error when the address cannot be bound.
  void start();
  // The daemon is serving at daemon.server (with daemon.curve_* set when it
  // encrypts): the API, /metrics (its `status` request) and /readyz (its
  // `ping`) go there from now on, through clients made with these options
  // (their timeouts and retries are the front's own).
  void attach(ClientOptions daemon);
  // Before the daemon goes away: API calls answer 503 again.
  void detach();
  // Stops listening and joins the thread (also done by the destructor).
  void stop();

  // The bound port (the real one when config.bind asked for port 0).
  int port() const { return port_; }
  // "http://HOST:PORT/" for logs and scripts.
  std::string url() const;

 private:
  struct Impl;
  HttpConfig config_;
  std::unique_ptr<Impl> impl_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace feu::service
