// Server with the redis queue (daemon.queue.backend: redis): the front's
// side on the I/O thread and the worker's fleet thread. See server.h and
// redis_queue.h for the design; daemon/PROTOCOL.md "Fleet" for what clients see.
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <thread>

#include "service/server.h"

namespace feu::service {
using nlohmann::json;

namespace {

// How long a front refuses at once after Redis failed, instead of blocking its
// I/O thread on a connection attempt per request.
constexpr int64_t kFleetRetryAfterFailureMs = 500;
// What busy replies advise: Redis down, or the stream full.
constexpr int64_t kFleetUnavailableRetryMs = 1000;
constexpr int64_t kFleetFullRetryMs = 250;
// How often a front asks Redis for the results its clients wait for.
constexpr int64_t kFleetPollMs = 5;
constexpr size_t kFleetPollChunk = 512;
// A worker's reconnect back-off after Redis failed: first delay, doubling up to the cap.
constexpr int64_t kWorkerBackoffFirstMs = 100;
constexpr int64_t kWorkerBackoffMaxMs = 2000;
// How long a worker's read waits for a first job (bounds its stop latency).
constexpr int kWorkerReadBlockMs = 100;

std::string pack_message(const Message& message) { return pack_frames(to_frames(message)); }

std::optional<Message> unpack_message(const std::string& packed) {
  std::vector<Frame> frames;
  if (!unpack_frames(packed.data(), packed.size(), &frames)) return std::nullopt;
  try {
    return from_frames(frames);
  } catch (const ProtocolError&) {
    return std::nullopt;
  }
}

// The stream entry's payload: [meta JSON, request frames...].
std::string job_payload(const Job& job) {
  std::vector<Frame> frames;
  frames.push_back(json{{"digest", job.digest}, {"accepted_ms", job.accepted_ms}, {"deadline_ms", job.deadline_ms}}
                       .dump());
  frames.insert(frames.end(), job.frames.begin(), job.frames.end());
  return pack_frames(frames);
}

std::string consumer_name() {
  static std::atomic<int> counter{0};
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

// ---------------------------------------------------------------- front (I/O thread)

bool Server::fleet_reachable_now() const { return now_unix_ms() >= fleet_retry_at_ms_; }

void Server::fleet_unreachable(const Error& error) {
  if (fleet_error_.empty())  // once per outage
    spdlog::error("queue: Redis is unreachable, answering busy until it returns: {}", error.what());
  fleet_error_ = error.what();
  fleet_retry_at_ms_ = now_unix_ms() + kFleetRetryAfterFailureMs;
  stats_.count("queue.unreachable");
}

Message Server::fleet_unavailable_reply(const std::string& id) const {
  Message reply = busy_reply(id, kFleetUnavailableRetryMs, 0);
  reply.header["error"]["message"] = "the shared job queue (Redis) is unreachable, nothing was accepted; retry after " +
                                     std::to_string(kFleetUnavailableRetryMs) + " ms";
  reply.header["unavailable"] = true;
  return reply;
}

void Server::fleet_edit(const Route& route, Request& request, std::vector<Frame>& frames) {
  const std::string& id = request.id;
  if (draining_) {
    send(route, error_reply(id, codes::kShuttingDown, "the daemon is shutting down and accepts no new jobs"));
    return;
  }
  // Refused before it costs a Redis write (throws: a typed error reply).
  backend_.validate(request.edit);
  if (!fleet_reachable_now()) {
    stats_.count("busy.unavailable");
    send(route, fleet_unavailable_reply(id));
    return;
  }
  Job job;
  job.id = id;
  job.digest = request.digest;
  job.frames = std::move(frames);
  job.accepted_ms = now_unix_ms();
  int64_t deadline = request.deadline_ms.value_or(config_.default_deadline_ms);
  job.deadline_ms = deadline > 0 ? job.accepted_ms + deadline : 0;
  to_submit_.push_back(FleetSubmission{route, {id, job.digest, job_payload(job)}});
}

void Server::fleet_commit() {
  if (to_submit_.empty()) return;
  std::vector<FleetSubmission> burst;
  burst.swap(to_submit_);
  std::vector<RedisQueue::Submission> jobs;
  for (const FleetSubmission& s : burst) jobs.push_back(s.job);
  std::vector<RedisQueue::SubmitResult> results;
  try {
    results = fleet_->submit(jobs, config_.max_queue);  // acknowledged (AOF-fsynced) before any `accepted`
    if (!fleet_error_.empty()) spdlog::info("queue: Redis is reachable again");
    fleet_error_.clear();
  } catch (const Error& e) {
    fleet_unreachable(e);
    for (const FleetSubmission& s : burst) send(s.route, fleet_unavailable_reply(s.job.id));
    return;
  }
  std::vector<size_t> finished;  // known ids whose stored result answers them
  for (size_t i = 0; i < burst.size(); ++i) {
    const std::string& id = burst[i].job.id;
    const RedisQueue::SubmitResult& r = results[i];
    switch (r.state) {
      case RedisQueue::SubmitState::kAccepted: {
        stats_.count("accepted");
        fleet_waiting_[id].add_route(burst[i].route);
        Message accepted;
        accepted.header = reply_header(id, status::kAccepted);
        accepted.header["queue_depth"] = r.depth;
        send(burst[i].route, accepted);
        break;
      }
      case RedisQueue::SubmitState::kKnown:
        stats_.count("duplicates");
        if (r.job_state == "queued" || r.job_state == "running") {
          fleet_waiting_[id].add_route(burst[i].route);  // a Lazy Pirate retry, maybe through another front
          Message accepted;
          accepted.header = reply_header(id, status::kAccepted);
          accepted.header["duplicate"] = true;
          accepted.header["state"] = r.job_state;
          send(burst[i].route, accepted);
        } else {
          finished.push_back(i);
        }
        break;
      case RedisQueue::SubmitState::kConflict:
        stats_.count("rejected.id_conflict");
        send(burst[i].route, error_reply(id, codes::kIdConflict,
                                         "id '" + printable_id(id) + "' was already used for a different request"));
        break;
      case RedisQueue::SubmitState::kBusy:
        stats_.count("busy");
        send(burst[i].route, busy_reply(id, kFleetFullRetryMs, r.depth));
        break;
    }
  }
  if (finished.empty()) return;
  std::vector<std::string> ids;
  for (size_t i : finished) ids.push_back(burst[i].job.id);
  std::vector<std::optional<std::string>> stored;
  try {
    stored = fleet_->results(ids);
  } catch (const Error& e) {
    fleet_unreachable(e);
    for (size_t i : finished) send(burst[i].route, fleet_unavailable_reply(burst[i].job.id));
    return;
  }
  for (size_t k = 0; k < finished.size(); ++k) {
    const FleetSubmission& s = burst[finished[k]];
    std::optional<Message> reply = stored[k] ? unpack_message(*stored[k]) : std::nullopt;
    if (!reply) {
      // Its result expired between the two calls: the id is free again.
      send(s.route, fleet_unavailable_reply(s.job.id));
      continue;
    }
    reply->header["duplicate"] = true;
    send(s.route, *reply);
  }
}

void Server::fleet_result(const Route& route, const Request& request) {
  const std::string& id = request.id;
  if (!fleet_reachable_now()) return (void)send(route, fleet_unavailable_reply(id));
  try {
    if (auto packed = fleet_->results({id}).front()) {
      if (auto reply = unpack_message(*packed)) return (void)send(route, *reply);
    }
    std::string state = fleet_->state_of(id);
    if (state == "queued" || state == "running") {
      fleet_waiting_[id].add_route(route);  // its `done` comes here too
      Message reply;
      reply.header = reply_header(id, status::kAccepted);
      reply.header["state"] = state;
      return (void)send(route, reply);
    }
  } catch (const Error& e) {
    fleet_unreachable(e);
    return (void)send(route, fleet_unavailable_reply(id));
  }
  send(route, error_reply(id, error_code_name(ErrorCode::kNotFound),
                          "no job with id '" + printable_id(id) + "' (never submitted, or its result expired after " +
                              std::to_string(config_.result_retention_s) + " s)"));
}

void Server::fleet_cancel(const Route& route, const Request& request) {
  const std::string& id = request.id;
  if (!fleet_reachable_now()) return (void)send(route, fleet_unavailable_reply(id));
  RedisQueue::CancelState state;
  try {
    state = fleet_->cancel(id, pack_message(error_reply(id, error_code_name(ErrorCode::kCancelled),
                                                        "cancelled by a client")));
  } catch (const Error& e) {
    fleet_unreachable(e);
    return (void)send(route, fleet_unavailable_reply(id));
  }
  if (state == RedisQueue::CancelState::kUnknown)
    return (void)send(route, error_reply(id, error_code_name(ErrorCode::kNotFound),
                                         "no job with id '" + printable_id(id) + "'"));
  Message reply;
  reply.header = reply_header(id, status::kDone);
  reply.header["type"] = "cancel";
  reply.header["cancelled"] = state == RedisQueue::CancelState::kCancelled;
  reply.header["state"] = state == RedisQueue::CancelState::kCancelled ? "cancelled"
                          : state == RedisQueue::CancelState::kRunning ? "running"
                                                                        : "finished";
  if (state == RedisQueue::CancelState::kCancelled) stats_.count("jobs.error.cancelled");
  send(route, reply);
}

void Server::fleet_deliver() {
  const int64_t now = now_unix_ms();
  if (fleet_waiting_.empty() || now - last_fleet_poll_ms_ < kFleetPollMs || !fleet_reachable_now()) return;
  last_fleet_poll_ms_ = now;
  std::vector<std::string> ids;
  for (const auto& [id, waiting] : fleet_waiting_) ids.push_back(id);
  for (size_t first = 0; first < ids.size(); first += kFleetPollChunk) {
    std::vector<std::string> chunk(ids.begin() + first, ids.begin() + std::min(ids.size(), first + kFleetPollChunk));
    std::vector<std::optional<std::string>> stored;
    try {
      stored = fleet_->results(chunk);
      if (!fleet_error_.empty()) spdlog::info("queue: Redis is reachable again");
      fleet_error_.clear();
    } catch (const Error& e) {
      fleet_unreachable(e);  // the waiting clients are answered once Redis returns
      return;
    }
    for (size_t i = 0; i < chunk.size(); ++i) {
      if (!stored[i]) continue;
      auto it = fleet_waiting_.find(chunk[i]);
      std::optional<Message> reply = unpack_message(*stored[i]);
      if (!reply) {
        spdlog::error("job id={}: its stored result is not a packed reply; dropped", printable_id(chunk[i]));
        fleet_waiting_.erase(it);
        continue;
      }
      size_t delivered = 0;
      for (const Route& route : it->second.routes) {
        if (send(route, *reply)) ++delivered;
        else stats_.count("replies.unroutable");
      }
      stats_.count("replies.delivered", static_cast<int64_t>(delivered));
      fleet_waiting_.erase(it);
    }
  }
}

json Server::fleet_status_json() const {
  json queue = {{"backend", "redis"},
                {"role", role_name(config_.role)},
                {"url", config_.queue.redis.url},
                {"stream", config_.queue.redis.stream},
                {"group", config_.queue.redis.group},
                {"waiting_clients", fleet_waiting_.size()}};
  if (!fleet_reachable_now()) {
    queue["reachable"] = false;
    queue["error"] = fleet_error_;
    return queue;
  }
  try {
    queue["depth"] = fleet_->depth();
    queue["workers"] = fleet_->consumers();
    queue["dead_letters"] = fleet_->dead_letters();
    queue["reachable"] = true;
  } catch (const Error& e) {
    queue["reachable"] = false;
    queue["error"] = e.what();
  }
  return queue;
}

// ---------------------------------------------------------------- fleet worker thread

void Server::fleet_worker_loop() {
  RedisQueue queue(config_.queue.redis);
  const std::string consumer = consumer_name();
  zmq::socket_t wake(context_, zmq::socket_type::pair);
  wake.connect(wake_endpoint_);
  bool ready = false;
  int64_t backoff_ms = 0;
  int64_t next_claim_ms = 0;
  // Finished jobs whose results Redis did not take yet: stored before anything new is read.
  std::vector<StreamJob> unstored_entries;
  std::vector<std::string> unstored_replies;
  spdlog::info("queue: worker {} consuming {} as group {}", consumer, config_.queue.redis.stream,
               config_.queue.redis.group);
  while (true) {
    const int64_t now = now_unix_ms();
    if (draining_ && (unstored_entries.empty() || now > drain_deadline_ms_)) break;
    try {
      if (!unstored_entries.empty()) {
        queue.finish(unstored_entries, unstored_replies);
        spdlog::info("queue: stored {} results that had waited for Redis", unstored_entries.size());
        unstored_entries.clear();
        unstored_replies.clear();
        continue;
      }
      if (!ready) {
        queue.ensure_group();
        ready = true;
        if (backoff_ms > 0) spdlog::info("queue: worker {} reconnected to Redis", consumer);
        backoff_ms = 0;
      }
      std::vector<StreamJob> entries;
      if (now >= next_claim_ms) {
        // Jobs of workers that died (or hang) past the visibility timeout.
        entries = queue.claim_stale(consumer, config_.max_batch);
        next_claim_ms = now + std::max<int64_t>(50, config_.queue.redis.visibility_timeout_ms / 4);
        if (!entries.empty()) {
          stats_.count("queue.claimed", static_cast<int64_t>(entries.size()));
          spdlog::warn("queue: claimed {} jobs left pending by another worker for over {} ms", entries.size(),
                       config_.queue.redis.visibility_timeout_ms);
        }
      }
      if (entries.empty()) {
        entries = queue.read(consumer, config_.max_batch, kWorkerReadBlockMs);
        if (!entries.empty() && entries.size() < config_.max_batch && config_.max_wait_ms > 0) {
          std::vector<StreamJob> more = queue.read(consumer, config_.max_batch - entries.size(), config_.max_wait_ms);
          entries.insert(entries.end(), more.begin(), more.end());
        }
      }
      if (entries.empty()) continue;
      fleet_run(queue, entries, &unstored_entries, &unstored_replies);
    } catch (const Error& e) {
      ready = false;
      backoff_ms = backoff_ms == 0 ? kWorkerBackoffFirstMs : std::min(kWorkerBackoffMaxMs, backoff_ms * 2);
      stats_.count("queue.unreachable");
      spdlog::warn("queue: worker {}: {}; retrying in {} ms", consumer, e.what(), backoff_ms);
      for (int64_t slept = 0; slept < backoff_ms && !stop_requested_; slept += 20)
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  if (!unstored_entries.empty())
    spdlog::error("queue: {} finished jobs could not store their results before shutdown: another worker runs them "
                  "again after the visibility timeout",
                  unstored_entries.size());
  fleet_worker_done_ = true;
  (void)wake.send(zmq::str_buffer("w"), zmq::send_flags::dontwait);
}

void Server::fleet_run(RedisQueue& queue, const std::vector<StreamJob>& entries,
                       std::vector<StreamJob>* unstored_entries, std::vector<std::string>* unstored_replies) {
  std::vector<std::string> dead_replies;
  for (const StreamJob& entry : entries)
    dead_replies.push_back(pack_message(error_reply(
        entry.id, codes::kDeadLetter,
        "the job started " + std::to_string(config_.queue.redis.max_deliveries) +
            " runs and none finished (each worker running it died); it was moved to the dead-letter stream " +
            queue.dead_key())));
  std::vector<RedisQueue::StartState> states = queue.start(entries, dead_replies);

  const int64_t start = now_unix_ms();
  std::vector<StreamJob> done_entries;
  std::vector<std::string> done_replies;
  std::vector<StreamJob> live_entries;
  std::vector<JobPtr> live;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (states[i] == RedisQueue::StartState::kDead) {
      stats_.count("jobs.error.dead_letter");
      spdlog::error("job id={}: moved to the dead-letter stream after {} runs", printable_id(entries[i].id),
                    config_.queue.redis.max_deliveries);
    }
    if (states[i] != RedisQueue::StartState::kRun) continue;
    auto job = std::make_shared<Job>();
    job->id = entries[i].id;
    std::vector<Frame> frames;
    std::optional<json> meta;
    if (unpack_frames(entries[i].payload.data(), entries[i].payload.size(), &frames) && frames.size() >= 2)
      meta = json::parse(frames[0], nullptr, false);
    Message reply;
    if (!meta || meta->is_discarded() || !meta->is_object()) {
      reply = error_reply(job->id, error_code_name(ErrorCode::kCorruptFile), "the queued job cannot be decoded");
    } else {
      job->digest = meta->value("digest", std::string());
      job->accepted_ms = meta->value("accepted_ms", int64_t(0));
      job->deadline_ms = meta->value("deadline_ms", int64_t(0));
      job->frames.assign(frames.begin() + 1, frames.end());
      try {
        job->edit = parse_request(job->frames, config_.limits).edit;
        if (job->deadline_ms > 0 && job->deadline_ms < start) reply = deadline_reply(job, start);
      } catch (const ProtocolError& e) {
        reply = error_reply(job->id, e.code(), e.what());  // queued under other limits: still a final answer
      }
    }
    if (reply.header.is_null()) {
      live.push_back(job);
      live_entries.push_back(entries[i]);
      continue;
    }
    finalize_timings(job, reply, {{"queue_ms", start - job->accepted_ms}});
    record_outcome(job, reply);
    done_entries.push_back(entries[i]);
    done_replies.push_back(pack_message(reply));
  }
  if (!live.empty()) {
    std::vector<Message> replies = run_edits(live, start);
    for (size_t i = 0; i < live.size(); ++i) {
      record_outcome(live[i], replies[i]);
      done_entries.push_back(live_entries[i]);
      done_replies.push_back(pack_message(replies[i]));
    }
  }
  try {
    queue.finish(done_entries, done_replies);
  } catch (const Error&) {
    unstored_entries->insert(unstored_entries->end(), done_entries.begin(), done_entries.end());
    unstored_replies->insert(unstored_replies->end(), done_replies.begin(), done_replies.end());
    throw;
  }
}

}  // namespace feu::service
