#include "service/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/files.h"
#include "core/text.h"
#include "service/curve_keys.h"

namespace feu::service {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kMaxBurst = 256;                   // requests read before one group commit
constexpr uint64_t kCompactJournalBytes = 64u << 20;
constexpr int64_t kPruneIntervalMs = 60000;
// Clients waiting on one id (submitter, Lazy Pirate retries, pollers): the
// oldest are forgotten beyond this; they can still fetch the result by id.
constexpr size_t kMaxRoutesPerJob = 16;
// Complete messages libzmq queues per connection before it stops reading that
// connection (TCP back-pressure): with ZMQ_MAXMSGSIZE this bounds what one
// peer can make the daemon hold (see daemon/PROTOCOL.md, "Resource bounds").
constexpr int kReceiveHighWaterMark = 8;
// Result-store retries after a failure: first delay, doubling up to the cap.
constexpr int64_t kStoreRetryFirstMs = 100;
constexpr int64_t kStoreRetryMaxMs = 5000;

std::string short_hash(const std::string& text) { return sha256_bytes(text.data(), text.size()).substr(0, 12); }

std::string printable(const std::string& id) { return printable_id(id); }

ServerConfig validated(ServerConfig config) {
  config.validate();
  config.queue.redis.result_ttl_s = config.result_retention_s;  // one retention for both stores
  return config;
}

size_t frames_bytes(const std::vector<Frame>& frames) {
  size_t bytes = 0;
  for (const Frame& frame : frames) bytes += frame.size();
  return bytes;
}

// Resident memory now and at its peak, from /proc/self/status.
json process_memory_json() {
  json memory = json::object();
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    for (const auto& [key, name] : {std::pair<const char*, const char*>{"VmRSS:", "rss_bytes"}, {"VmHWM:", "peak_rss_bytes"}})
      if (line.rfind(key, 0) == 0) memory[name] = std::stoll(line.substr(std::strlen(key))) * 1024;
  }
  return memory;
}

}  // namespace

std::string printable_id(const std::string& id) { return escape_text(id, 128); }

void Server::Pending::add_route(const Route& route) {
  if (route.identity.empty()) return;
  for (const Route& known : routes)
    if (known.identity == route.identity) return;
  if (routes.size() >= kMaxRoutesPerJob) routes.erase(routes.begin());
  routes.push_back(route);
}

Server::Server(ServerConfig config, Backend& backend, std::function<std::string()> resolve_current)
    : config_(validated(std::move(config))),
      state_lock_(config_.queue.is_redis() ? nullptr : std::make_unique<StateDirLock>(config_.journal_dir)),
      backend_(backend),
      resolve_current_(std::move(resolve_current)),
      started_(std::chrono::steady_clock::now()),
      context_(1),
      queue_(config_.max_queue) {
  if (config_.queue.is_redis()) {
    fleet_ = std::make_unique<RedisQueue>(config_.queue.redis);
    try {
      fleet_->connect();
    } catch (const Error& e) {
      // Not fatal: the fleet outlives a Redis restart, and so does starting during one.
      fleet_unreachable(e);
    }
  } else {
    open_local_store();
  }
  if (config_.serves_clients()) bind_router();
  wake_ = zmq::socket_t(context_, zmq::socket_type::pair);
  wake_endpoint_ = "inproc://feu-wake-" + std::to_string(reinterpret_cast<uintptr_t>(this));
  wake_.bind(wake_endpoint_);

  if (resolve_current_) {
    try {
      last_current_dir_ = resolve_current_();
    } catch (const std::exception& e) {
      spdlog::warn("reload: cannot resolve the current artifact version: {}", e.what());
    }
  }
  reload_status_ = {{"state", "idle"}, {"version_dir", last_current_dir_}};
}

void Server::open_local_store() {
  results_ = std::make_unique<ResultStore>((fs::path(config_.journal_dir) / "results").string(),
                                           config_.result_retention_s * 1000, config_.max_results,
                                           config_.max_result_bytes);
  std::vector<JournalEntry> unfinished;
  journal_ = std::make_unique<Journal>(config_.journal_dir, &unfinished);
  journal_dropped_bytes_ = journal_->dropped_bytes();
  const JournalReplay& replay = journal_->replay();
  if (replay.corrupt_regions > 0)
    spdlog::error("journal: {} damaged region(s) of {} bytes in total were skipped (each can hold an accepted job "
                  "that is now lost); {} intact records were recovered around them; the damaged file was kept as {}",
                  replay.corrupt_regions, replay.corrupt_bytes, replay.records, replay.quarantined_path);
  if (replay.tail_bytes > 0)
    spdlog::warn("journal: dropped an unreadable tail of {} bytes (a crash mid-append, whose client never heard "
                 "`accepted`, or damage to the last record)",
                 replay.tail_bytes);

  // Recovery: every job accepted before a crash runs again unless its result
  // was stored (the crash hit between storing it and journaling it done).
  for (auto& entry : unfinished) {
    if (results_->contains(entry.id) || pending_.count(entry.id)) {
      journal_->append_done(entry.id);
      continue;
    }
    auto job = std::make_shared<Job>();
    job->id = entry.id;
    job->digest = entry.digest;
    job->accepted_ms = entry.accepted_ms;
    job->deadline_ms = entry.deadline_ms;
    job->replayed = true;
    job->frames = std::move(entry.frames);
    try {
      Request request = parse_request(job->frames, config_.limits);
      job->edit = std::move(request.edit);
    } catch (const ProtocolError& e) {
      // Accepted under older, looser limits: it still gets a final answer.
      complete(job, error_reply(job->id, e.code(), e.what()), json::object());
      continue;
    }
    Pending& pending = pending_[job->id];
    pending.job = job;
    pending.bytes = frames_bytes(job->frames);
    pending_bytes_ += pending.bytes;
    queue_.push_recovered(job);
    ++recovered_jobs_;
  }
  { std::lock_guard<std::mutex> lock(completions_mutex_); completions_.clear(); }  // nobody to tell yet
  if (recovered_jobs_ > 0) spdlog::info("journal: recovered {} unfinished jobs", recovered_jobs_);
}

