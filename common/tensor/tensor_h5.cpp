#include "tensor/tensor_h5.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/Context.h>

#include "core/error.h"

namespace feu {

at::Tensor read_tensor(const h5::File& file, const std::string& dataset) {
  h5::Shape shape;
  std::vector<float> data = file.read_float(dataset, &shape);
  at::Tensor out = at::empty(shape, at::kFloat);
  std::copy(data.begin(), data.end(), out.data_ptr<float>());
  return out;
}

at::Tensor read_tensor_int64(const h5::File& file, const std::string& dataset) {
  h5::Shape shape;
  std::vector<int64_t> data = file.read_int64(dataset, &shape);
  at::Tensor out = at::empty(shape, at::kLong);
  std::copy(data.begin(), data.end(), out.data_ptr<int64_t>());
  return out;
}

void write_tensor(h5::File& file, const std::string& dataset, const at::Tensor& tensor,
                  int64_t chunk_rows) {
  at::Tensor cpu = tensor.detach().to(at::kCPU).contiguous();
  h5::Shape shape(cpu.sizes().begin(), cpu.sizes().end());
  if (at::isIntegralType(cpu.scalar_type(), /*includeBool=*/true)) {
    cpu = cpu.to(at::kLong);
    file.write_int64(dataset, cpu.data_ptr<int64_t>(), shape);
  } else {
    cpu = cpu.to(at::kFloat);
    file.write_float(dataset, cpu.data_ptr<float>(), shape, chunk_rows);
  }
}

void use_compute_threads(int threads) {
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
}

at::Device resolve_device(const std::string& name) {
  if (name == "cpu") return at::Device(at::kCPU);
  bool have_cuda = at::hasCUDA();
  if (name == "auto") return have_cuda ? at::Device(at::kCUDA, 0) : at::Device(at::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    if (!have_cuda)
      throw Error(ErrorCode::kUnsupported,
                  "device '" + name + "' requested but this build or machine has no CUDA (use cpu or auto)");
    return at::Device(name);
  }
  throw Error(ErrorCode::kInvalidArgument,
              "unknown device '" + name + "' (expected cpu, cuda, cuda:N or auto)");
}

}  // namespace feu
