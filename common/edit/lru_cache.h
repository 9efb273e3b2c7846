// A small thread-safe LRU map from string keys to values. Plain C++.
#pragma once

#include <cstdint>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>

namespace feu::edit {

template <typename Value>
class LruCache {
 public:
  explicit LruCache(size_t capacity  // entries kept; 0 disables caching
                    )
      : capacity_(capacity) {}

  // A copy of the value, which becomes the most recently used entry.
  std::optional<Value> get(const std::string& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = entries_.find(key);
    if (found == entries_.end()) {
      ++misses_;
      return std::nullopt;
    }
    ++hits_;
    order_.splice(order_.begin(), order_, found->second);
    return found->second->second;
  }

  void put(const std::string& key, Value value) {
    if (capacity_ == 0) return;
    std::lock_guard<std::mutex> lock(mutex_);
    auto found = entries_.find(key);
    if (found != entries_.end()) {
      found->second->second = std::move(value);
      order_.splice(order_.begin(), order_, found->second);
      return;
    }
    order_.emplace_front(key, std::move(value));
    entries_[key] = order_.begin();
    while (order_.size() > capacity_) {
      entries_.erase(order_.back().first);
      order_.pop_back();
    }
  }

  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    order_.clear();
    entries_.clear();
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return order_.size();
  }
  size_t capacity() const { return capacity_; }
  uint64_t hits() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return hits_;
  }
  uint64_t misses() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return misses_;
  }

 private:
  using Entry = std::pair<std::string, Value>;
  size_t capacity_;
  mutable std::mutex mutex_;
  std::list<Entry> order_;  // most recently used first
  std::unordered_map<std::string, typename std::list<Entry>::iterator> entries_;
  uint64_t hits_ = 0;
  uint64_t misses_ = 0;
};

}  // namespace feu::edit