void Server::bind_router() {
  router_ = zmq::socket_t(context_, zmq::socket_type::router);
  if (config_.curve.enabled) {
    const std::string secret = read_secret_key_file(config_.curve.secret_key_file, "daemon.curve.secret_key_file");
    std::vector<std::string> allowed = read_allowed_clients(config_.curve.allowed_clients_file);
    // The ZAP handler must exist before clients can connect.
    zap_ = zmq::socket_t(context_, zmq::socket_type::rep);
    zap_.bind("inproc://zeromq.zap.01");
    zap_thread_ = std::thread(&Server::zap_loop, this, std::move(allowed));
    router_.set(zmq::sockopt::curve_server, 1);
    router_.set(zmq::sockopt::curve_secretkey, secret);
    router_.set(zmq::sockopt::zap_domain, "feu");
  }
  // Replies to a vanished client raise EHOSTUNREACH instead of vanishing
  // silently: the daemon counts them and keeps the result for fetch-by-id.
  router_.set(zmq::sockopt::router_mandatory, 1);
  router_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(config_.max_frame_bytes()));
  router_.set(zmq::sockopt::rcvhwm, kReceiveHighWaterMark);
  router_.set(zmq::sockopt::linger, 1000);
  try {
    router_.bind(config_.bind);
  } catch (const zmq::error_t& e) {
    throw Error(ErrorCode::kIoError, "cannot bind " + config_.bind + ": " + e.what());
  }
  endpoint_ = router_.get(zmq::sockopt::last_endpoint);
}

Server::~Server() {
  stop_requested_ = true;
  draining_ = true;
  drain_deadline_ms_ = 0;
  queue_.wake();
  if (worker_.joinable()) worker_.join();
  if (fleet_worker_.joinable()) fleet_worker_.join();
  zap_stop_ = true;
  if (zap_thread_.joinable()) zap_thread_.join();
  std::thread reload;
  {
    std::lock_guard<std::mutex> lock(reload_mutex_);
    reload_queued_dir_.clear();
    reload.swap(reload_thread_);
  }
  if (reload.joinable()) reload.join();
}

// ---------------------------------------------------------------- I/O thread

