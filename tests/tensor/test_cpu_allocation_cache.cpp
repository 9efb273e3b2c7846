// The CPU allocation cache: large freed blocks come back to the next
// allocation of (nearly) their size, within the limit, least recently freed
// given back first; small blocks and results are unaffected. The cache is
// process-wide: every test leaves it off.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tensor/conv.h"
#include "tensor/cpu_allocation_cache.h"

namespace feu::tensor {
namespace {

constexpr size_t kMB = size_t{1} << 20;

// A float tensor of exactly `bytes` bytes.
at::Tensor block(size_t bytes) { return at::empty({static_cast<int64_t>(bytes / sizeof(float))}, at::kFloat); }

class CpuAllocationCache : public ::testing::Test {
 protected:
  void TearDown() override { set_cpu_allocation_cache(0); }
};

TEST_F(CpuAllocationCache, AFreedLargeBlockServesTheNextAllocationOfItsSize) {
  set_cpu_allocation_cache(64 * kMB);
  const CpuAllocationCacheStats before = cpu_allocation_cache_stats();
  void* first = nullptr;
  {
    at::Tensor t = block(8 * kMB);
    first = t.data_ptr();
  }
  EXPECT_EQ(cpu_allocation_cache_stats().cached_bytes, 8 * kMB);
  at::Tensor again = block(8 * kMB);
  EXPECT_EQ(again.data_ptr(), first);
  const CpuAllocationCacheStats after = cpu_allocation_cache_stats();
  EXPECT_EQ(after.hits, before.hits + 1);
  EXPECT_EQ(after.misses, before.misses + 1);
  EXPECT_EQ(after.cached_bytes, 0u);
  EXPECT_EQ(after.limit_bytes, 64 * kMB);
}

TEST_F(CpuAllocationCache, ABlockIsReusedOnlyWithAtMostAnEighthToSpare) {
  set_cpu_allocation_cache(64 * kMB);
  void* big = nullptr;
  {
    at::Tensor t = block(16 * kMB);
    big = t.data_ptr();
  }
  at::Tensor half = block(8 * kMB);  // 16 MB would waste half: a fresh block
  EXPECT_NE(half.data_ptr(), big);
  at::Tensor near = block(15 * kMB);  // 1 MB to spare: reused
  EXPECT_EQ(near.data_ptr(), big);
  near.fill_(1.0f);                   // the whole requested size is usable
  EXPECT_EQ(near.sum().item<float>(), static_cast<float>(15 * kMB / sizeof(float)));
}

TEST_F(CpuAllocationCache, TheLimitGivesBackTheLeastRecentlyFreedFirst) {
  set_cpu_allocation_cache(20 * kMB);
  at::Tensor a = block(8 * kMB), b = block(8 * kMB), c = block(8 * kMB);
  void* b_data = b.data_ptr();
  void* c_data = c.data_ptr();
  a.reset();
  b.reset();
  c.reset();  // 24 MB freed, 20 kept: a (the oldest) went back to the system
  EXPECT_EQ(cpu_allocation_cache_stats().cached_bytes, 16 * kMB);
  at::Tensor x = block(8 * kMB), y = block(8 * kMB);
  EXPECT_TRUE((x.data_ptr() == c_data && y.data_ptr() == b_data) ||
              (x.data_ptr() == b_data && y.data_ptr() == c_data));
  set_cpu_allocation_cache(0);
  EXPECT_EQ(cpu_allocation_cache_stats().cached_bytes, 0u);
}

TEST_F(CpuAllocationCache, SmallBlocksAndBlocksOverTheLimitAreNotKept) {
  set_cpu_allocation_cache(8 * kMB);
  const CpuAllocationCacheStats before = cpu_allocation_cache_stats();
  { at::Tensor small = block(kCpuCacheMinBlockBytes / 2); }
  { at::Tensor huge = block(16 * kMB); }
  const CpuAllocationCacheStats after = cpu_allocation_cache_stats();
  EXPECT_EQ(after.hits + after.misses, before.hits + before.misses + 1);  // only the large one asked
  EXPECT_EQ(after.cached_bytes, 0u);
}

TEST_F(CpuAllocationCache, OneDnnConvolutionsGiveTheSameResultsThroughTheCache) {
  // oneDNN allocates and frees through the allocator's raw interface.
  at::manual_seed(5);
  const at::Tensor input = at::randn({2, 32, 256, 256});  // 16 MB
  const at::Tensor weight = at::randn({32, 32, 3, 3});
  const at::Tensor bias = at::randn({32});
  const at::Tensor expected = conv2d(input, weight, bias, 1, 1);
  set_cpu_allocation_cache(256 * kMB);
  for (int round = 0; round < 3; ++round) {
    const at::Tensor got = conv2d(input, weight, bias, 1, 1);
    EXPECT_TRUE(at::equal(got, expected)) << "round " << round;
  }
  EXPECT_GT(cpu_allocation_cache_stats().hits, 0u);
}

}  // namespace
}  // namespace feu::tensor
