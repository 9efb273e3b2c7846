// PyTorch files (torch.save zips, TorchScript archives): the restricted reader must turn any file
// into its object tree or a typed error, never run, crash or read outside the input.
//
// An input starting with a zip's signature is the file itself (the zip layer is fuzzed). Any
// other input is [u8 n][n × u16 little-endian sizes][pickle]: the pickle becomes archive/data.pkl
// of a zip this target writes, beside entries archive/data/0 .. n-1 of those sizes, so that the
// unpickler is fuzzed behind valid zip checksums and its storages can be found (a mutated pickle
// inside a real file would only meet the zip's CRC check).
#include <zip.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_input.h"
#include "tensor/torch_file.h"

namespace {

void add_entry(zip_t* zip, const std::string& name, const void* data, size_t size) {
  zip_source_t* source = zip_source_buffer(zip, data, size, 0);
  const zip_int64_t index = source ? zip_file_add(zip, name.c_str(), source, ZIP_FL_OVERWRITE) : -1;
  if (index < 0 || zip_set_file_compression(zip, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) != 0) std::abort();
}

// The archive around a pickle, written to this process's input file.
const std::string& wrapped_input(const uint8_t* data, size_t size) {
  const std::string& path = feu::fuzz::input_file(nullptr, 0, ".pt");
  const size_t entries = size > 0 ? data[0] % 17 : 0;
  size_t offset = 1;
  std::vector<size_t> sizes;
  for (size_t i = 0; i < entries && offset + 2 <= size; ++i, offset += 2)
    sizes.push_back(data[offset] | static_cast<size_t>(data[offset + 1]) << 8);
  offset = std::min(offset, size);
  int error = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &error);
  if (!zip) std::abort();
  add_entry(zip, "archive/data.pkl", data + offset, size - offset);
  // Storage bytes: a ramp, so that every dtype holds distinct finite and non-finite values.
  std::vector<uint8_t> ramp(65536);
  for (size_t i = 0; i < ramp.size(); ++i) ramp[i] = static_cast<uint8_t>(i * 37 + 11);
  for (size_t i = 0; i < sizes.size(); ++i) add_entry(zip, "archive/data/" + std::to_string(i), ramp.data(), sizes[i]);
  if (zip_close(zip) != 0) std::abort();  // copies the buffers before `ramp` goes
  return path;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool whole_file = size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0;
  const std::string& path = whole_file ? feu::fuzz::input_file(data, size, ".pt") : wrapped_input(data, size);
  try {
    const feu::torch_file::ValuePtr root = feu::torch_file::read(path);
    // What the loaders do next: name every tensor and read it whole.
    for (const auto& [name, tensor] : feu::torch_file::named_tensors(*root, path))
      if (tensor.numel() > 0) (void)tensor.sum().item<double>();
  } catch (const feu::Error&) {
  }
  return 0;
}
