// Helpers shared by the service tests (in-process) and the daemon tests
// (process level): client options, requests, and waiting for results.
#pragma once

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "service/client.h"

namespace feu::test {

inline service::ClientOptions client_for(const std::string& endpoint, int timeout_ms = 10000) {
  service::ClientOptions options;
  options.server = endpoint;
  options.timeout_ms = timeout_ms;
  options.retries = 2;
  return options;
}

inline edit::EditRequest edit_of(const std::string& instruction, int64_t seed = 1,
                                  std::vector<double> alphas = {}) {
  edit::EditRequest e;
  e.instruction = instruction;
  e.seed = seed;
  e.alphas = std::move(alphas);
  return e;
}

inline std::string image_text(const edit::EncodedImage& image) {
  return std::string(image.bytes.begin(), image.bytes.end());
}

// Sends an edit and returns its first reply's status ("accepted", "busy", ...)
// without waiting for the result.
inline std::string submit(service::Client& client, const std::string& id, const edit::EditRequest& e) {
  // The first reply for this id: a `done` of an earlier submission on the same
  // connection may arrive in between and is skipped.
  try {
    return client.call(service::make_edit_request(id, e)).header.value("status", std::string("?"));
  } catch (const Error&) {
    return "no reply";
  }
}

// Fetches a job by id until it is no longer queued or running.
inline service::Message wait_result(service::Client& client, const std::string& id, int attempts = 300) {
  service::Message reply;
  for (int i = 0; i < attempts; ++i) {
    reply = client.result(id);
    if (reply.header.value("status", std::string()) != service::status::kAccepted) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return reply;
}

}  // namespace feu::test
