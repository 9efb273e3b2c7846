// NumPy .npy latents (`feu-client edit --latent`, the indexer's inputs): a float array or a typed
// error.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "core/npy.h"
#include "fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = feu::fuzz::input_file(data, size, ".npy");
  try {
    const feu::npy::FloatArray array = feu::npy::read_float(path);
    double sum = 0;
    for (float v : array.values) sum += v;
    (void)sum;
  } catch (const feu::Error&) {
  }
  return 0;
}
