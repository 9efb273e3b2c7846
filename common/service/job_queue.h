// The bounded queue between the daemon's I/O thread and its worker.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "service/frames.h"
#include "service/protocol.h"

namespace feu::service {

// Milliseconds since the Unix epoch (wall clock: deadlines survive restarts).
int64_t now_unix_ms();

// One accepted unit of work.
struct Job {
  std::string id;
  RequestType type = RequestType::kEdit;   // kEdit or kRetrieve
  edit::EditRequest edit;
  std::string text;                        // kRetrieve
  int64_t k = 10;                          // kRetrieve
  std::string digest;                      // kEdit: see Request::digest
  std::vector<Frame> frames;               // kEdit: the request as received (journaled)
  int64_t accepted_ms = 0;                 // unix ms
  int64_t deadline_ms = 0;                 // unix ms; 0 = none
  bool replayed = false;                   // recovered from the journal after a restart
  std::string route;                       // kRetrieve: where to answer (edits: the server's pending table)
  bool route_delimiter = false;            // kRetrieve: the client uses a REQ-style envelope
  std::string queue_entry;                 // the redis queue: the job's stream entry id
};
using JobPtr = std::shared_ptr<Job>;

class JobQueue {
 public:
  explicit JobQueue(size_t capacity) : capacity_(capacity) {}

  // Appends unless `capacity` jobs are waiting; false when full.
  bool push(JobPtr job);
  // Appends regardless of capacity: jobs recovered from the journal were
  // accepted before the crash and must not be refused now.
  void push_recovered(JobPtr job);

  // Waits up to `idle_wait` for a first job, then gathers up to `max_batch`
  // edits, waiting at most `max_wait` after the first for more to arrive.
  // Retrieves are returned alone. Empty when nothing came or on wake().
  std::vector<JobPtr> pop_batch(size_t max_batch, std::chrono::milliseconds max_wait,
                                std::chrono::milliseconds idle_wait);

  // Removes a waiting job (cancel); false when it is not waiting.
  bool remove(const std::string& id);
  bool contains(const std::string& id) const;
  // Removes and returns waiting jobs whose deadline is before `now_ms`.
  std::vector<JobPtr> take_expired(int64_t now_ms);
  size_t size() const;
  size_t capacity() const { return capacity_; }
  // Releases a waiting pop_batch (shutdown).
  void wake();

 private:
  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<JobPtr> jobs_;
  bool woken_ = false;
};

}  // namespace feu::service
