// The CPU threads' loop for feu's own kernels.
//
// at::parallel_for is a header template: it spreads the range over ATen's
// OpenMP threads only in a translation unit compiled with OpenMP (feu_tensor
// passes -fopenmp on to every module that links it); without, it runs the
// whole range on the calling thread. Its workers start outside the caller's
// InferenceMode (ATen 1.13 does not carry thread-local state over), and a
// worker writing into an inference tensor through an ATen op would fail;
// this loop gives them the caller's mode.
#pragma once

#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <cstdint>

#ifndef _OPENMP
#error "feu's parallel loops need OpenMP: link the target to feu_tensor (which passes -fopenmp on)"
#endif

namespace feu {

// body(chunk_begin, chunk_end) over [begin, end) in chunks of at least
// `grain` on ATen's threads (the caller's thread included); serial inside
// another parallel region. Exceptions reach the caller.
template <class Body>
void parallel_for(int64_t begin, int64_t end, int64_t grain, const Body& body) {
  const bool inference = c10::InferenceMode::is_enabled();
  at::parallel_for(begin, end, grain, [&](int64_t chunk_begin, int64_t chunk_end) {
    c10::InferenceMode mode(inference);
    body(chunk_begin, chunk_end);
  });
}

}  // namespace feu