void Server::run() {
  worker_ = std::thread(&Server::worker_loop, this);
  if (fleet_ && config_.runs_jobs()) fleet_worker_ = std::thread(&Server::fleet_worker_loop, this);
  if (fleet_)
    spdlog::info("feu-daemon ({}) {} on queue {} stream {} group {} (artifact version '{}', max_queue {}, max_batch {})",
                 role_name(config_.role), endpoint_.empty() ? "not listening" : "listening on " + endpoint_,
                 config_.queue.redis.url, config_.queue.redis.stream, config_.queue.redis.group,
                 backend_.artifact_version(), config_.max_queue, config_.max_batch);
  else
    spdlog::info("feu-daemon listening on {} (artifact version '{}', max_queue {}, max_batch {}, {} recovered jobs)",
                 endpoint_, backend_.artifact_version(), config_.max_queue, config_.max_batch, recovered_jobs_);
  while (true) {
    try {
      // A worker alone has no client socket: it only waits on its wake-ups.
      zmq::pollitem_t items[] = {{wake_.handle(), 0, ZMQ_POLLIN, 0}, {router_.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, config_.serves_clients() ? 2 : 1, std::chrono::milliseconds(fleet_ ? 5 : 50));
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t ignored;
        while (wake_.recv(ignored, zmq::recv_flags::dontwait)) {
        }
      }
      if (config_.serves_clients() && (items[1].revents & ZMQ_POLLIN)) receive_burst();
      deliver_completions();
      if (fleet_) fleet_deliver();
      int64_t now = now_unix_ms();
      if (now - last_maintenance_ms_ >= 100 || (stop_requested_ && !draining_)) {
        last_maintenance_ms_ = now;
        maintenance();
      }
      if (draining_ && worker_done_ && (!fleet_worker_.joinable() || fleet_worker_done_)) {
        deliver_completions();
        break;
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;  // a signal: its flag is checked next round
      spdlog::error("socket error: {}", e.what());
    }
  }
  worker_.join();
  if (fleet_worker_.joinable()) fleet_worker_.join();
  if (fleet_) {
    spdlog::info("feu-daemon stopped: {} done; queued jobs stay in Redis for the fleet", stats_.counter("jobs.done"));
    return;
  }
  // Jobs still queued stay journaled: the next start runs them.
  std::vector<JournalEntry> left;
  for (const auto& [id, pending] : pending_)
    left.push_back(JournalEntry{id, pending.job->digest, pending.job->accepted_ms, pending.job->deadline_ms,
                                pending.job->frames});
  std::sort(left.begin(), left.end(), [](const auto& a, const auto& b) { return a.accepted_ms < b.accepted_ms; });
  journal_->compact(left);
  spdlog::info("feu-daemon stopped: {} done, {} jobs left journaled for the next start",
               stats_.counter("jobs.done"), left.size());
}

void Server::receive_burst() {
  for (size_t n = 0; n < kMaxBurst; ++n) {
    zmq::message_t part;
    if (!router_.recv(part, zmq::recv_flags::dontwait)) break;
    Route route;
    route.identity = part.to_string();
    std::vector<Frame> frames;
    bool too_many = false;
    bool first = true;
    while (part.more()) {
      zmq::message_t next;
      (void)router_.recv(next);  // the rest of a multipart message is already here
      if (first && next.size() == 0 && next.more()) {
        route.delimiter = true;  // REQ-style envelope
      } else if (frames.size() < config_.limits.max_frames) {
        frames.emplace_back(static_cast<const char*>(next.data()), next.size());
      } else {
        too_many = true;  // drained and dropped: the limit bounds memory too
      }
      first = false;
      part = std::move(next);
    }
    handle_message(route, frames, too_many);
  }
  commit_accepted();
}

void Server::handle_message(const Route& route, std::vector<Frame>& frames, bool too_many_frames) {
  stats_.count("requests");
  std::string id;
  try {
    if (too_many_frames)
      throw ProtocolError(codes::kPayloadTooLarge,
                          "message has more than " + std::to_string(config_.limits.max_frames) + " frames");
    Request request = parse_request(frames, config_.limits);
    id = request.id;
    switch (request.type) {
      case RequestType::kPing: {
        Message reply;
        reply.header = reply_header(id, status::kDone);
        reply.header["type"] = "ping";
        reply.header["protocol"] = kProtocolVersion;
        reply.header["time_ms"] = now_unix_ms();
        reply.header["artifact_version"] = backend_.artifact_version();
        send(route, reply);
        return;
      }
      case RequestType::kStatus: {
        Message reply;
        reply.header = status_json();
        reply.header.update(reply_header(id, status::kDone));
        reply.header["type"] = "status";
        send(route, reply);
        return;
      }
      case RequestType::kEdit: handle_edit(route, request, frames); return;
      case RequestType::kResult: handle_result(route, request); return;
      case RequestType::kCancel: handle_cancel(route, request); return;
      case RequestType::kRetrieve: handle_retrieve(route, request); return;
    }
  } catch (const ProtocolError& e) {
    if (id.empty() && !frames.empty()) id = salvage_id(frames[0], config_.limits);
    stats_.count("rejected." + e.code());
    spdlog::warn("rejected request id='{}': {}: {}", printable(id), e.code(), e.what());
    send(route, error_reply(id, e.code(), e.what()));
  } catch (const Error& e) {
    stats_.count(std::string("rejected.") + e.code_name());
    spdlog::warn("request id='{}' failed: {}: {}", printable(id), e.code_name(), e.what());
    send(route, error_reply(id, e.code_name(), e.what()));
  } catch (const std::exception& e) {
    stats_.count("rejected.internal");
    spdlog::error("request id='{}' failed unexpectedly: {}", printable(id), e.what());
    send(route, error_reply(id, error_code_name(ErrorCode::kInternal), e.what()));
  }
}

void Server::handle_edit(const Route& route, Request& request, std::vector<Frame>& frames) {
  if (fleet_) return fleet_edit(route, request, frames);
  const std::string& id = request.id;
  auto conflict = [&] {
    stats_.count("rejected.id_conflict");
    send(route, error_reply(id, codes::kIdConflict,
                            "id '" + printable(id) + "' was already used for a different request"));
  };
  // Idempotency: a known id is answered from its result or its pending job,
  // never run again.
  if (results_->contains(id)) {
    if (results_->digest_of(id) != request.digest) return conflict();
    if (auto stored = results_->get(id)) {
      stored->header["duplicate"] = true;
      stats_.count("duplicates");
      send(route, *stored);
      return;
    }
  }
  if (auto it = pending_.find(id); it != pending_.end()) {
    if (it->second.job->digest != request.digest) return conflict();
    it->second.add_route(route);  // a Lazy Pirate retry is answered too
    Message accepted;
    accepted.header = reply_header(id, status::kAccepted);
    accepted.header["duplicate"] = true;
    accepted.header["state"] = queue_.contains(id) ? "queued" : "running";
    stats_.count("duplicates");
    after_commit_.emplace_back(route, std::move(accepted));
    return;
  }
  if (draining_) {
    send(route, error_reply(id, codes::kShuttingDown, "the daemon is shutting down and accepts no new jobs"));
    return;
  }
  // Everything the engine would refuse is refused now, before the request
  // costs a journal write and a place in the queue (throws: a typed error reply).
  backend_.validate(request.edit);
  const size_t request_bytes = frames_bytes(frames);
  size_t waiting = queue_.size() + to_journal_.size() + unstored_count();
  if (waiting >= config_.max_queue || pending_bytes_ + request_bytes > config_.max_queue_bytes) {
    stats_.count(waiting >= config_.max_queue ? "busy" : "busy.bytes");
    send(route, busy_reply(id, retry_after_ms(), waiting));
    return;
  }
  auto job = std::make_shared<Job>();
  job->id = id;
  job->type = RequestType::kEdit;
  job->edit = std::move(request.edit);
  job->digest = request.digest;
  job->frames = std::move(frames);
  job->accepted_ms = now_unix_ms();
  int64_t deadline = request.deadline_ms.value_or(config_.default_deadline_ms);
  job->deadline_ms = deadline > 0 ? job->accepted_ms + deadline : 0;
  Pending& pending = pending_[id];
  pending.job = job;
  pending.add_route(route);
  pending.bytes = request_bytes;
  pending_bytes_ += request_bytes;
  to_journal_.push_back(JournalEntry{id, job->digest, job->accepted_ms, job->deadline_ms, job->frames});
  Message accepted;
  accepted.header = reply_header(id, status::kAccepted);
  accepted.header["queue_depth"] = waiting + 1;
  after_commit_.emplace_back(route, std::move(accepted));
}

void Server::commit_accepted() {
  if (fleet_) return fleet_commit();
  std::set<std::string> failed;
  if (!to_journal_.empty()) {
    try {
      journal_->append_accepted(to_journal_);  // fsync before any `accepted` leaves
      for (const auto& entry : to_journal_) queue_.push_recovered(pending_.at(entry.id).job);
      stats_.count("accepted", static_cast<int64_t>(to_journal_.size()));
    } catch (const Error& e) {
      spdlog::error("journal append failed, refusing {} jobs: {}", to_journal_.size(), e.what());
      for (const auto& entry : to_journal_) {
        failed.insert(entry.id);
        auto it = pending_.find(entry.id);
        pending_bytes_ -= it->second.bytes;
        pending_.erase(it);
      }
    }
    to_journal_.clear();
  }
  for (auto& [route, message] : after_commit_) {
    std::string id = message.header.value("id", std::string());
    if (failed.count(id))
      send(route, error_reply(id, error_code_name(ErrorCode::kIoError), "the job journal could not be written"));
    else
      send(route, message);
  }
  after_commit_.clear();
}

void Server::handle_result(const Route& route, const Request& request) {
  if (fleet_) return fleet_result(route, request);
  const std::string& id = request.id;
  if (auto stored = results_->get(id)) {
    send(route, *stored);
    return;
  }
  if (auto it = pending_.find(id); it != pending_.end()) {
    it->second.add_route(route);  // its `done` comes here too, and to the submitter
    Message reply;
    reply.header = reply_header(id, status::kAccepted);
    reply.header["state"] = queue_.contains(id) ? "queued" : "running";
    send(route, reply);
    return;
  }
  send(route, error_reply(id, error_code_name(ErrorCode::kNotFound),
                          "no job with id '" + printable(id) + "' (never submitted, or its result expired after " +
                              std::to_string(config_.result_retention_s) + " s)"));
}

void Server::handle_cancel(const Route& route, const Request& request) {
  if (fleet_) return fleet_cancel(route, request);
  const std::string& id = request.id;
  Message reply;
  reply.header = reply_header(id, status::kDone);
  reply.header["type"] = "cancel";
  auto it = pending_.find(id);
  if (it != pending_.end() && queue_.remove(id)) {
    JobPtr job = it->second.job;
    complete(job, error_reply(id, error_code_name(ErrorCode::kCancelled), "cancelled by a client"), json::object());
    reply.header["cancelled"] = true;
    reply.header["state"] = "cancelled";
  } else if (it != pending_.end()) {
    reply.header["cancelled"] = false;
    reply.header["state"] = "running";  // a running batch cannot be interrupted
  } else if (results_->contains(id)) {
    reply.header["cancelled"] = false;
    reply.header["state"] = "finished";
  } else {
    send(route, error_reply(id, error_code_name(ErrorCode::kNotFound), "no job with id '" + printable(id) + "'"));
    return;
  }
  send(route, reply);
}

void Server::handle_retrieve(const Route& route, Request& request) {
  if (draining_) {
    send(route, error_reply(request.id, codes::kShuttingDown, "the daemon is shutting down"));
    return;
  }
  auto job = std::make_shared<Job>();
  job->id = request.id;
  job->type = RequestType::kRetrieve;
  job->text = request.text;
  job->k = request.k;
  job->accepted_ms = now_unix_ms();
  job->route = route.identity;
  job->route_delimiter = route.delimiter;
  // Retrieval is answered directly with `done` (no journal: it is cheap to ask again).
  if (queue_.size() + to_journal_.size() >= config_.max_queue || !queue_.push(job)) {
    stats_.count("busy");
    send(route, busy_reply(request.id, retry_after_ms(), queue_.size()));
  }
}

bool Server::send(const Route& route, const Message& message) {
  if (route.identity.empty()) return false;
  std::vector<Frame> frames = to_frames(message);
  try {
    if (!router_.send(zmq::buffer(route.identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return false;  // the client's pipe is full
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;  // the client is gone
    throw;
  }
  if (route.delimiter) router_.send(zmq::message_t(), zmq::send_flags::sndmore);
  for (size_t i = 0; i < frames.size(); ++i)
    router_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  return true;
}

int64_t Server::retry_after_ms() const {
  double batch_ms = stats_.percentile("run", 0.5);
  if (batch_ms <= 0) batch_ms = 100;
  double batches_ahead = std::ceil(static_cast<double>(queue_.size()) / config_.max_batch);
  return static_cast<int64_t>(std::clamp(batches_ahead * batch_ms, 20.0, 30000.0));
}

void Server::deliver_completions() {
  std::deque<Completion> ready;
  {
    std::lock_guard<std::mutex> lock(completions_mutex_);
    ready.swap(completions_);
  }
  for (auto& completion : ready) {
    std::vector<Route> routes;
    if (completion.job->type == RequestType::kEdit) {
      auto it = pending_.find(completion.job->id);
      if (it == pending_.end()) continue;
      routes = std::move(it->second.routes);
      pending_bytes_ -= it->second.bytes;
      pending_.erase(it);
    } else {
      routes.push_back(Route{completion.job->route, completion.job->route_delimiter});
    }
    if (routes.empty()) stats_.count("replies.no_client");  // recovered after a restart: served by id
    size_t delivered = 0;
    for (const Route& route : routes) {
      if (send(route, completion.reply)) ++delivered;
      else stats_.count("replies.unroutable");
    }
    if (!routes.empty() && delivered == 0)
      spdlog::info("job id={}: client gone, result kept for fetch by id", printable(completion.job->id));
  }
}

void Server::maintenance() {
  int64_t now = now_unix_ms();
  if (stop_requested_ && !draining_) {
    drain_deadline_ms_ = now + config_.drain_timeout_ms;
    draining_ = true;
    spdlog::info("shutdown requested: accepting no new jobs, draining {} queued jobs for up to {} ms",
                 queue_.size(), config_.drain_timeout_ms);
    queue_.wake();
  }
  for (const JobPtr& job : queue_.take_expired(now))
    complete(job, error_reply(job->id, error_code_name(ErrorCode::kDeadlineExceeded),
                              "the job waited past its deadline of " +
                                  std::to_string(job->deadline_ms - job->accepted_ms) + " ms"),
             {{"queue_ms", now - job->accepted_ms}});

  auto resolve = [this]() -> std::string {
    if (!resolve_current_) return "";
    try {
      return resolve_current_();
    } catch (const std::exception& e) {
      spdlog::debug("reload: cannot resolve current: {}", e.what());
      return "";
    }
  };
  if (reload_requested_.exchange(false)) {
    spdlog::info("SIGHUP: reloading the artifact version that <root>/current names; the config file is not "
                 "re-read (restart the daemon for config changes)");
    std::string dir = resolve();
    if (dir.empty()) {
      std::lock_guard<std::mutex> lock(reload_mutex_);
      reload_status_["state"] = "failed";
      reload_status_["error"] = "reload requested, but no artifact version to load (no artifacts root configured "
                                "or <root>/current missing)";
      spdlog::error("reload: {}", reload_status_["error"].get<std::string>());
    } else {
      start_reload(dir, "SIGHUP");
    }
  }
  if (resolve_current_ && config_.reload_poll_ms > 0 && now - last_reload_poll_ms_ >= config_.reload_poll_ms) {
    last_reload_poll_ms_ = now;
    std::string dir = resolve();
    bool changed;
    {
      std::lock_guard<std::mutex> lock(reload_mutex_);
      changed = !dir.empty() && dir != last_current_dir_;
    }
    if (changed) start_reload(dir, "current changed");
  }
  // Expired results are already absent on read; pruning frees their disk space.
  if (!results_) return;  // the redis queue: Redis expires results and keeps no journal here
  if (now - last_prune_ms_ >= std::min<int64_t>(kPruneIntervalMs, config_.result_retention_s * 1000)) {
    last_prune_ms_ = now;
    if (size_t pruned = results_->prune(now)) spdlog::info("result store: pruned {} expired results", pruned);
  }
  if (journal_->size_bytes() > kCompactJournalBytes) {
    std::vector<JournalEntry> live;
    for (const auto& [id, pending] : pending_)
      live.push_back(JournalEntry{id, pending.job->digest, pending.job->accepted_ms, pending.job->deadline_ms,
                                  pending.job->frames});
    std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) { return a.accepted_ms < b.accepted_ms; });
    journal_->compact(live);
  }
}

// ---------------------------------------------------------------- hot reload

void Server::start_reload(const std::string& version_dir, const std::string& why) {
  std::lock_guard<std::mutex> lock(reload_mutex_);
  last_current_dir_ = version_dir;
  if (reload_running_) {
    reload_queued_dir_ = version_dir;  // loaded right after the one in progress
    return;
  }
  if (reload_thread_.joinable()) reload_thread_.join();
  reload_running_ = true;
  spdlog::info("reload: loading {} ({})", version_dir, why);
  reload_status_ = {{"state", "loading"}, {"version_dir", version_dir}, {"reason", why}, {"started", utc_timestamp()}};
  reload_thread_ = std::thread([this, dir = version_dir]() mutable {
    while (true) {
      auto t0 = std::chrono::steady_clock::now();
      std::string error;
      try {
        backend_.reload(dir);
      } catch (const Error& e) {
        error = std::string(e.code_name()) + ": " + e.what();
      } catch (const std::exception& e) {
        error = std::string("internal: ") + e.what();
      }
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::lock_guard<std::mutex> lock(reload_mutex_);
      reload_status_["finished"] = utc_timestamp();
      reload_status_["load_ms"] = std::round(ms);
      if (error.empty()) {
        reload_status_["state"] = "ok";
        reload_status_.erase("error");
        reload_status_["artifact_version"] = backend_.artifact_version();
        stats_.count("reloads.ok");
        spdlog::info("reload: now serving '{}' from {} (loaded in {:.0f} ms)", backend_.artifact_version(), dir, ms);
      } else {
        reload_status_["state"] = "failed";
        reload_status_["error"] = error;
        reload_status_["artifact_version"] = backend_.artifact_version();
        stats_.count("reloads.failed");
        spdlog::error("reload: {} failed, still serving '{}': {}", dir, backend_.artifact_version(), error);
      }
      if (reload_queued_dir_.empty()) {
        reload_running_ = false;
        return;
      }
      dir = std::move(reload_queued_dir_);
      reload_queued_dir_.clear();
      reload_status_ = {{"state", "loading"}, {"version_dir", dir}, {"reason", "current changed"},
                        {"started", utc_timestamp()}};
    }
  });
}

// ---------------------------------------------------------------- worker

void Server::worker_loop() {
  zmq::socket_t wake(context_, zmq::socket_type::pair);
  wake.connect(wake_endpoint_);
  while (true) {
    retry_unstored();
    if (draining_ && ((queue_.size() == 0 && unstored_count() == 0) || now_unix_ms() > drain_deadline_ms_)) break;
    std::vector<JobPtr> batch = queue_.pop_batch(config_.max_batch, std::chrono::milliseconds(config_.max_wait_ms),
                                                 std::chrono::milliseconds(100));
    if (batch.empty()) continue;
    run_batch(batch, wake);
    (void)wake.send(zmq::str_buffer("w"), zmq::send_flags::dontwait);
  }
  if (size_t left = unstored_count())
    spdlog::error("{} finished jobs could not store their results before shutdown: they stay journaled and run "
                  "again at the next start",
                  left);
  worker_done_ = true;
  (void)wake.send(zmq::str_buffer("w"), zmq::send_flags::dontwait);
}

void Server::run_batch(const std::vector<JobPtr>& batch, zmq::socket_t& wake) {
  int64_t start = now_unix_ms();
  std::vector<JobPtr> live;
  for (const JobPtr& job : batch) {
    if (job->deadline_ms > 0 && job->deadline_ms < start)
      complete(job, deadline_reply(job, start), {{"queue_ms", start - job->accepted_ms}});
    else
      live.push_back(job);
  }
  if (live.empty()) return;
  if (live.front()->type == RequestType::kRetrieve) return run_retrieve(live.front());
  std::vector<Message> replies = run_edits(live, start);
  std::vector<ResultStore::Item> items;
  for (size_t i = 0; i < live.size(); ++i) items.push_back({live[i]->id, live[i]->digest, &replies[i]});
  try {
    results_->put_many(items);  // one directory fsync for the batch
  } catch (const std::exception& e) {
    // Nothing of the batch was stored: no reply leaves, no job is marked done.
    for (size_t i = 0; i < live.size(); ++i) defer_store(live[i], std::move(replies[i]), e.what());
    return;
  }
  for (size_t i = 0; i < live.size(); ++i) finish(live[i], std::move(replies[i]));
}

Message Server::deadline_reply(const JobPtr& job, int64_t now_ms) const {
  (void)now_ms;
  return error_reply(job->id, error_code_name(ErrorCode::kDeadlineExceeded),
                     "the job waited past its deadline of " + std::to_string(job->deadline_ms - job->accepted_ms) +
                         " ms");
}

std::vector<Message> Server::run_edits(const std::vector<JobPtr>& live, int64_t start) {
  std::vector<edit::EditRequest> requests;
  for (const JobPtr& job : live) requests.push_back(job->edit);
  auto t0 = std::chrono::steady_clock::now();
  std::vector<EditOutcome> outcomes;
  try {
    outcomes = backend_.edit_batch(requests);
    if (outcomes.size() != requests.size())
      throw Error(ErrorCode::kInternal, "backend returned " + std::to_string(outcomes.size()) + " outcomes for " +
                                            std::to_string(requests.size()) + " requests");
  } catch (const Error& e) {
    outcomes.assign(requests.size(), EditOutcome::failure(e));
  } catch (const std::exception& e) {
    outcomes.assign(requests.size(), EditOutcome::failure(error_code_name(ErrorCode::kInternal), e.what()));
  }
  double run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  stats_.count("batches");
  stats_.observe("run", run_ms);
  stats_.observe("batch_size", static_cast<double>(live.size()));
  std::vector<Message> replies;
  replies.reserve(live.size());
  for (size_t i = 0; i < live.size(); ++i) {
    const JobPtr& job = live[i];
    json timings = {{"queue_ms", start - job->accepted_ms}, {"run_ms", std::round(run_ms * 1000) / 1000},
                    {"batch_size", live.size()}};
    replies.push_back(outcomes[i].ok() ? edit_done_reply(job->id, *outcomes[i].result, timings)
                                       : error_reply(job->id, outcomes[i].error_code, outcomes[i].error_message));
    finalize_timings(job, replies.back(), timings);
  }
  return replies;
}

void Server::run_retrieve(const JobPtr& job) {
  Message reply;
  auto t0 = std::chrono::steady_clock::now();
  try {
    reply.header = reply_header(job->id, status::kDone);
    reply.header["type"] = "retrieve";
    reply.header["result"] = backend_.retrieve(job->text, job->k);
  } catch (const Error& e) {
    reply = error_reply(job->id, e.code_name(), e.what());
  } catch (const std::exception& e) {
    reply = error_reply(job->id, error_code_name(ErrorCode::kInternal), e.what());
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  complete(job, std::move(reply), {{"run_ms", std::round(ms * 1000) / 1000}});
}

void Server::finalize_timings(const JobPtr& job, Message& reply, const json& timings) {
  json all_timings = timings.is_object() ? timings : json::object();
  all_timings["total_ms"] = now_unix_ms() - job->accepted_ms;
  reply.header["timings_ms"] = all_timings;
}

void Server::complete(const JobPtr& job, Message reply, const json& timings) {
  finalize_timings(job, reply, timings);
  if (job->type == RequestType::kEdit) {
    try {
      results_->put(job->id, job->digest, reply);
    } catch (const std::exception& e) {
      defer_store(job, std::move(reply), e.what());
      return;
    }
  }
  finish(job, std::move(reply));
}

void Server::defer_store(const JobPtr& job, Message reply, const std::string& why) {
  stats_.count("store_errors");
  std::lock_guard<std::mutex> lock(unstored_mutex_);
  spdlog::error("job id={}: its result cannot be stored ({}); the job stays unfinished and the store is retried "
                "in {} ms",
                printable(job->id), why, kStoreRetryFirstMs);
  unstored_.push_back(Unstored{job, std::move(reply), 1, now_unix_ms() + kStoreRetryFirstMs});
}

void Server::retry_unstored() {
  std::vector<Unstored> due;
  const int64_t now = now_unix_ms();
  {
    std::lock_guard<std::mutex> lock(unstored_mutex_);
    if (unstored_.empty()) return;
    auto split = std::partition(unstored_.begin(), unstored_.end(),
                                [now](const Unstored& u) { return u.next_try_ms > now; });
    due.assign(std::make_move_iterator(split), std::make_move_iterator(unstored_.end()));
    unstored_.erase(split, unstored_.end());
  }
  std::vector<Unstored> still_failing;
  for (Unstored& item : due) {
    try {
      results_->put(item.job->id, item.job->digest, item.reply);
    } catch (const std::exception& e) {
      stats_.count("store_errors");
      const int64_t delay = std::min(kStoreRetryMaxMs, kStoreRetryFirstMs << std::min(item.attempts, 16));
      spdlog::warn("job id={}: storing its result failed again (attempt {}): {}; next try in {} ms",
                   printable(item.job->id), item.attempts + 1, e.what(), delay);
      item.attempts++;
      item.next_try_ms = now_unix_ms() + delay;
      still_failing.push_back(std::move(item));
      continue;
    }
    spdlog::info("job id={}: result stored after {} failed attempts", printable(item.job->id), item.attempts);
    finish(item.job, std::move(item.reply));
  }
  if (still_failing.empty()) return;
  std::lock_guard<std::mutex> lock(unstored_mutex_);
  for (Unstored& item : still_failing) unstored_.push_back(std::move(item));
}

size_t Server::unstored_count() const {
  std::lock_guard<std::mutex> lock(unstored_mutex_);
  return unstored_.size();
}

void Server::finish(const JobPtr& job, Message reply) {
  // The result was stored (fsynced) before this: a result a client saw is
  // never lost, and a restart never runs the job again.
  if (job->type == RequestType::kEdit) {
    try {
      journal_->append_done(job->id);
    } catch (const std::exception& e) {
      spdlog::error("job id={}: cannot journal it done: {}", printable(job->id), e.what());
    }
  }
  record_outcome(job, reply);
  std::lock_guard<std::mutex> lock(completions_mutex_);
  completions_.push_back(Completion{job, std::move(reply)});
}

void Server::record_outcome(const JobPtr& job, const Message& reply) {
  const json all_timings = reply.header["timings_ms"];
  int64_t total_ms = all_timings.value("total_ms", int64_t(0));
  std::string outcome = reply.header.value("status", std::string()) == status::kDone
                            ? "done"
                            : reply.header["error"].value("code", std::string("internal"));
  if (job->type == RequestType::kEdit) {
    stats_.count(outcome == "done" ? "jobs.done" : "jobs.error." + outcome);
    if (all_timings.contains("queue_ms")) stats_.observe("queue", all_timings["queue_ms"].get<double>());
    stats_.observe("total", static_cast<double>(total_ms));
    const json& diagnostics = reply.header.contains("diagnostics") ? reply.header["diagnostics"] : json();
    if (diagnostics.is_object() && diagnostics.contains("timings_ms") && diagnostics["timings_ms"].is_object())
      for (const auto& [stage, ms] : diagnostics["timings_ms"].items())
        if (ms.is_number()) stats_.observe("engine." + stage, ms.get<double>());
    spdlog::info("job id={} type=edit instr={} method={} latent={} alphas={} batch={} queue_ms={} run_ms={} total_ms={} "
                 "replayed={} outcome={}",
                 printable(job->id), short_hash(job->edit.instruction), edit::Method::kGlobal == job->edit.method ? "global" : "feu",
                 edit::latent_kind_name(job->edit.latent_kind),
                 job->edit.alphas.empty() ? std::string("default") : std::to_string(job->edit.alphas.size()),
                 all_timings.value("batch_size", 0), all_timings.value("queue_ms", 0.0),
                 all_timings.value("run_ms", 0.0), all_timings.value("total_ms", 0.0), job->replayed, outcome);
  } else {
    stats_.count(outcome == "done" ? "retrieves.done" : "retrieves.error." + outcome);
    stats_.observe("retrieve", all_timings.value("run_ms", 0.0));
    spdlog::info("job id={} type=retrieve text={} k={} run_ms={} outcome={}", printable(job->id),
                 short_hash(job->text), job->k, all_timings.value("run_ms", 0.0), outcome);
  }
}

// ---------------------------------------------------------------- status, ZAP

json Server::status_json() const {
  json status = stats_.to_json();
  double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  status["server"] = {{"version", FEU_VERSION},
                      {"protocol", kProtocolVersion},
                      {"endpoint", endpoint_},
                      {"uptime_s", std::round(uptime * 10) / 10},
                      {"draining", draining_.load()},
                      {"curve", config_.curve.enabled}};
  status["artifact_version"] = backend_.artifact_version();
  status["engine"] = backend_.describe();
  status["memory"] = process_memory_json();
  {
    std::lock_guard<std::mutex> lock(reload_mutex_);
    status["reload"] = reload_status_;
  }
  size_t queued = queue_.size();
  status["queue"] = {{"depth", queued},
                     {"running", pending_.size() >= queued ? pending_.size() - queued : 0},
                     {"capacity", config_.max_queue},
                     {"capacity_bytes", config_.max_queue_bytes},
                     {"bytes", pending_bytes_},
                     {"max_batch", config_.max_batch},
                     {"max_wait_ms", config_.max_wait_ms}};
  if (fleet_) {
    status["queue"].update(fleet_status_json());
    return status;
  }
  status["results"] = {{"stored", results_->size()},
                        {"bytes", results_->bytes()},
                        {"evicted", results_->evicted()},
                        {"max_results", config_.max_results},
                        {"max_bytes", config_.max_result_bytes},
                        {"awaiting_storage", unstored_count()},
                        {"retention_s", config_.result_retention_s}};
  status["journal"] = {{"bytes", journal_->size_bytes()},
                       {"recovered_jobs", recovered_jobs_},
                       {"dropped_bytes_at_start", journal_dropped_bytes_},
                       {"corrupt_regions_at_start", journal_->replay().corrupt_regions},
                       {"quarantined", journal_->replay().quarantined_path}};
  return status;
}

void Server::zap_loop(std::vector<std::string> allowed_keys) {
  std::set<std::string> allowed(allowed_keys.begin(), allowed_keys.end());
  while (!zap_stop_) {
    zmq::pollitem_t item{zap_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> request;
      (void)zmq::recv_multipart(zap_, std::back_inserter(request));
      // ZAP 1.0 (RFC 27): version, request id, domain, address, identity,
      // mechanism, credentials (the client's 32-byte public key for CURVE).
      bool ok = request.size() >= 7 && request[5].to_string() == "CURVE" && request[6].size() == 32 &&
                allowed.count(request[6].to_string()) > 0;
      std::string address = request.size() > 3 ? request[3].to_string() : "";
      std::string user = ok ? z85_encode(static_cast<const uint8_t*>(request[6].data()), 32) : "";
      if (!ok) spdlog::warn("CURVE: refused a client from {} (key not in the allow-list)", address);
      std::string request_id = request.size() > 1 ? request[1].to_string() : "";
      std::vector<zmq::const_buffer> reply = {zmq::str_buffer("1.0"), zmq::buffer(request_id),
                                              ok ? zmq::str_buffer("200") : zmq::str_buffer("400"),
                                              ok ? zmq::str_buffer("OK") : zmq::str_buffer("key not allowed"),
                                              zmq::buffer(user), zmq::str_buffer("")};
      (void)zmq::send_multipart(zap_, reply);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
    }
  }
}

}  // namespace feu::service
