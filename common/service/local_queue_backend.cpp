#include "service/local_queue_backend.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>

namespace feu::service {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kCompactJournalBytes = 64u << 20;
constexpr int64_t kPruneIntervalMs = 60000;
// Result-store retries after a failure: first delay, doubling up to the cap.
constexpr int64_t kStoreRetryFirstMs = 100;
constexpr int64_t kStoreRetryMaxMs = 5000;
// How long take() waits for a first job (bounds the worker's stop latency).
constexpr std::chrono::milliseconds kIdleWait(100);

size_t frames_bytes(const std::vector<Frame>& frames) {
  size_t bytes = 0;
  for (const Frame& frame : frames) bytes += frame.size();
  return bytes;
}

}  // namespace

LocalQueueBackend::LocalQueueBackend(const ServerConfig& config, ServiceStats& stats, OutcomeRecorder record)
    : config_(config),
      stats_(stats),
      record_(std::move(record)),
      state_lock_(std::make_unique<StateDirLock>(config.journal_dir)),
      queue_(config.max_queue) {
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
  recover(std::move(unfinished));
}

void LocalQueueBackend::recover(std::vector<JournalEntry> unfinished) {
  // Every job accepted before a crash runs again unless its result was stored
  // (the crash hit between storing it and journaling it done).
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
  { std::lock_guard<std::mutex> lock(finished_mutex_); finished_.clear(); }  // nobody to tell yet
  if (recovered_jobs_ > 0) spdlog::info("journal: recovered {} unfinished jobs", recovered_jobs_);
}

// ---------------------------------------------------------------- I/O thread

Admission LocalQueueBackend::admit_known(const std::string& id, const std::string& digest) {
  // Idempotency: a known id is answered from its result or its pending job,
  // never run again.
  if (results_->contains(id)) {
    if (results_->digest_of(id) != digest)
      return Admission::answered({id_conflict_reply(id), false, "rejected.id_conflict"});
    if (auto stored = results_->get(id)) {
      stored->header["duplicate"] = true;
      return Admission::answered({std::move(*stored), false, "duplicates"});
    }
  }
  auto it = pending_.find(id);
  if (it == pending_.end()) return Admission::unknown();
  if (it->second.job->digest != digest)
    return Admission::answered({id_conflict_reply(id), false, "rejected.id_conflict"});
  // A Lazy Pirate retry is answered too, once its job is journaled.
  Message accepted = accepted_reply(id);
  accepted.header["duplicate"] = true;
  accepted.header["state"] = queue_.contains(id) ? "queued" : "running";
  staged_.push_back({id, {std::move(accepted), true, "duplicates"}});
  return Admission::staged();
}

Admission LocalQueueBackend::admit(JobPtr job, size_t bytes) {
  const std::string& id = job->id;
  size_t waiting = queue_.size() + to_journal_.size() + unstored_count();
  if (waiting >= config_.max_queue || pending_bytes_ + bytes > config_.max_queue_bytes)
    return Admission::answered(
        {busy_reply(id, retry_after_ms(), waiting), false, waiting >= config_.max_queue ? "busy" : "busy.bytes"});
  to_journal_.push_back(JournalEntry{id, job->digest, job->accepted_ms, job->deadline_ms, job->frames});
  Pending& pending = pending_[id];
  pending.job = std::move(job);
  pending.bytes = bytes;
  pending_bytes_ += bytes;
  Message accepted = accepted_reply(id);
  accepted.header["queue_depth"] = waiting + 1;
  staged_.push_back({id, {std::move(accepted), true, "accepted"}});
  return Admission::staged();
}

