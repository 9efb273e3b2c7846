// at::Tensor <-> HDF5 datasets, and the compute device choice.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "core/h5.h"

namespace feu {

// Reads a numeric dataset as a contiguous float32 CPU tensor of its shape.
at::Tensor read_tensor(const h5::File& file, const std::string& dataset);
// Reads a numeric dataset as int64.
at::Tensor read_tensor_int64(const h5::File& file, const std::string& dataset);
// Writes a tensor (any device, float or integer) as float32 / int64.
void write_tensor(h5::File& file, const std::string& dataset, const at::Tensor& tensor,
                  int64_t chunk_rows = 0);

// Resolves "cpu", "cuda", "cuda:N" or "auto" (CUDA when the build and machine
// have it, else CPU). Asking for CUDA where there is none is an unsupported error.
at::Device resolve_device(const std::string& name);

// Sets ATen's intra-op threads for CPU work: `threads`, or 0 for one per
// hardware thread. Debian's libtorch starts with one, which leaves every other
// core idle during synthesis, CLIP and e4e (1.65x slower e4e on 2 cores).
void use_compute_threads(int threads = 0);

}  // namespace feu
