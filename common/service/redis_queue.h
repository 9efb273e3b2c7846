// The fleet's shared job queue on Redis Streams (daemon.queue.backend: redis).
//
// Fronts submit, workers consume through one consumer group; every state
// change of a job is one Lua script, so it is atomic on the Redis side and a
// front or worker dying between two commands leaves no half-made job.
//
// Keys, all under the stream's name S (e.g. "feu:jobs"):
//   S              the stream: one entry per unfinished job {id, job}; an entry is
//                  XACKed and XDELed when the job finishes, so XLEN is the number
//                  of unfinished jobs (the backpressure bound).
//   S:job:<id>     hash {d: request digest, s: queued|running|done|cancelled,
//                  x: stream entry id, n: runs started}: the fleet-wide idempotency
//                  record (created with the entry, expires with the result).
//   S:res:<id>     the final reply (pack_frames of its frames), stored once (NX),
//                  expiring after the result retention.
//   S:dead         the dead-letter stream: jobs that started max_deliveries runs
//                  without finishing (they killed their workers).
//   S:workers      sorted set: each worker's consumer name, scored by its last
//                  heartbeat (ms, Redis's clock: machines' clocks may differ).
//   S:worker:<c>   hash {consumer, version, pid, host, last_seen_ms}: what worker
//                  c last said of itself, expiring with its heartbeat.
// A worker silent for worker_timeout_ms is dead: not listed, and once it owns
// no pending job (another worker claimed them) its consumer leaves the group.
//
// Durability is Redis's: with AOF and `appendfsync always`, a reply comes after
// the write reached the disk, so `accepted` is as strong as the local journal's.
//
// A RedisQueue is one connection: use one per thread. Every call that cannot
// reach Redis (or whose connection broke) throws Error(kIoError) and drops the
// connection; the next call reconnects.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "service/frames.h"

struct redisContext;
struct redisReply;

namespace feu::service {

struct RedisQueueConfig {
  std::string url = "redis://127.0.0.1:6379/0";  // redis://host:port[/db]
  std::string stream = "feu:jobs";
  std::string group = "feu";
  int64_t visibility_timeout_ms = 60000;  // a job running this long on a silent worker is claimed by another
  int max_deliveries = 3;                 // runs a job may start before it goes to the dead-letter stream
  int connect_timeout_ms = 1000;          // connect and per-command timeout
  int64_t result_ttl_s = 3600;            // finished results (and their ids) are kept this long
  int64_t worker_timeout_ms = 10000;      // a worker without a heartbeat this long is dead (beats: every third)
};

// "redis://host:port[/db]" split; Error(kConfigError) naming what is wrong.
struct RedisAddress {
  std::string host;
  int port = 6379;
  int db = 0;
  static RedisAddress parse(const std::string& url);
};

// One job as the stream carries it.
struct StreamJob {
  std::string entry_id;  // the stream entry's id
  std::string id;        // the client's job id
  std::string payload;   // what submit() was given
};

// One worker as its heartbeat describes it.
struct WorkerBeat {
  std::string consumer;  // its consumer name in the group
  std::string version;   // the artifact version it serves
  int64_t pid = 0;
  std::string host;
  int64_t last_seen_ms = 0;  // Redis's clock (set by heartbeat())
  int64_t age_ms = 0;        // since then, when listed by workers()
};

class RedisQueue {
 public:
  explicit RedisQueue(RedisQueueConfig config);
  ~RedisQueue();
  RedisQueue(const RedisQueue&) = delete;
  RedisQueue& operator=(const RedisQueue&) = delete;

  // Connects now (instead of at the first call). Errors: io_error.
  void connect();
  bool connected() const { return context_ != nullptr; }

