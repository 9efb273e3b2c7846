// The one file of feu that includes <torch/script.h> (slow to compile).
#include "clip/torchscript_reader.h"

#include <torch/script.h>

#include "core/error.h"

namespace feu::clip {

std::map<std::string, at::Tensor> read_torchscript_tensors(const std::string& path) {
  std::map<std::string, at::Tensor> tensors;
  try {
    // map to CPU: OpenAI's archive records cuda:0 as its storage location.
    torch::jit::Module module = torch::jit::load(path, torch::Device(torch::kCPU));
    for (const auto& parameter : module.named_parameters(/*recurse=*/true))
      tensors[parameter.name] = parameter.value.detach();
    for (const auto& buffer : module.named_buffers(/*recurse=*/true))
      tensors[buffer.name] = buffer.value.detach();
  } catch (const c10::Error& e) {
    std::string what = e.what_without_backtrace();
    if (what.size() > 200) what = what.substr(0, 200) + "...";
    throw Error(ErrorCode::kCorruptFile,
                "cannot read CLIP checkpoint " + path + " as a TorchScript archive: " + what);
  }
  return tensors;
}

}  // namespace feu::clip
