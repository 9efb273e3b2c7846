#include "cuda_support.h"

#include <ATen/ATen.h>

namespace feu::test {

bool have_cuda_gpu() { return at::hasCUDA(); }

std::string no_cuda_gpu_reason() {
#ifdef FEU_TORCH_CUDA_BUILD
  return "no CUDA GPU visible (this build's libtorch has CUDA): GPU parity not checked here";
#else
  return "this build's libtorch has no CUDA (scripts/build-cuda.sh builds one that has)";
#endif
}

}  // namespace feu::test
