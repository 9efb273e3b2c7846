// A cache of large CPU tensor allocations, kept by libtorch's CPU allocator
// for reuse instead of returning them to the kernel.
//
// Why: a 1024² StyleGAN2 render allocates and frees activations of 128 MB per
// image per layer. glibc serves every block over 32 MB (its mmap threshold
// ceiling) with a fresh mmap, and a fresh mmap is faulted in and zeroed by the
// kernel page by page: on a 2-core VM 40% of a 1024² render was system time,
// and batching (bigger blocks) made it worse. The same shapes recur render
// after render, so a freed block of the right size is nearly always wanted
// again a few milliseconds later.
//
// The cache is process-wide because libtorch's CPU allocator is: it is
// installed once, and later calls only change its limit.
#pragma once

#include <cstddef>
#include <cstdint>

namespace feu::tensor {

struct CpuAllocationCacheStats {
  uint64_t hits = 0;         // large allocations served from the cache
  uint64_t misses = 0;       // large allocations that went to the system allocator
  size_t cached_bytes = 0;   // freed blocks held now
  size_t limit_bytes = 0;    // most freed bytes held; 0 = the cache is off
};

// Makes libtorch's CPU allocator keep up to `limit_bytes` of freed blocks of
// at least `kCpuCacheMinBlockBytes`, least recently freed given back first.
// An allocation takes the smallest cached block that fits with at most 1/8
// to spare. 0 turns caching off (and gives back what is held). Smaller
// blocks go straight to the system allocator, as before.
void set_cpu_allocation_cache(size_t limit_bytes);

CpuAllocationCacheStats cpu_allocation_cache_stats();

// Below this glibc keeps freed memory in its heaps already.
constexpr size_t kCpuCacheMinBlockBytes = size_t{4} << 20;

// What feu's programs keep unless configured: one 1024² render holds ~1 GB of
// large activations at its peak, and a batch of 4 through the generator ~3 GB
// (measured: 2 GB leaves batch 4 at 1.85 s per image, 4 GB at 1.73 s, against
// 2.8 s without the cache).
constexpr size_t kDefaultCpuAllocationCacheBytes = size_t{2} << 30;

}  // namespace feu::tensor
