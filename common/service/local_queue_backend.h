// The single machine's queue (daemon.queue.backend: local, the default): an
// accepted edit is appended and fsynced to the journal before its client hears
// `accepted`, waits in the in-memory JobQueue, and its reply is stored in the
// result store (fsynced) before it is journaled done and delivered. A restart
// re-queues every journaled job without a stored result.
#pragma once

#include <deque>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "service/journal.h"
#include "service/queue_backend.h"
#include "service/result_store.h"
#include "service/state_lock.h"

namespace feu::service {

class LocalQueueBackend : public QueueBackend {
 public:
  // Locks config.journal_dir (one daemon per state directory), opens the
  // result store and the journal there and re-queues the unfinished jobs.
  // Errors: io_error.
  LocalQueueBackend(const ServerConfig& config, ServiceStats& stats, OutcomeRecorder record);

  Admission admit_known(const std::string& id, const std::string& digest) override;
  Admission admit(JobPtr job, size_t bytes) override;
  std::vector<QueueAnswer> commit() override;
  QueueAnswer result(const std::string& id) override;
  QueueAnswer cancel(const std::string& id) override;
  void watch(const std::string&) override {}  // every job's completion comes back anyway
  std::vector<FinishedJob> take_finished() override;
  std::chrono::milliseconds poll_interval() const override { return std::chrono::milliseconds(50); }
  void maintain(int64_t now_ms) override;
  size_t queued() const override { return queue_.size(); }
  void describe(nlohmann::json& status) override;
  std::string close() override;

  std::vector<TakenJob> take(size_t max_batch, std::chrono::milliseconds max_wait, bool wait_for_first) override;
  void finish(const std::vector<JobPtr>& jobs, std::vector<Message> replies) override;
  bool drained() const override { return queue_.size() == 0 && unstored_count() == 0; }
  void worker_stopped() override;

  void wake() override { queue_.wake(); }
  size_t recovered_jobs() const override { return recovered_jobs_; }

 private:
  struct Pending {
    JobPtr job;
    size_t bytes = 0;  // the request's frames (admission by bytes)
  };
  // An answer staged until the journal commit: a new job's `accepted`, or a
  // duplicate's (refused with io_error if its job's append fails).
  struct Staged {
    std::string id;
    QueueAnswer answer;
  };
  // A finished job whose result could not be stored yet (disk full, no file
  // descriptors): it stays unfinished, unannounced and journaled until a
  // retry stores it.
  struct Unstored {
    JobPtr job;
    Message reply;
    int attempts = 0;
    int64_t next_try_ms = 0;
  };

  void recover(std::vector<JournalEntry> unfinished);
  // Finishes a job that does not run (cancelled, expired, undecodable): stores
  // its reply and finishes it. Any thread.
  void complete(const JobPtr& job, Message reply, const nlohmann::json& timings);
  // After the result is stored: journal, count, hand to the I/O thread.
  void finished(const JobPtr& job, Message reply);
  void defer_store(const JobPtr& job, Message reply, const std::string& why);
  void retry_unstored();
  size_t unstored_count() const;
  int64_t retry_after_ms() const;
  std::vector<JournalEntry> unfinished_entries() const;

  const ServerConfig& config_;
  ServiceStats& stats_;
  OutcomeRecorder record_;
  std::unique_ptr<StateDirLock> state_lock_;  // before the journal: one daemon per state directory
  std::unique_ptr<ResultStore> results_;
  std::unique_ptr<Journal> journal_;
  JobQueue queue_;

  // I/O thread only.
  std::unordered_map<std::string, Pending> pending_;  // accepted, not finished (queued or running)
  size_t pending_bytes_ = 0;
  std::vector<JournalEntry> to_journal_;
  std::vector<Staged> staged_;
  size_t recovered_jobs_ = 0;
  uint64_t journal_dropped_bytes_ = 0;
  int64_t last_prune_ms_ = 0;

  std::mutex finished_mutex_;
  std::deque<std::pair<JobPtr, Message>> finished_;
  mutable std::mutex unstored_mutex_;
  std::vector<Unstored> unstored_;
};

}  // namespace feu::service
