#include "service/job_queue.h"

#include <algorithm>

namespace feu::service {

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool JobQueue::push(JobPtr job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (jobs_.size() >= capacity_) return false;
    jobs_.push_back(std::move(job));
  }
  changed_.notify_one();
  return true;
}

void JobQueue::push_recovered(JobPtr job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    jobs_.push_back(std::move(job));
  }
  changed_.notify_one();
}

std::vector<JobPtr> JobQueue::pop_batch(size_t max_batch, std::chrono::milliseconds max_wait,
                                        std::chrono::milliseconds idle_wait) {
  std::vector<JobPtr> batch;
  std::unique_lock<std::mutex> lock(mutex_);
  if (!changed_.wait_for(lock, idle_wait, [&] { return !jobs_.empty() || woken_; }) || jobs_.empty()) {
    woken_ = false;
    return batch;
  }
  batch.push_back(jobs_.front());
  jobs_.pop_front();
  if (batch.front()->type != RequestType::kEdit) return batch;

  // Batching trades a little latency (max_wait) for throughput: the engine
  // synthesizes a batch in one generator pass.
  auto until = std::chrono::steady_clock::now() + max_wait;
  while (batch.size() < max_batch) {
    if (!jobs_.empty()) {
      if (jobs_.front()->type != RequestType::kEdit) break;
      batch.push_back(jobs_.front());
      jobs_.pop_front();
      continue;
    }
    if (woken_ || !changed_.wait_until(lock, until, [&] { return !jobs_.empty() || woken_; })) break;
  }
  woken_ = false;
  return batch;
}

bool JobQueue::remove(const std::string& id) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = std::find_if(jobs_.begin(), jobs_.end(), [&](const JobPtr& j) { return j->id == id; });
  if (it == jobs_.end()) return false;
  jobs_.erase(it);
  return true;
}

bool JobQueue::contains(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::any_of(jobs_.begin(), jobs_.end(), [&](const JobPtr& j) { return j->id == id; });
}

std::vector<JobPtr> JobQueue::take_expired(int64_t now_ms) {
  std::vector<JobPtr> expired;
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto it = jobs_.begin(); it != jobs_.end();) {
    if ((*it)->deadline_ms > 0 && (*it)->deadline_ms < now_ms) {
      expired.push_back(*it);
      it = jobs_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

size_t JobQueue::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return jobs_.size();
}

void JobQueue::wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    woken_ = true;
  }
  changed_.notify_all();
}

}  // namespace feu::service
