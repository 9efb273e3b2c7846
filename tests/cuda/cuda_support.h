// What the CUDA tests share: whether a GPU is there and why not.
#pragma once

#include <string>

namespace feu::test {

// True when this build's libtorch has CUDA and sees a GPU.
bool have_cuda_gpu();
// Why have_cuda_gpu() is false, for GTEST_SKIP.
std::string no_cuda_gpu_reason();

}  // namespace feu::test

#define FEU_SKIP_WITHOUT_CUDA_GPU()                                               \
  do {                                                                            \
    if (!::feu::test::have_cuda_gpu()) GTEST_SKIP() << ::feu::test::no_cuda_gpu_reason(); \
  } while (0)
