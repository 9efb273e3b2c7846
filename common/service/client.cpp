#include "service/client.h"

#include "service/endpoint_probe.h"

#include <random>
#include <thread>

namespace feu::service {

Client::Client(ClientOptions options) : options_(std::move(options)), context_(1) {
  check(options_.timeout_ms > 0, ErrorCode::kInvalidArgument, "client timeout must be positive");
  check(options_.retries >= 0, ErrorCode::kInvalidArgument, "client retries must be zero or more");
  for (size_t start = 0; start <= options_.server.size();) {
    size_t comma = std::min(options_.server.find(',', start), options_.server.size());
    std::string endpoint = options_.server.substr(start, comma - start);
    check(!endpoint.empty(), ErrorCode::kInvalidArgument,
          "server list '" + options_.server +
              "' has an empty entry (expected e.g. tcp://10.0.0.1:5555,tcp://10.0.0.2:5555)");
    servers_.push_back(endpoint);
    start = comma + 1;
  }
  // Clients of one fleet spread over its fronts.
  current_ = static_cast<size_t>(std::random_device{}()) % servers_.size();
  if (options_.probe_timeout_ms > 0 && !pick_listening_server(/*must_find=*/true)) return;
  connect(false);
}

bool Client::pick_listening_server(bool must_find) {
  std::string reasons;
  for (size_t tried = 0; tried < servers_.size(); ++tried) {
    try {
      probe_endpoint(server(), options_.probe_timeout_ms);
      return true;
    } catch (const Error& e) {
      reasons += (reasons.empty() ? "" : "; ") + std::string(e.what());
      current_ = (current_ + 1) % servers_.size();
    }
  }
  if (must_find) throw Error(ErrorCode::kIoError, reasons);
  return false;
}

void Client::connect(bool next_server) {
  // A fresh socket per attempt: a reply to the abandoned one can never be
  // mistaken for this attempt's, and a stuck connection is dropped. After a
  // failed attempt the next front is tried (Lazy Pirate over a fleet), the
  // first one that listens when probing is on.
  if (next_server) {
    current_ = (current_ + 1) % servers_.size();
    if (options_.probe_timeout_ms > 0) pick_listening_server(/*must_find=*/false);
  }
  socket_ = zmq::socket_t(context_, zmq::socket_type::dealer);
  socket_.set(zmq::sockopt::linger, 0);
  if (!options_.curve_server_key.empty()) {
    socket_.set(zmq::sockopt::curve_serverkey, options_.curve_server_key);
    socket_.set(zmq::sockopt::curve_publickey, options_.curve_public_key);
    socket_.set(zmq::sockopt::curve_secretkey, options_.curve_secret_key);
  }
  try {
    socket_.connect(server());
  } catch (const zmq::error_t& e) {
    throw Error(ErrorCode::kInvalidArgument, "cannot connect to '" + server() + "': " + e.what() +
                                                 " (expected e.g. tcp://127.0.0.1:5555)");
  }
}

void Client::send(const Message& message) {
  std::vector<Frame> frames = to_frames(message);
  for (size_t i = 0; i < frames.size(); ++i)
    socket_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
}

std::optional<Message> Client::receive(const std::string& id, std::chrono::steady_clock::time_point until,
                                       bool take_pushed) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    zmq::pollitem_t item{socket_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, left);
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      throw;
    }
    if (!(item.revents & ZMQ_POLLIN)) continue;
    std::vector<zmq::message_t> parts;
    (void)zmq::recv_multipart(socket_, std::back_inserter(parts));
    std::vector<Frame> frames;
    for (auto& part : parts) frames.push_back(part.to_string());
    if (frames.size() > 1 && frames[0].empty()) frames.erase(frames.begin());  // REQ-style envelope
    Message reply;
    try {
      reply = from_frames(frames);
    } catch (const ProtocolError&) {
      continue;  // not a feu reply
    }
    // An error without an id answers a request whose id the daemon could not
    // read (too long, not a string): on this socket, the one in flight.
    const std::string reply_id = reply.header.value("id", std::string());
    const bool unread_id = reply_id.empty() && reply.header.value("status", std::string()) == status::kError;
    if (!id.empty() && reply_id != id && !unread_id) continue;
    if (!take_pushed && reply.header.value("pushed", false)) continue;
    return reply;
  }
}

Message Client::call(const Message& request) {
  std::string id = request.header.value("id", std::string());
  answered_ = false;
  for (int attempt = 0; attempt <= options_.retries; ++attempt) {
    if (attempt > 0) connect();
    send(request);
    auto reply = receive(id, std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms),
                         /*take_pushed=*/false);
    if (reply) {
      answered_ = true;
      return *reply;
    }
  }
  throw Error(ErrorCode::kIoError, "no reply from " + options_.server + " after " +
                                       std::to_string(options_.retries + 1) + " attempts of " +
                                       std::to_string(options_.timeout_ms) + " ms (is feu-daemon running?)");
}

std::optional<Message> Client::call_raw(const std::vector<Frame>& frames) {
  answered_ = false;
  for (size_t i = 0; i < frames.size(); ++i)
    socket_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  auto reply = receive("", std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms),
                       /*take_pushed=*/true);
  answered_ = reply.has_value();
  return reply;
}

Message Client::edit(const std::string& id, const edit::EditRequest& request, std::optional<int64_t> deadline_ms) {
  Message message = make_edit_request(id, request, deadline_ms);
  int timeouts = 0;
  int busy = 0;
  answered_ = false;
  send(message);
  auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms);
  while (true) {
    auto reply = receive(id, until, /*take_pushed=*/true);
    if (!reply) {
      if (++timeouts > options_.retries)
        throw Error(ErrorCode::kIoError, "no reply for edit '" + id + "' from " + options_.server + " after " +
                                             std::to_string(timeouts) + " attempts of " +
                                             std::to_string(options_.timeout_ms) + " ms");
      connect();
      send(message);  // same id: the daemon answers from its journal or results
      until = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms);
      continue;
    }
    std::string state = reply->header.value("status", std::string());
    if (state == status::kAccepted) {
      // Accepted: the job is durable; keep waiting for its done.
      until = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms);
      continue;
    }
    if (state == status::kBusy) {
      // A full queue is an answer, not a loss: wait as hinted and resend,
      // within a bounded number of tries.
      if (++busy > std::max(10, options_.retries * 10)) {
        answered_ = true;
        return *reply;
      }
      int64_t wait_ms = std::clamp<int64_t>(reply->header.value("retry_after_ms", int64_t(100)), 1, 30000);
      std::this_thread::sleep_for(std::chrono::milliseconds(wait_ms));
      send(message);
      until = std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms);
      continue;
    }
    answered_ = true;
    return *reply;
  }
}

void Client::throw_if_error(const Message& reply) {
  std::string state = reply.header.value("status", std::string());
  if (state != status::kError && state != status::kBusy) return;
  const auto& error = reply.header.contains("error") ? reply.header["error"] : nlohmann::json::object();
  throw ProtocolError(error.value("code", std::string("internal")),
                      error.value("message", std::string("the daemon reported an error without a message")));
}

std::string Client::new_id() {
  static thread_local std::mt19937_64 rng(std::random_device{}() ^
                                          static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char buffer[33];
  snprintf(buffer, sizeof buffer, "%016llx%016llx", static_cast<unsigned long long>(rng()),
           static_cast<unsigned long long>(rng()));
  return buffer;
}

}  // namespace feu::service