std::vector<QueueAnswer> LocalQueueBackend::commit() {
  std::set<std::string> failed;
  if (!to_journal_.empty()) {
    try {
      journal_->append_accepted(to_journal_);  // fsync before any `accepted` leaves
      for (const auto& entry : to_journal_) queue_.push_recovered(pending_.at(entry.id).job);
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
  std::vector<QueueAnswer> answers;
  for (Staged& staged : staged_) {
    if (failed.count(staged.id))
      answers.push_back(
          {error_reply(staged.id, error_code_name(ErrorCode::kIoError), "the job journal could not be written"), false,
           ""});
    else
      answers.push_back(std::move(staged.answer));
  }
  staged_.clear();
  return answers;
}

QueueAnswer LocalQueueBackend::result(const std::string& id) {
  if (auto stored = results_->get(id)) return {std::move(*stored), false, ""};
  if (pending_.count(id)) {
    Message reply = accepted_reply(id);
    reply.header["state"] = queue_.contains(id) ? "queued" : "running";
    return {std::move(reply), true, ""};  // its `done` comes here too, and to the submitter
  }
  return {not_found_reply(id, config_.result_retention_s), false, ""};
}

QueueAnswer LocalQueueBackend::cancel(const std::string& id) {
  auto it = pending_.find(id);
  if (it != pending_.end() && queue_.remove(id)) {
    complete(it->second.job, cancelled_reply(id), json::object());
    return {cancel_reply(id, "cancelled"), false, ""};
  }
  if (it != pending_.end()) return {cancel_reply(id, "running"), false, ""};  // a running batch cannot be interrupted
  if (results_->contains(id)) return {cancel_reply(id, "finished"), false, ""};
  return {no_such_job_reply(id), false, ""};
}

std::vector<FinishedJob> LocalQueueBackend::take_finished() {
  std::deque<std::pair<JobPtr, Message>> ready;
  {
    std::lock_guard<std::mutex> lock(finished_mutex_);
    ready.swap(finished_);
  }
  std::vector<FinishedJob> out;
  for (auto& [job, reply] : ready) {
    auto it = pending_.find(job->id);
    if (it == pending_.end()) continue;
    pending_bytes_ -= it->second.bytes;
    pending_.erase(it);
    out.push_back({job->id, std::move(reply)});
  }
  return out;
}

void LocalQueueBackend::maintain(int64_t now) {
  for (const JobPtr& job : queue_.take_expired(now))
    complete(job, deadline_reply(*job), {{"queue_ms", now - job->accepted_ms}});
  // Expired results are already absent on read; pruning frees their disk space.
  if (now - last_prune_ms_ >= std::min<int64_t>(kPruneIntervalMs, config_.result_retention_s * 1000)) {
    last_prune_ms_ = now;
    if (size_t pruned = results_->prune(now)) spdlog::info("result store: pruned {} expired results", pruned);
  }
  if (journal_->size_bytes() > kCompactJournalBytes) journal_->compact(unfinished_entries());
}

std::vector<JournalEntry> LocalQueueBackend::unfinished_entries() const {
  std::vector<JournalEntry> live;
  for (const auto& [id, pending] : pending_)
    live.push_back(JournalEntry{id, pending.job->digest, pending.job->accepted_ms, pending.job->deadline_ms,
                                pending.job->frames});
  std::sort(live.begin(), live.end(), [](const auto& a, const auto& b) { return a.accepted_ms < b.accepted_ms; });
  return live;
}

void LocalQueueBackend::describe(json& status) {
  size_t queued = queue_.size();
  status["queue"].update({{"depth", queued},
                          {"running", pending_.size() >= queued ? pending_.size() - queued : 0},
                          {"bytes", pending_bytes_}});
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
}

std::string LocalQueueBackend::close() {
  // Jobs still queued stay journaled: the next start runs them.
  std::vector<JournalEntry> left = unfinished_entries();
  journal_->compact(left);
  return std::to_string(left.size()) + " jobs left journaled for the next start";
}

int64_t LocalQueueBackend::retry_after_ms() const {
  double batch_ms = stats_.percentile("run", 0.5);
  if (batch_ms <= 0) batch_ms = 100;
  double batches_ahead = std::ceil(static_cast<double>(queue_.size()) / config_.max_batch);
  return static_cast<int64_t>(std::clamp(batches_ahead * batch_ms, 20.0, 30000.0));
}

// ---------------------------------------------------------------- worker

std::vector<TakenJob> LocalQueueBackend::take(size_t max_batch, std::chrono::milliseconds max_wait,
                                              bool wait_for_first) {
  retry_unstored();
  std::vector<TakenJob> taken;
  const auto idle_wait = wait_for_first ? kIdleWait : std::chrono::milliseconds(0);
  for (JobPtr& job : queue_.pop_batch(max_batch, max_wait, idle_wait)) taken.push_back({std::move(job), std::nullopt});
  return taken;
}

void LocalQueueBackend::finish(const std::vector<JobPtr>& jobs, std::vector<Message> replies) {
  std::vector<ResultStore::Item> items;
  for (size_t i = 0; i < jobs.size(); ++i) items.push_back({jobs[i]->id, jobs[i]->digest, &replies[i]});
  try {
    results_->put_many(items);  // one directory fsync for the batch
  } catch (const std::exception& e) {
    // Nothing of the batch was stored: no reply leaves, no job is marked done.
    for (size_t i = 0; i < jobs.size(); ++i) defer_store(jobs[i], std::move(replies[i]), e.what());
    return;
  }
  for (size_t i = 0; i < jobs.size(); ++i) finished(jobs[i], std::move(replies[i]));
}

void LocalQueueBackend::worker_stopped() {
  if (size_t left = unstored_count())
    spdlog::error("{} finished jobs could not store their results before shutdown: they stay journaled and run "
                  "again at the next start",
                  left);
}

void LocalQueueBackend::complete(const JobPtr& job, Message reply, const json& timings) {
  finalize_timings(*job, reply, timings);
  try {
    results_->put(job->id, job->digest, reply);
  } catch (const std::exception& e) {
    defer_store(job, std::move(reply), e.what());
    return;
  }
  finished(job, std::move(reply));
}

void LocalQueueBackend::finished(const JobPtr& job, Message reply) {
  // The result was stored (fsynced) before this: a result a client saw is
  // never lost, and a restart never runs the job again.
  try {
    journal_->append_done(job->id);
  } catch (const std::exception& e) {
    spdlog::error("job id={}: cannot journal it done: {}", printable_id(job->id), e.what());
  }
  record_(job, reply);
  std::lock_guard<std::mutex> lock(finished_mutex_);
  finished_.emplace_back(job, std::move(reply));
}

void LocalQueueBackend::defer_store(const JobPtr& job, Message reply, const std::string& why) {
  stats_.count("store_errors");
  std::lock_guard<std::mutex> lock(unstored_mutex_);
  spdlog::error("job id={}: its result cannot be stored ({}); the job stays unfinished and the store is retried "
                "in {} ms",
                printable_id(job->id), why, kStoreRetryFirstMs);
  unstored_.push_back(Unstored{job, std::move(reply), 1, now_unix_ms() + kStoreRetryFirstMs});
}

void LocalQueueBackend::retry_unstored() {
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
                   printable_id(item.job->id), item.attempts + 1, e.what(), delay);
      item.attempts++;
      item.next_try_ms = now_unix_ms() + delay;
      still_failing.push_back(std::move(item));
      continue;
    }
    spdlog::info("job id={}: result stored after {} failed attempts", printable_id(item.job->id), item.attempts);
    finished(item.job, std::move(item.reply));
  }
  if (still_failing.empty()) return;
  std::lock_guard<std::mutex> lock(unstored_mutex_);
  for (Unstored& item : still_failing) unstored_.push_back(std::move(item));
}

size_t LocalQueueBackend::unstored_count() const {
  std::lock_guard<std::mutex> lock(unstored_mutex_);
  return unstored_.size();
}

}  // namespace feu::service
