// Internal to feu_clip: reads the tensors of a TorchScript archive by name.
// Kept apart so that only torchscript_reader.cpp includes <torch/script.h>.
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace feu::clip {

// Every named parameter and buffer of the archive (recursively, dotted
// names such as "visual.conv1.weight"), as CPU tensors in their stored dtype.
// The archive's code is never run. Errors: corrupt_file naming the file.
std::map<std::string, at::Tensor> read_torchscript_tensors(const std::string& path);

}  // namespace feu::clip
