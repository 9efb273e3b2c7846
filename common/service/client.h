// A feu daemon client (DEALER socket) with the Lazy Pirate pattern: when a
// reply does not come in time it reconnects and resends the request with the
// SAME id, which the daemon answers idempotently, so a lost reply never runs
// an edit twice.
#pragma once

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "service/protocol.h"

namespace feu::service {

struct ClientOptions {
  // One endpoint, or several separated by commas (the fronts of a fleet): a
  // timeout moves to the next one and resends with the same id.
  std::string server = "tcp://127.0.0.1:5555";
  int timeout_ms = 30000;          // wait for each reply before resending
  int retries = 3;                 // resends after timeouts (and busy replies)
  std::string curve_server_key;    // Z85 server public key; non-empty enables CURVE
  std::string curve_public_key;    // Z85 client keypair (must be in the daemon's allow-list)
  std::string curve_secret_key;
  // > 0: before using a tcp:// endpoint, check within this many ms that
  // something listens there (service/endpoint_probe.h); a front that does not
  // is skipped, and when none does the constructor throws instead of waiting
  // out every timeout. 0: no check (ZeroMQ connects lazily).
  int probe_timeout_ms = 0;
};

class Client {
 public:
  explicit Client(ClientOptions options);

  // Submits an edit and waits through `accepted` until its `done` or `error`
  // reply, which it returns. Resends on timeouts and after `busy` (waiting the
  // hinted retry-after). Errors: io_error when the daemon never answers.
  Message edit(const std::string& id, const edit::EditRequest& request,
               std::optional<int64_t> deadline_ms = std::nullopt);
  // Sends a request and returns its first reply (any status), resending on
  // timeouts; a job's pushed `done` is not a reply. Errors: io_error.
  Message call(const Message& request);
  // Sends frames as they are (tests: malformed input) and waits for one reply
  // with any id. Empty when none comes within timeout_ms.
  std::optional<Message> call_raw(const std::vector<Frame>& frames);

  Message ping() { return call(make_simple_request(RequestType::kPing, new_id())); }
  Message status() { return call(make_simple_request(RequestType::kStatus, new_id())); }
  Message result(const std::string& id) { return call(make_simple_request(RequestType::kResult, id)); }
  Message cancel(const std::string& id) { return call(make_simple_request(RequestType::kCancel, id)); }
  Message retrieve(const std::string& text, int64_t k) { return call(make_retrieve_request(new_id(), text, k)); }

  // Throws ProtocolError(code, message) when `reply` is an error or busy reply.
  static void throw_if_error(const Message& reply);
  // A fresh random request id (32 hex digits).
  static std::string new_id();

  const ClientOptions& options() const { return options_; }
  // The wait for each reply from now on (a client kept for calls of different kinds).
  void set_timeout_ms(int timeout_ms) { options_.timeout_ms = timeout_ms; }
  // True when the last request sent has had its reply: the client can serve
  // another call without an answer owed to an abandoned request reaching it.
  bool answered() const { return answered_; }

 private:
  void connect(bool next_server = true);
  void send(const Message& message);
  // The next reply for `id` ("" = any id) before `until`; replies for other
  // ids (late answers to earlier requests) are skipped, and so are pushed
  // final replies (`"pushed": true`) unless `take_pushed`: a `result` or
  // `cancel` must get its own answer, not a job's `done` owed to the connection.
  std::optional<Message> receive(const std::string& id, std::chrono::steady_clock::time_point until,
                                 bool take_pushed);

  // The endpoint in use, for messages.
  const std::string& server() const { return servers_[current_]; }
  // Moves current_ to the first server, from current_ on, that a probe
  // reaches; when none does, throws (must_find) or leaves current_ as it was.
  bool pick_listening_server(bool must_find);

  ClientOptions options_;
  std::vector<std::string> servers_;
  size_t current_ = 0;
  zmq::context_t context_;
  zmq::socket_t socket_;
  bool answered_ = true;
};

}  // namespace feu::service
