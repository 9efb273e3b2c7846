// NumPy .npy files of floating-point arrays (format versions 1-3). Debian
// packages no .npy library (no libcnpy), and the format is one small header.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace feu::npy {

struct FloatArray {
  std::vector<int64_t> shape;  // [] for a 0-d array
  std::string dtype;           // the file's element type: "float32" or "float64"
  std::vector<float> values;   // C order, converted to float32
};

// Reads a little-endian float32 or float64 array in C order. Errors naming
// `path`: not_found, io_error, corrupt_file (no .npy signature, a malformed
// header, fewer data bytes than the shape needs), unsupported (another dtype,
// big-endian data, Fortran order).
FloatArray read_float(const std::string& path);

// Writes a float32 array in C order (format version 1.0), as numpy.save does.
void write_float(const std::string& path, const float* values, const std::vector<int64_t>& shape);

}  // namespace feu::npy
