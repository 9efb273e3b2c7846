// The fleet's queue (daemon.queue.backend: redis): the stream, idempotency
// records and results of redis_queue.h, shared by every front and worker.
// A front's commit() submits a burst in one pipeline and answers `accepted`
// only after Redis acknowledged it; its take_finished() polls the results its
// clients wait for. A worker reads batches with the consumer group, claims the
// jobs of silent workers after the visibility timeout, marks its jobs running
// before they run (a job that killed max_deliveries workers goes to the
// dead-letter stream) and stores their replies. Redis unreachable: the client
// side answers busy (unavailable) at once for a moment instead of blocking on
// every request; the worker retries with back-off. A worker publishes a
// heartbeat (its consumer, artifact version, pid, host) from a thread of its
// own, so a long batch does not make it look dead; `status` lists the live
// workers. Each thread has its own connection.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_set>
#include <vector>

#include "service/queue_backend.h"
#include "service/redis_queue.h"

namespace feu::service {

class RedisQueueBackend : public QueueBackend {
 public:
  // Connects now; an unreachable Redis is not fatal (the fleet outlives a
  // Redis restart, and so does starting during one). Errors: config_error.
  RedisQueueBackend(const ServerConfig& config, ServiceStats& stats, OutcomeRecorder record,
                    VersionSource artifact_version);
  ~RedisQueueBackend() override;

  Admission admit_known(const std::string&, const std::string&) override { return Admission::unknown(); }
  Admission admit(JobPtr job, size_t bytes) override;
  std::vector<QueueAnswer> commit() override;
  QueueAnswer result(const std::string& id) override;
  QueueAnswer cancel(const std::string& id) override;
  void watch(const std::string& id) override { watched_.insert(id); }
  std::vector<FinishedJob> take_finished() override;
  std::chrono::milliseconds poll_interval() const override;
  void maintain(int64_t) override {}  // Redis expires results; deadlines are checked as jobs start
  size_t queued() const override { return 0; }  // what the stream holds stays there for the fleet
  void describe(nlohmann::json& status) override;
  std::string close() override { return "queued jobs stay in Redis for the fleet"; }

  std::vector<TakenJob> take(size_t max_batch, std::chrono::milliseconds max_wait, bool wait_for_first) override;
  void finish(const std::vector<JobPtr>& jobs, std::vector<Message> replies) override;
  bool drained() const override { return unstored_entries_.empty(); }
  void worker_stopped() override;
  // take() blocks on Redis for a bounded time anyway; this cuts a back-off short.
  void wake() override { woken_ = true; }

 private:
  // A Redis call of the I/O thread failed: refuse for a moment instead of
  // blocking every request on it.
  void unreachable(const Error& error);
  void reachable_again();
  bool reachable_now() const;
  QueueAnswer unavailable(const std::string& id) const;
  // Worker: the Redis part of take(), which throws on a Redis failure.
  std::vector<TakenJob> take_or_throw(size_t max_batch, std::chrono::milliseconds max_wait, bool wait_for_first);
  // Worker: waits out the back-off after a Redis failure.
  void back_off(const Error& error);
  void heartbeat_loop();
  void stop_heartbeat();

  const ServerConfig& config_;
  ServiceStats& stats_;
  OutcomeRecorder record_;
  VersionSource artifact_version_;

  // I/O thread.
  RedisQueue io_;
  std::vector<RedisQueue::Submission> to_submit_;
  std::unordered_set<std::string> watched_;  // ids a client of this front waits for
  int64_t retry_at_ms_ = 0;                  // Redis failed: until then every request is answered busy at once
  int64_t last_poll_ms_ = 0;
  std::string error_;

  // Worker thread.
  RedisQueue work_;
  const std::string consumer_;
  std::atomic<bool> woken_{false};
  bool ready_ = false;    // the consumer group exists (checked after each reconnect)
  int64_t backoff_ms_ = 0;
  int64_t next_claim_ms_ = 0;
  // Finished jobs whose results Redis did not take yet: stored before anything new is read.
  std::vector<StreamJob> unstored_entries_;
  std::vector<std::string> unstored_replies_;

  // Heartbeat thread (started by the first take()).
  RedisQueue beat_;
  std::thread beat_thread_;
  std::mutex beat_mutex_;
  std::condition_variable beat_changed_;
  bool beat_stop_ = false;
};

}  // namespace feu::service
