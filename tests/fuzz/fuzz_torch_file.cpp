// PyTorch files (torch.save zips, TorchScript archives): the restricted reader must turn any file
// into its object tree or a typed error, never run, crash or read outside the input.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "fuzz_input.h"
#include "tensor/torch_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = feu::fuzz::input_file(data, size, ".pt");
  try {
    const feu::torch_file::ValuePtr root = feu::torch_file::read(path);
    // What the loaders do next: name every tensor and read it whole.
    for (const auto& [name, tensor] : feu::torch_file::named_tensors(*root, path))
      if (tensor.numel() > 0) (void)tensor.sum().item<double>();
  } catch (const feu::Error&) {
  }
  return 0;
}
