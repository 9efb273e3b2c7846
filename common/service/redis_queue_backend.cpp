#include "service/redis_queue_backend.h"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <thread>

namespace feu::service {
using nlohmann::json;

namespace {

// How long a front refuses at once after Redis failed, instead of blocking its
// I/O thread on a connection attempt per request.
constexpr int64_t kRetryAfterFailureMs = 500;
// What busy replies advise: Redis down, or the stream full.
constexpr int64_t kUnavailableRetryMs = 1000;
constexpr int64_t kFullRetryMs = 250;
// How often a front asks Redis for the results its clients wait for.
constexpr int64_t kPollMs = 5;
constexpr size_t kPollChunk = 512;
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

std::string host_name() {
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

std::string consumer_name() {
  static std::atomic<int> counter{0};
  return host_name() + "-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
}

}  // namespace

RedisQueueBackend::RedisQueueBackend(const ServerConfig& config, ServiceStats& stats, OutcomeRecorder record,
                                     VersionSource artifact_version)
    : config_(config),
      stats_(stats),
      record_(std::move(record)),
      artifact_version_(std::move(artifact_version)),
      io_(config.queue.redis),
      work_(config.queue.redis),
      consumer_(consumer_name()),
      beat_(config.queue.redis) {
  try {
    io_.connect();
  } catch (const Error& e) {
    unreachable(e);
  }
}

RedisQueueBackend::~RedisQueueBackend() { stop_heartbeat(); }

// ---------------------------------------------------------------- front (I/O thread)

bool RedisQueueBackend::reachable_now() const { return now_unix_ms() >= retry_at_ms_; }

void RedisQueueBackend::unreachable(const Error& error) {
  if (error_.empty())  // once per outage
    spdlog::error("queue: Redis is unreachable, answering busy until it returns: {}", error.what());
  error_ = error.what();
  retry_at_ms_ = now_unix_ms() + kRetryAfterFailureMs;
  stats_.count("queue.unreachable");
}

void RedisQueueBackend::reachable_again() {
  if (!error_.empty()) spdlog::info("queue: Redis is reachable again");
  error_.clear();
}

QueueAnswer RedisQueueBackend::unavailable(const std::string& id) const {
  Message reply = busy_reply(id, kUnavailableRetryMs, 0);
  reply.header["error"]["message"] = "the shared job queue (Redis) is unreachable, nothing was accepted; retry after " +
                                     std::to_string(kUnavailableRetryMs) + " ms";
  reply.header["unavailable"] = true;
  return {std::move(reply), false, ""};
}

std::chrono::milliseconds RedisQueueBackend::poll_interval() const { return std::chrono::milliseconds(kPollMs); }

Admission RedisQueueBackend::admit(JobPtr job, size_t) {
  if (!reachable_now()) {
    QueueAnswer answer = unavailable(job->id);
    answer.stat = "busy.unavailable";
    return Admission::answered(std::move(answer));
  }
  to_submit_.push_back({job->id, job->digest, job_payload(*job)});
  return Admission::staged();
}

std::vector<QueueAnswer> RedisQueueBackend::commit() {
  std::vector<QueueAnswer> answers;
  if (to_submit_.empty()) return answers;
  std::vector<RedisQueue::Submission> burst;
  burst.swap(to_submit_);
  std::vector<RedisQueue::SubmitResult> results;
  try {
    results = io_.submit(burst, config_.max_queue);  // acknowledged (AOF-fsynced) before any `accepted`
    reachable_again();
  } catch (const Error& e) {
    unreachable(e);
    for (const auto& job : burst) answers.push_back(unavailable(job.id));
    return answers;
  }
  std::vector<size_t> finished;  // known ids whose stored result answers them
  for (size_t i = 0; i < burst.size(); ++i) {
    const std::string& id = burst[i].id;
    const RedisQueue::SubmitResult& r = results[i];
    QueueAnswer answer;
    switch (r.state) {
      case RedisQueue::SubmitState::kAccepted:
        answer = {accepted_reply(id), true, "accepted"};
        answer.reply.header["queue_depth"] = r.depth;
        break;
      case RedisQueue::SubmitState::kKnown:
        answer.stat = "duplicates";
        if (r.job_state == "queued" || r.job_state == "running") {
          // A Lazy Pirate retry, maybe through another front.
          answer.reply = accepted_reply(id);
          answer.reply.header["duplicate"] = true;
          answer.reply.header["state"] = r.job_state;
          answer.wait = true;
        } else {
          finished.push_back(i);
        }
        break;
      case RedisQueue::SubmitState::kConflict:
        answer = {id_conflict_reply(id), false, "rejected.id_conflict"};
        break;
      case RedisQueue::SubmitState::kBusy:
        answer = {busy_reply(id, kFullRetryMs, r.depth), false, "busy"};
        break;
    }
    answers.push_back(std::move(answer));
  }
  if (finished.empty()) return answers;
  std::vector<std::string> ids;
  for (size_t i : finished) ids.push_back(burst[i].id);
  std::vector<std::optional<std::string>> stored;
  try {
    stored = io_.results(ids);
  } catch (const Error& e) {
    unreachable(e);
    for (size_t i : finished) answers[i].reply = unavailable(burst[i].id).reply;
    return answers;
  }
  for (size_t k = 0; k < finished.size(); ++k) {
    const size_t i = finished[k];
    std::optional<Message> reply = stored[k] ? unpack_message(*stored[k]) : std::nullopt;
    if (!reply) {
      // Its result expired between the two calls: the id is free again.
      answers[i].reply = unavailable(burst[i].id).reply;
      continue;
    }
    reply->header["duplicate"] = true;
    answers[i].reply = std::move(*reply);
  }
  return answers;
}

QueueAnswer RedisQueueBackend::result(const std::string& id) {
  if (!reachable_now()) return unavailable(id);
  try {
    // The state first: a job finishing in between stores its result and its
    // state at once, so a state read before the result never misses both.
    std::string state = io_.state_of(id);
    if (auto packed = io_.results({id}).front()) {
      if (auto reply = unpack_message(*packed)) return {std::move(*reply), false, ""};
    }
    if (state == "queued" || state == "running") {
      Message reply = accepted_reply(id);
      reply.header["state"] = state;
      return {std::move(reply), true, ""};  // its `done` comes here too
    }
  } catch (const Error& e) {
    unreachable(e);
    return unavailable(id);
  }
  return {not_found_reply(id, config_.result_retention_s), false, ""};
}

QueueAnswer RedisQueueBackend::cancel(const std::string& id) {
  if (!reachable_now()) return unavailable(id);
  RedisQueue::CancelState state;
  try {
    state = io_.cancel(id, pack_message(cancelled_reply(id)));
  } catch (const Error& e) {
    unreachable(e);
    return unavailable(id);
  }
  switch (state) {
    case RedisQueue::CancelState::kUnknown: return {no_such_job_reply(id), false, ""};
    case RedisQueue::CancelState::kCancelled: return {cancel_reply(id, "cancelled"), false, "jobs.error.cancelled"};
    case RedisQueue::CancelState::kRunning: return {cancel_reply(id, "running"), false, ""};
    case RedisQueue::CancelState::kFinished: break;
  }
  return {cancel_reply(id, "finished"), false, ""};
}

std::vector<FinishedJob> RedisQueueBackend::take_finished() {
  std::vector<FinishedJob> out;
  const int64_t now = now_unix_ms();
  if (watched_.empty() || now - last_poll_ms_ < kPollMs || !reachable_now()) return out;
  last_poll_ms_ = now;
  std::vector<std::string> ids(watched_.begin(), watched_.end());
  for (size_t first = 0; first < ids.size(); first += kPollChunk) {
    std::vector<std::string> chunk(ids.begin() + first, ids.begin() + std::min(ids.size(), first + kPollChunk));
    std::vector<std::optional<std::string>> stored;
    try {
      stored = io_.results(chunk);
      reachable_again();
    } catch (const Error& e) {
      unreachable(e);  // the waiting clients are answered once Redis returns
      return out;
    }
    for (size_t i = 0; i < chunk.size(); ++i) {
      if (!stored[i]) continue;
      watched_.erase(chunk[i]);
      std::optional<Message> reply = unpack_message(*stored[i]);
      if (!reply) {
        spdlog::error("job id={}: its stored result is not a packed reply", printable_id(chunk[i]));
        reply = error_reply(chunk[i], error_code_name(ErrorCode::kCorruptFile),
                            "the job's stored result cannot be decoded");
      }
      out.push_back({chunk[i], std::move(*reply)});
    }
  }
  return out;
}

void RedisQueueBackend::describe(json& status) {
  json queue = {{"backend", "redis"},
                {"role", role_name(config_.role)},
                {"url", config_.queue.redis.url},
                {"stream", config_.queue.redis.stream},
                {"group", config_.queue.redis.group},
                {"waiting_clients", watched_.size()}};
  if (!reachable_now()) {
    queue["reachable"] = false;
    queue["error"] = error_;
  } else {
    try {
      queue["depth"] = io_.depth();
      // The live workers (a heartbeat within worker_timeout_ms), each with its version.
      json workers = json::array();
      for (const WorkerBeat& worker : io_.workers())
        workers.push_back({{"consumer", worker.consumer},
                           {"artifact_version", worker.version},
                           {"pid", worker.pid},
                           {"host", worker.host},
                           {"last_seen_ms", worker.last_seen_ms},
                           {"seen_ms_ago", worker.age_ms}});
      queue["workers"] = workers.size();
      queue["worker_list"] = std::move(workers);
      queue["dead_letters"] = io_.dead_letters();
      queue["reachable"] = true;
    } catch (const Error& e) {
      queue["reachable"] = false;
      queue["error"] = e.what();
    }
  }
  status["queue"].update(queue);
}

// ---------------------------------------------------------------- worker thread

std::vector<TakenJob> RedisQueueBackend::take(size_t max_batch, std::chrono::milliseconds max_wait,
                                              bool wait_for_first) {
  if (!beat_thread_.joinable()) beat_thread_ = std::thread(&RedisQueueBackend::heartbeat_loop, this);
  try {
    return take_or_throw(max_batch, max_wait, wait_for_first);
  } catch (const Error& e) {
    back_off(e);
    return {};
  }
}

void RedisQueueBackend::back_off(const Error& error) {
  ready_ = false;
  backoff_ms_ = backoff_ms_ == 0 ? kWorkerBackoffFirstMs : std::min(kWorkerBackoffMaxMs, backoff_ms_ * 2);
  stats_.count("queue.unreachable");
  spdlog::warn("queue: worker {}: {}; retrying in {} ms", consumer_, error.what(), backoff_ms_);
  for (int64_t slept = 0; slept < backoff_ms_ && !woken_; slept += 20)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

std::vector<TakenJob> RedisQueueBackend::take_or_throw(size_t max_batch, std::chrono::milliseconds max_wait,
                                                       bool wait_for_first) {
  if (!unstored_entries_.empty()) {
    work_.finish(unstored_entries_, unstored_replies_);
    spdlog::info("queue: stored {} results that had waited for Redis", unstored_entries_.size());
    unstored_entries_.clear();
    unstored_replies_.clear();
    return {};
  }
  const RedisQueueConfig& redis = config_.queue.redis;
  if (!ready_) {
    work_.ensure_group();
    ready_ = true;
    if (backoff_ms_ > 0) spdlog::info("queue: worker {} reconnected to Redis", consumer_);
    else spdlog::info("queue: worker {} consuming {} as group {}", consumer_, redis.stream, redis.group);
    backoff_ms_ = 0;
  }
  std::vector<StreamJob> entries;
  const int64_t now = now_unix_ms();
  if (now >= next_claim_ms_) {
    // Jobs of workers that died (or hang) past the visibility timeout.
    entries = work_.claim_stale(consumer_, max_batch);
    next_claim_ms_ = now + std::max<int64_t>(50, redis.visibility_timeout_ms / 4);
    if (!entries.empty()) {
      stats_.count("queue.claimed", static_cast<int64_t>(entries.size()));
      spdlog::warn("queue: claimed {} jobs left pending by another worker for over {} ms", entries.size(),
                   redis.visibility_timeout_ms);
    }
  }
  if (entries.empty()) {
    entries = work_.read(consumer_, max_batch, wait_for_first ? kWorkerReadBlockMs : 0);
    if (!entries.empty() && entries.size() < max_batch && max_wait.count() > 0) {
      std::vector<StreamJob> more =
          work_.read(consumer_, max_batch - entries.size(), static_cast<int>(max_wait.count()));
      entries.insert(entries.end(), more.begin(), more.end());
    }
  }
  if (entries.empty()) return {};

  std::vector<std::string> dead_replies;
  for (const StreamJob& entry : entries)
    dead_replies.push_back(pack_message(error_reply(
        entry.id, codes::kDeadLetter,
        "the job started " + std::to_string(redis.max_deliveries) +
            " runs and none finished (each worker running it died); it was moved to the dead-letter stream " +
            work_.dead_key())));
  std::vector<RedisQueue::StartState> states = work_.start(entries, dead_replies);

  std::vector<TakenJob> taken;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (states[i] == RedisQueue::StartState::kDead) {
      stats_.count("jobs.error.dead_letter");
      spdlog::error("job id={}: moved to the dead-letter stream after {} runs", printable_id(entries[i].id),
                    redis.max_deliveries);
    }
    if (states[i] != RedisQueue::StartState::kRun) continue;
    auto job = std::make_shared<Job>();
    job->id = entries[i].id;
    job->queue_entry = entries[i].entry_id;
    std::vector<Frame> frames;
    std::optional<json> meta;
    if (unpack_frames(entries[i].payload.data(), entries[i].payload.size(), &frames) && frames.size() >= 2)
      meta = json::parse(frames[0], nullptr, false);
    std::optional<Message> reply;
    if (!meta || meta->is_discarded() || !meta->is_object()) {
      reply = error_reply(job->id, error_code_name(ErrorCode::kCorruptFile), "the queued job cannot be decoded");
    } else {
      job->digest = meta->value("digest", std::string());
      job->accepted_ms = meta->value("accepted_ms", int64_t(0));
      job->deadline_ms = meta->value("deadline_ms", int64_t(0));
      job->frames.assign(frames.begin() + 1, frames.end());
      try {
        job->edit = parse_request(job->frames, config_.limits).edit;
      } catch (const ProtocolError& e) {
        reply = error_reply(job->id, e.code(), e.what());  // queued under other limits: still a final answer
      }
    }
    taken.push_back({std::move(job), std::move(reply)});
  }
  return taken;
}

void RedisQueueBackend::finish(const std::vector<JobPtr>& jobs, std::vector<Message> replies) {
  std::vector<StreamJob> entries;
  std::vector<std::string> packed;
  for (size_t i = 0; i < jobs.size(); ++i) {
    record_(jobs[i], replies[i]);
    entries.push_back({jobs[i]->queue_entry, jobs[i]->id, ""});
    packed.push_back(pack_message(replies[i]));
  }
  try {
    work_.finish(entries, packed);
  } catch (const Error& e) {
    unstored_entries_.insert(unstored_entries_.end(), entries.begin(), entries.end());
    unstored_replies_.insert(unstored_replies_.end(), packed.begin(), packed.end());
    back_off(e);
  }
}

void RedisQueueBackend::heartbeat_loop() {
  const auto period = std::chrono::milliseconds(std::max<int64_t>(10, config_.queue.redis.worker_timeout_ms / 3));
  WorkerBeat beat;
  beat.consumer = consumer_;
  beat.pid = getpid();
  beat.host = host_name();
  bool failing = false;
  while (true) {
    try {
      beat.version = artifact_version_ ? artifact_version_() : "";
      beat_.heartbeat(beat);
      failing = false;
    } catch (const Error& e) {
      // The worker thread reports the outage; this only tries again next period.
      if (!failing) spdlog::debug("queue: worker {}: heartbeat failed: {}", consumer_, e.what());
      failing = true;
    }
    std::unique_lock<std::mutex> lock(beat_mutex_);
    if (beat_changed_.wait_for(lock, period, [this] { return beat_stop_; })) return;
  }
}

void RedisQueueBackend::stop_heartbeat() {
  {
    std::lock_guard<std::mutex> lock(beat_mutex_);
    beat_stop_ = true;
  }
  beat_changed_.notify_all();
  if (beat_thread_.joinable()) beat_thread_.join();
}

void RedisQueueBackend::worker_stopped() {
  const bool was_beating = beat_thread_.joinable();
  stop_heartbeat();
  if (was_beating) {
    try {
      beat_.retire(consumer_);  // unlisted at once instead of after worker_timeout_ms
    } catch (const Error& e) {
      spdlog::warn("queue: worker {}: could not unlist itself ({}); it drops out of `status` after {} ms", consumer_,
                   e.what(), config_.queue.redis.worker_timeout_ms);
    }
  }
  if (!unstored_entries_.empty())
    spdlog::error("queue: {} finished jobs could not store their results before shutdown: another worker runs them "
                  "again after the visibility timeout",
                  unstored_entries_.size());
}

}  // namespace feu::service
