// feu::parallel_for: the work really reaches several threads (ATen's loop
// runs serially in a translation unit built without OpenMP, silently), and
// the workers run in the caller's InferenceMode.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "tensor/parallel.h"

namespace feu {
namespace {

// Restores ATen's thread count however the test ends.
struct ThreadCount {
  explicit ThreadCount(int threads) : before(at::get_num_threads()) { at::set_num_threads(threads); }
  ~ThreadCount() { at::set_num_threads(before); }
  int before;
};

TEST(ParallelFor, SpreadsTheRangeOverTheThreadsAndCoversItOnce) {
  ThreadCount two(2);
  std::mutex mutex;
  std::set<std::thread::id> threads;
  std::vector<int> visits(1000, 0);
  parallel_for(0, 1000, 1, [&](int64_t begin, int64_t end) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      threads.insert(std::this_thread::get_id());
    }
    for (int64_t i = begin; i < end; ++i) ++visits[static_cast<size_t>(i)];
  });
  EXPECT_EQ(threads.size(), 2u);
  EXPECT_EQ(std::count(visits.begin(), visits.end(), 1), 1000);

  // One thread, or a range within one grain: the caller's thread alone.
  threads.clear();
  parallel_for(0, 10, 16, [&](int64_t, int64_t) { threads.insert(std::this_thread::get_id()); });
  EXPECT_EQ(threads, std::set<std::thread::id>{std::this_thread::get_id()});
}

TEST(ParallelFor, WorkersTakeTheCallersInferenceModeAndErrorsReachTheCaller) {
  ThreadCount two(2);
  at::Tensor target;
  {
    c10::InferenceMode guard;
    target = at::zeros({2, 8});  // an inference tensor: ATen writes to it only in InferenceMode
    parallel_for(0, 2, 1, [&](int64_t begin, int64_t end) {
      EXPECT_TRUE(c10::InferenceMode::is_enabled());
      for (int64_t row = begin; row < end; ++row) target.select(0, row).add_(row + 1);
    });
  }
  EXPECT_TRUE(at::equal(target.sum(1), at::tensor({8.0f, 16.0f})));
  parallel_for(0, 2, 1, [&](int64_t, int64_t) { EXPECT_FALSE(c10::InferenceMode::is_enabled()); });
  EXPECT_THROW(parallel_for(0, 100, 1,
                            [&](int64_t begin, int64_t) {
                              if (begin > 0) throw std::runtime_error("worker failed");
                            }),
               std::runtime_error);
}

}  // namespace
}  // namespace feu
