// The e4e encoder against the reference (shared/parity/e4e_small.*): the same
// random weights, the same aligned faces, W+ within 1e-4 relative.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstdlib>
#include <map>
#include <string>
#include <vector>

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

TEST(E4e, ReproducesTheReferenceWplusFromAlignedFacesAndFromItsInput) {
  FEU_SHARED_FILE_OR_SKIP(fixture, "parity/e4e_small.h5");
  FEU_SHARED_FILE_OR_SKIP(checkpoint, "parity/e4e_small.pt");
  h5::File f = h5::File::open_read(fixture);
  E4eEncoder encoder = E4eEncoder::load(checkpoint);
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

TEST(E4e, EncodeFaceCommandReproducesTheReferenceAndEncodesPhotos) {
  FEU_SHARED_FILE_OR_SKIP(fixture, "parity/e4e_small.h5");
  FEU_SHARED_FILE_OR_SKIP(checkpoint, "parity/e4e_small.pt");
  FEU_SHARED_FILE_OR_SKIP(photo, "faces/2008_001009.jpg");
  FEU_SHARED_FILE_OR_SKIP(dogs, "faces/dogs.jpg");
  test::TempDir dir;
  const std::string indexer = test::program("feu-indexer") + " encode-face --device cpu --e4e " + checkpoint;
  std::string log;
  ASSERT_EQ(test::run_command(indexer + " --aligned " + fixture + " --out " + dir.file("w.h5"), &log), 0) << log;
  {
    h5::File out = h5::File::open_read(dir.file("w.h5"));
    h5::File f = h5::File::open_read(fixture);
    EXPECT_LE(relative_max_error(read_tensor(out, "wplus"), read_tensor(f, "wplus")), 1e-4);
  }
  // Photos: every face found is aligned and encoded; a photo without one is a warning.
  ASSERT_EQ(test::run_command(indexer + " --images " + photo + " " + dogs + " --out " + dir.file("p.h5"), &log), 0)
      << log;
  EXPECT_NE(log.find("no face"), std::string::npos) << log;
  {
    h5::File out = h5::File::open_read(dir.file("p.h5"));
    const at::Tensor wplus = read_tensor(out, "wplus");
    const std::vector<std::string> sources = out.read_strings("source");
    ASSERT_GE(wplus.size(0), 1);
    EXPECT_EQ(wplus.size(1), 10);
    EXPECT_EQ(static_cast<int64_t>(sources.size()), wplus.size(0));
    EXPECT_EQ(sources[0], "2008_001009.jpg#0");
  }
  // Only photos without faces, or both inputs given: exit 2 with the reason.
  EXPECT_EQ(test::run_command(indexer + " --images " + dogs + " --out " + dir.file("n.h5"), &log), 2) << log;
  EXPECT_NE(log.find("no face"), std::string::npos) << log;
  EXPECT_EQ(test::run_command(indexer + " --aligned " + fixture + " --images " + photo + " --out " +
                                  dir.file("n.h5"), &log), 2) << log;
}

TEST(E4e, RandomAtTheReleasedWidthsHasTheReleasedSize) {
  // e4e_ffhq_encode.pt's encoder: IR-SE50 64/128/256/512, w_dim 512, 18 styles, 267 M parameters.
  const E4eConfig config = E4eConfig::ffhq();
  int64_t parameters = 0;
  for (const auto& [key, shape] : config.expected_shapes()) {
    if (key.find("running_") != std::string::npos) continue;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    parameters += n;
  }
  EXPECT_NEAR(parameters / 1e6, 267.1, 0.1);
}

TEST(E4e, WrittenRandomWeightsLoadAsTheSameEncoder) {
  // The demo's encoder file: write_random's HDF5 must give the encoder random() gives.
  E4eConfig small;
  small.stage_widths = {16, 16, 32, 32};
  small.w_dim = 32;
  small.n_styles = 10;
  test::TempDir dir;
  const std::string path = dir.path() + "/e4e.h5";
  E4eEncoder::write_random(small, 7, path);
  const E4eEncoder loaded = E4eEncoder::load(path);
  const E4eEncoder direct = E4eEncoder::random(small, 7);
  EXPECT_EQ(loaded.config().stage_widths, small.stage_widths);
  EXPECT_EQ(loaded.config().n_styles, 10);
  const at::Tensor faces = at::randint(0, 256, {2, 256, 256, 3}, at::TensorOptions().dtype(at::kByte));
  const at::Tensor a = loaded.encode_aligned(faces);
  const at::Tensor b = direct.encode_aligned(faces);
  ASSERT_EQ(a.sizes(), (at::IntArrayRef{2, 10, 32}));
  EXPECT_TRUE(at::equal(a, b));
  // Another seed is another encoder.
  EXPECT_FALSE(at::allclose(E4eEncoder::random(small, 8).encode_aligned(faces), b));
  // An HDF5 file that is not an encoder is named as such.
  {
    h5::File other = h5::File::create(dir.path() + "/other.h5");
    other.set_attr("/", "format", "something-else");
  }
  test::expect_error([&] { E4eEncoder::load(dir.path() + "/other.h5"); }, ErrorCode::kCorruptFile,
                     {"other.h5", "not an e4e encoder"});
}

TEST(E4e, CheckpointsThatAreNotE4eAreNamedErrors) {
  FEU_SHARED_FILE_OR_SKIP(clip, "parity/clip_small.pt");
  try {
    E4eEncoder::load(clip);
    FAIL() << "a CLIP archive loaded as e4e";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
    EXPECT_NE(std::string(e.what()).find("state_dict"), std::string::npos) << e.what();
  }
  // A state dict with one tensor of the wrong shape names that tensor.
  E4eConfig small;
  small.stage_widths = {16, 32, 48, 64};
  small.w_dim = 64;
  small.n_styles = 10;
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [key, shape] : small.expected_shapes()) tensors[key] = at::zeros(shape);
  tensors["encoder.styles.4.linear.weight"] = at::zeros({64, 63});
  try {
    E4eEncoder::from_state_dict(tensors, at::zeros({10, 64}), "bad.pt");
    FAIL() << "a misshaped tensor was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kShapeMismatch);
    EXPECT_NE(std::string(e.what()).find("encoder.styles.4.linear.weight"), std::string::npos) << e.what();
  }
  tensors.erase("encoder.styles.4.linear.weight");
  EXPECT_THROW(E4eEncoder::from_state_dict(tensors, at::zeros({10, 64}), "bad.pt"), Error);
}

}  // namespace
}  // namespace feu::face
