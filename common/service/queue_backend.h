// Where the daemon's accepted edits wait, run and keep their results
// (`daemon.queue.backend`): the one interface Server talks to, so that the
// rules of the protocol (idempotent ids, `accepted` only once durable,
// cancel, busy) live once in Server and the storage rules once in each
// implementation:
//   local  LocalQueueBackend (local_queue_backend.h): this machine's journal,
//          in-memory queue and result store (the single-machine default);
//   redis  RedisQueueBackend (redis_queue_backend.h): a Redis stream shared by
//          a fleet of fronts and workers.
//
// Threads: the I/O thread calls the client side (admit*, commit, result,
// cancel, watch, take_finished, maintain, status); one worker thread calls the
// worker side (take, finish, drained, worker_stopped); wake() and
// recovered_jobs() any thread.
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "service/job_queue.h"
#include "service/protocol.h"
#include "service/server_config.h"
#include "service/stats.h"

namespace feu::service {

// What a client is answered, and what the server does besides sending it.
struct QueueAnswer {
  Message reply;
  bool wait = false;  // the client waits for the job: its final reply goes to it too
  std::string stat;   // the counter this answer counts ("" none)
};

// An edit request's admission: answered now, answered by the next commit(),
// or (admit_known only) an id the queue cannot tell apart from a new one yet.
struct Admission {
  enum class Kind { kUnknown, kAnswered, kStaged };
  Kind kind = Kind::kUnknown;
  QueueAnswer answer;  // kAnswered
  static Admission unknown() { return {}; }
  static Admission staged() { return {Kind::kStaged, {}}; }
  static Admission answered(QueueAnswer answer) { return {Kind::kAnswered, std::move(answer)}; }
};

// A job a worker took: it runs, unless it already has its final reply (it
// cannot be decoded, or was queued under other limits).
struct TakenJob {
  JobPtr job;
  std::optional<Message> reply;
};

struct FinishedJob {
  std::string id;
  Message reply;
};

// Counts and logs a job's final reply (Server::record_outcome).
using OutcomeRecorder = std::function<void(const JobPtr& job, const Message& reply)>;

class QueueBackend {
 public:
  virtual ~QueueBackend() = default;

  // ------------------------------------------------------------ I/O thread
  // An id the queue knows already: its stored result (a duplicate), an
  // id_conflict, or a duplicate of the unfinished job (kStaged: answered at
  // commit, after that job is durable). kUnknown when new, or when only
  // commit() can tell (redis).
  virtual Admission admit_known(const std::string& id, const std::string& digest) = 0;
  // A new edit: kStaged (durable and answered at commit()), or refused now
  // (busy, unavailable). `bytes`: the request's size (admission by bytes).
  virtual Admission admit(JobPtr job, size_t bytes) = 0;
  // Makes every staged job durable (one disk flush, or one Redis round trip,
  // for the burst) and answers each staged admission, in order.
  virtual std::vector<QueueAnswer> commit() = 0;
  // `result` request: the stored reply, the unfinished job's state (wait), or not_found.
  virtual QueueAnswer result(const std::string& id) = 0;
  // `cancel` request: a queued job is never run; a running or finished one is unchanged.
  virtual QueueAnswer cancel(const std::string& id) = 0;
  // A client waits for `id`'s result (an answer with wait, once sent).
  virtual void watch(const std::string& id) = 0;
  // Jobs finished since the last call whose results are stored: every job of
  // this process (local), or those watched (redis).
  virtual std::vector<FinishedJob> take_finished() = 0;
  // How long the I/O thread may sleep before take_finished() has news nobody
  // woke it for (redis: results stored by other machines).
  virtual std::chrono::milliseconds poll_interval() const = 0;
  // Periodic upkeep (every ~100 ms): expired deadlines, pruning, compaction.
  virtual void maintain(int64_t now_ms) = 0;
  // Unfinished jobs the queue holds, for the shutdown log.
  virtual size_t queued() const = 0;
  // Adds this backend's view to `status` ("queue", and "results"/"journal").
  virtual void describe(nlohmann::json& status) = 0;
  // After the worker stopped: what the queue keeps for later, for the log.
  virtual std::string close() = 0;

  // ---------------------------------------------------------- worker thread
  // Up to max_batch jobs, waiting up to ~100 ms for a first one (none when
  // `wait_for_first` is false: the worker has a batch of its own to finish)
  // and then up to max_wait for more. Empty when none came (or on wake()).
  virtual std::vector<TakenJob> take(size_t max_batch, std::chrono::milliseconds max_wait, bool wait_for_first) = 0;
  // Stores the replies of a batch taken (one per job, timings final) and
  // counts them; a store that fails is retried by later take() calls.
  virtual void finish(const std::vector<JobPtr>& jobs, std::vector<Message> replies) = 0;
  // Nothing left that a stopping worker must still do (local: run the queued
  // jobs; both: store the results that failed to store).
  virtual bool drained() const = 0;
  // Logs what a worker leaves undone at shutdown.
  virtual void worker_stopped() = 0;

  // ------------------------------------------------------------ any thread
  // Releases a take() that waits (shutdown).
  virtual void wake() = 0;
  // Jobs recovered at construction (local: from the journal).
  virtual size_t recovered_jobs() const { return 0; }
};

// The artifact version this process serves (what a worker's heartbeat says).
using VersionSource = std::function<std::string()>;

// The backend `config.queue` names. Errors: config_error, io_error (the local
// journal cannot be opened; another daemon holds the state directory).
std::unique_ptr<QueueBackend> make_queue_backend(const ServerConfig& config, ServiceStats& stats,
                                                 OutcomeRecorder record, VersionSource artifact_version);

// Shared by Server and the backends: one wording each.
// Adds total_ms to `timings` and puts them in the reply header.
void finalize_timings(const Job& job, Message& reply, const nlohmann::json& timings);
Message deadline_reply(const Job& job);
Message accepted_reply(const std::string& id);
Message not_found_reply(const std::string& id, int64_t retention_s);  // a `result` for an unknown id
Message no_such_job_reply(const std::string& id);                    // a `cancel` for an unknown id
Message id_conflict_reply(const std::string& id);
Message cancel_reply(const std::string& id, const std::string& state);  // state: cancelled|running|finished
Message cancelled_reply(const std::string& id);  // a cancelled job's final reply

// The id a log line or message may show: ids are client-chosen, so control
// characters and invalid UTF-8 are escaped (one line, no forged lines).
std::string printable_id(const std::string& id);

}  // namespace feu::service
