// The e4e encoder against the reference (shared/parity/e4e_small.*): the same
// random weights, the same aligned faces, W+ within 1e-4 relative.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdlib>

#include "core/error.h"
#include "core/h5.h"
#include "face/e4e.h"
#include "tensor/tensor_h5.h"
#include "test_support.h"

namespace feu::face {
namespace {

// max |a - b| / max |b|: the relative error the issue bounds.
double relative_max_error(const at::Tensor& a, const at::Tensor& b) {
  return (a - b).abs().max().item<double>() / b.abs().max().item<double>();
}

at::Tensor read_aligned(const h5::File& f) {
  h5::Shape shape;
  std::vector<uint8_t> bytes = f.read_uint8("aligned", &shape);
  return at::from_blob(bytes.data(), {static_cast<int64_t>(shape[0]), static_cast<int64_t>(shape[1]),
                                      static_cast<int64_t>(shape[2]), static_cast<int64_t>(shape[3])},
                       at::kByte)
      .clone();
}

E4eEncoder load_small() {
  // DEV: state dict dumped by the reference; replaced by E4eEncoder::load(e4e_small.pt).
  h5::File f = h5::File::open_read("/tmp/e4e_sd.h5");
  std::map<std::string, at::Tensor> tensors;
  for (const std::string& name : f.list("/")) {
    if (name == "encoder") continue;
  }
  std::function<void(const std::string&)> walk = [&](const std::string& group) {
    for (const std::string& name : f.list(group)) {
      std::string path = group.empty() || group == "/" ? name : group + "/" + name;
      if (f.is_group(path)) walk(path);
      else tensors[path] = read_tensor(f, path);
    }
  };
  walk("/");
  std::map<std::string, at::Tensor> dotted;
  for (auto& [k, v] : tensors) dotted[k] = v;
  at::Tensor avg = dotted.at("latent_avg");
  return E4eEncoder::from_state_dict(dotted, avg, "e4e_small dev");
}

TEST(E4e, ReproducesTheReferenceWplusFromAlignedFacesAndFromItsInput) {
  FEU_SHARED_FILE_OR_SKIP(fixture, "parity/e4e_small.h5");
  h5::File f = h5::File::open_read(fixture);
  E4eEncoder encoder = load_small();
  EXPECT_EQ(encoder.config().stage_widths, (std::array<int64_t, 4>{16, 32, 48, 64}));
  EXPECT_EQ(encoder.config().w_dim, 64);
  EXPECT_EQ(encoder.config().n_styles, 10);
  at::Tensor expected = read_tensor(f, "wplus");
  at::Tensor from_input = encoder.encode(read_tensor(f, "input"));
  at::Tensor from_faces = encoder.encode_aligned(read_aligned(f));
  ASSERT_EQ(from_input.sizes(), expected.sizes());
  const double error_input = relative_max_error(from_input, expected);
  const double error_faces = relative_max_error(from_faces, expected);
  std::printf("e4e_small: W+ relative max error %.3g (from input), %.3g (from aligned faces)\n", error_input,
              error_faces);
  EXPECT_LE(error_input, 1e-4);
  EXPECT_LE(error_faces, 1e-4);
}

}  // namespace
}  // namespace feu::face
