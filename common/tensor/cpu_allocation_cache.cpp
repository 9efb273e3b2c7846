#include "tensor/cpu_allocation_cache.h"

#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <atomic>
#include <cstring>
#include <iterator>
#include <list>
#include <map>
#include <mutex>

namespace feu::tensor {
namespace {

// Every block starts with this header, one alignment unit long, that holds
// its size: the deleter gets only the data pointer (oneDNN frees through
// raw_deleter, which requires the context to be the data).
constexpr size_t kHeaderBytes = c10::gAlignment;

// One large block: where its header starts and how many bytes follow it.
struct Block {
  char* header;
  size_t bytes;
};

// libtorch's CPU allocator with a cache in front of c10::alloc_cpu for large
// blocks. It is never destroyed: tensors may outlive every other object.
class CachingCpuAllocator final : public c10::Allocator {
 public:
  // libtorch 1.x declares allocate const, 2.x not: one of the two overrides.
  c10::DataPtr allocate(size_t bytes) const { return allocate_block(bytes); }
  c10::DataPtr allocate(size_t bytes) { return allocate_block(bytes); }
  // Pure virtual from libtorch 2.3 (Allocator::clone).
  void copy_data(void* dest, const void* src, size_t count) const { std::memcpy(dest, src, count); }

  c10::DeleterFnPtr raw_deleter() const override { return &release; }

  void set_limit(size_t limit_bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_bytes_ = limit_bytes;
    trim_locked();
  }

  CpuAllocationCacheStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return {hits_, misses_, cached_bytes_, limit_bytes_};
  }

 private:
  using Lru = std::list<Block>;  // front: the most recently freed

  static void release(void* data);

  c10::DataPtr allocate_block(size_t bytes) const {
    char* header = bytes >= kCpuCacheMinBlockBytes ? take(bytes) : nullptr;
    if (header == nullptr) {
      header = static_cast<char*>(c10::alloc_cpu(kHeaderBytes + bytes));
      *reinterpret_cast<size_t*>(header) = bytes;
    }
    void* data = header + kHeaderBytes;
    return {data, data, &release, c10::Device(c10::DeviceType::CPU)};
  }

  // The header of a cached block that fits `bytes` with at most 1/8 to spare,
  // or null. A taken block keeps its own (larger or equal) size in its header.
  char* take(size_t bytes) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto fit = by_size_.lower_bound(bytes);
    if (fit == by_size_.end() || fit->first > bytes + bytes / 8) {
      ++misses_;
      return nullptr;
    }
    ++hits_;
    Lru::iterator entry = fit->second;
    char* header = entry->header;
    cached_bytes_ -= entry->bytes;
    by_size_.erase(fit);
    lru_.erase(entry);
    return header;
  }

  void free_block(char* header) const {
    const size_t bytes = *reinterpret_cast<size_t*>(header);
    if (bytes >= kCpuCacheMinBlockBytes) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (bytes <= limit_bytes_) {
        lru_.push_front({header, bytes});
        by_size_.emplace(bytes, lru_.begin());
        cached_bytes_ += bytes;
        trim_locked();
        return;
      }
    }
    c10::free_cpu(header);
  }

  void trim_locked() const {
    while (cached_bytes_ > limit_bytes_) {
      const Block oldest = lru_.back();
      auto range = by_size_.equal_range(oldest.bytes);
      for (auto it = range.first; it != range.second; ++it) {
        if (it->second == std::prev(lru_.end())) {
          by_size_.erase(it);
          break;
        }
      }
      lru_.pop_back();
      cached_bytes_ -= oldest.bytes;
      c10::free_cpu(oldest.header);
    }
  }

  mutable std::mutex mutex_;
  mutable Lru lru_;
  mutable std::multimap<size_t, Lru::iterator> by_size_;
  mutable size_t cached_bytes_ = 0;
  mutable uint64_t hits_ = 0;
  mutable uint64_t misses_ = 0;
  size_t limit_bytes_ = 0;
};

// Set once, by the first set_cpu_allocation_cache.
std::atomic<CachingCpuAllocator*> installed{nullptr};

void CachingCpuAllocator::release(void* data) {
  if (data != nullptr) installed.load()->free_block(static_cast<char*>(data) - kHeaderBytes);
}

}  // namespace

void set_cpu_allocation_cache(size_t limit_bytes) {
  static CachingCpuAllocator* const allocator = [] {
    auto* created = new CachingCpuAllocator();
    installed.store(created);
    // Priority 1 outranks libtorch's own default (0).
    c10::SetCPUAllocator(created, 1);
    return created;
  }();
  allocator->set_limit(limit_bytes);
}

CpuAllocationCacheStats cpu_allocation_cache_stats() {
  CachingCpuAllocator* allocator = installed.load();
  return allocator != nullptr ? allocator->stats() : CpuAllocationCacheStats{};
}

}  // namespace feu::tensor