  enum class SubmitState { kAccepted, kKnown, kConflict, kBusy };
  struct Submission {
    std::string id, digest, payload;
  };
  struct SubmitResult {
    SubmitState state = SubmitState::kBusy;
    std::string job_state;  // kKnown: queued|running|done|cancelled
    size_t depth = 0;       // kAccepted/kBusy: unfinished jobs in the stream
  };
  // Submits jobs in one pipeline (one round trip and, with appendfsync always,
  // one disk flush for the burst). An id already known with the same digest is
  // kKnown (never added twice), with another digest kConflict; over
  // `max_pending` unfinished jobs kBusy. Errors: io_error (nothing is known
  // about the burst then: the caller refuses it; a retry is idempotent).
  std::vector<SubmitResult> submit(const std::vector<Submission>& jobs, size_t max_pending);

  // The job's state ("" when unknown or expired).
  std::string state_of(const std::string& id);
  // Stored replies (packed frames) for `ids`, one entry each, empty when not finished.
  std::vector<std::optional<std::string>> results(const std::vector<std::string>& ids);

  enum class CancelState { kCancelled, kRunning, kFinished, kUnknown };
  // Cancels a queued job: stores `cancelled_reply` as its result and removes
  // its entry, so no worker starts it.
  CancelState cancel(const std::string& id, const std::string& cancelled_reply);

  // Worker side. Creates the consumer group (and the stream) when missing.
  void ensure_group();
  // New entries for `consumer`, waiting up to block_ms for the first (0 = no wait).
  std::vector<StreamJob> read(const std::string& consumer, size_t count, int block_ms);
  // Entries pending on other consumers longer than the visibility timeout,
  // now owned by `consumer`.
  std::vector<StreamJob> claim_stale(const std::string& consumer, size_t count);

  enum class StartState { kRun, kSkip, kDead };
  // Marks jobs running before their run: kSkip for one cancelled or finished
  // meanwhile (its entry is acknowledged), kDead for one that already started
  // max_deliveries runs (moved to the dead-letter stream with `dead_reply` as
  // its result). `dead_replies` holds one reply per job.
  std::vector<StartState> start(const std::vector<StreamJob>& jobs, const std::vector<std::string>& dead_replies);
  // Stores each job's reply (once: a second run's result is dropped), marks it
  // done and acknowledges and deletes its entry, in one pipeline.
  void finish(const std::vector<StreamJob>& jobs, const std::vector<std::string>& replies);

  // Publishes a worker's heartbeat, and removes from the group the consumers
  // of dead workers (no heartbeat for worker_timeout_ms) that own no pending
  // job: their jobs were claimed by others first.
  void heartbeat(const WorkerBeat& worker);
  // A worker stopping cleanly: unlisted at once, its consumer removed when it owns no pending job.
  void retire(const std::string& consumer);
  // The live workers (a heartbeat within worker_timeout_ms), by consumer name.
  std::vector<WorkerBeat> workers();

  // Unfinished jobs (XLEN), consumers in the group (names: consumer_names()), dead letters.
  size_t depth();
  size_t consumers() { return consumer_names().size(); }
  std::vector<std::string> consumer_names();
  size_t dead_letters();

  const RedisQueueConfig& config() const { return config_; }
  std::string job_key(const std::string& id) const { return config_.stream + ":job:" + id; }
  std::string result_key(const std::string& id) const { return config_.stream + ":res:" + id; }
  std::string dead_key() const { return config_.stream + ":dead"; }
  std::string workers_key() const { return config_.stream + ":workers"; }
  std::string worker_key(const std::string& consumer) const { return config_.stream + ":worker:" + consumer; }

 private:
  struct ReplyDeleter {
    void operator()(redisReply* reply) const;
  };
  using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

  // Sends every command of `commands` in one pipeline and returns their
  // replies; a Redis error reply becomes Error(kIoError) after all are read.
  std::vector<Reply> pipeline(const std::vector<std::vector<std::string>>& commands);
  Reply command(const std::vector<std::string>& argv);
  [[noreturn]] void fail(const std::string& what);
  void disconnect();
  std::vector<StreamJob> parse_entries(const redisReply* entries) const;

  RedisQueueConfig config_;
  RedisAddress address_;
  redisContext* context_ = nullptr;
};

}  // namespace feu::service
