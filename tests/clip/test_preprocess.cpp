// CLIP preprocessing against Pillow 9.4 + torchvision (parity/clip_preprocess.h5),
// and the batched generator-output path.
#include <ATen/ATen.h>

#include <cmath>
#include <iostream>

#include "clip/preprocess.h"
#include "core/files.h"
#include "core/h5.h"
#include "image/codec.h"
#include "tensor/tensor_h5.h"
#include "test_support.h"

namespace feu::clip {
namespace {

at::Tensor mean_std(const float* values) {
  return at::tensor(std::vector<float>(values, values + 3)).view({3, 1, 1});
}

// Undoes CLIP's normalization: [3,R,R] normalized -> levels 0..255 (float).
at::Tensor to_levels(const at::Tensor& normalized) {
  return (normalized * mean_std(kClipStd) + mean_std(kClipMean)) * 255.0;
}

TEST(ClipPreprocess, MatchesPillowOnEveryParityCase) {
  FEU_SHARED_FILE_OR_SKIP(path, "parity/clip_preprocess.h5");
  h5::File file = h5::File::open_read(path);
  // The fixture's constants are CLIP's.
  std::vector<double> mean = file.attr_doubles("/", "mean"), std = file.attr_doubles("/", "std");
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(mean[c], kClipMean[c], 1e-7);
    EXPECT_NEAR(std[c], kClipStd[c], 1e-7);
  }
  std::vector<std::string> cases = file.list("/");
  ASSERT_EQ(cases.size(), 8u);
  double overall_max = 0;
  for (const std::string& name : cases) {
    std::vector<uint8_t> png = file.read_uint8(name + "/png");
    const image::NativeImage decoded = image::decode_native_bytes(png.data(), png.size(), name);
    at::Tensor ours = preprocess_image(decoded, 224);
    ASSERT_EQ(ours.sizes(), at::IntArrayRef({3, 224, 224})) << name;
    at::Tensor expected = read_tensor(file, name + "/expected");
    at::Tensor diff = (to_levels(ours) - to_levels(expected)).abs();
    const double max_diff = diff.max().item<double>(), mean_diff = diff.mean().item<double>();
    overall_max = std::max(overall_max, max_diff);
    std::cout << "  " << name << ": max |diff| " << max_diff << "/255, mean " << mean_diff << "/255\n";
    EXPECT_LE(max_diff, 1.5) << name;
    // The normalized values themselves agree to float precision where the levels do.
    EXPECT_LT((ours - expected).abs().max().item<double>(), 1.5 / 255.0 / 0.26) << name;
  }
  std::cout << "  overall max |diff| " << overall_max << "/255\n";
}

TEST(ClipPreprocess, GeneratedPathMatchesPillowOnEveryParityCase) {
  FEU_SHARED_FILE_OR_SKIP(path, "parity/clip_preprocess.h5");
  h5::File file = h5::File::open_read(path);
  for (const std::string& name : file.list("/")) {
    std::vector<uint8_t> png = file.read_uint8(name + "/png");
    image::Image decoded = image::decode_bytes(png.data(), png.size(), name);
    // A [-1,1] tensor whose StyleCLIP quantization gives back exactly these levels.
    at::Tensor levels = at::from_blob(decoded.rgb.data(), {1, decoded.height, decoded.width, 3}, at::kByte)
                            .permute({0, 3, 1, 2})
                            .to(at::kFloat);
    at::Tensor generated = (levels + 0.5f) / 127.5f - 1.0f;
    at::Tensor ours = preprocess_generated(generated, 224)[0];
    at::Tensor expected = read_tensor(file, name + "/expected");
    EXPECT_LE((to_levels(ours) - to_levels(expected)).abs().max().item<double>(), 1e-3) << name;
  }
}

// OpenAI's _transform resizes in the file's own mode and converts to RGB after
// the crop: palette and 1-bit images NEAREST, RGBA / LA premultiplied, CMYK per
// channel, 16-bit gray ("I") in double precision and clipped only at the end.
// References: tests/image/modes/*.clip16.rgb, Pillow 9.4 (make_fixtures.py).
TEST(ClipPreprocess, ResizesInTheFilesOwnModeAsPillowDoes) {
  const char* files[] = {"gray_down.png",    "la_down.png",          "rgba_down.png",    "palette_down.png",
                         "palette_trns_down.png", "bilevel_down.png", "gray16_down.png",  "cmyk_down.jpg",
                         "rgb_down.jpg",     "gray_up.png",          "la_up.png",        "rgba_up.png",
                         "palette_up.png",   "palette_trns_up.png",  "bilevel_up.png",   "gray16_up.png",
                         "cmyk_up.jpg",      "rgb_up.jpg",           "rgb16_down.png",   "rgba16_down.png"};
  const std::string dir = std::string(FEU_SOURCE_DIR) + "/tests/image/modes/";
  for (const std::string file : files) {
    const image::NativeImage native = image::decode_native_file(dir + file);
    const image::Image ours = resize_and_crop(native, 16);
    const std::vector<uint8_t> expected = read_file(dir + file.substr(0, file.rfind('.')) + ".clip16.rgb");
    ASSERT_EQ(ours.rgb.size(), expected.size()) << file;
    int worst = 0;
    for (size_t i = 0; i < expected.size(); ++i) worst = std::max(worst, std::abs(ours.rgb[i] - expected[i]));
    EXPECT_EQ(worst, 0) << file << " (" << image::pillow_mode_name(native.mode) << ")";
    // The normalized tensor is the same crop's.
    at::Tensor levels = to_levels(preprocess_image(native, 16));
    at::Tensor want = at::from_blob(const_cast<uint8_t*>(expected.data()), {16, 16, 3}, at::kByte)
                          .permute({2, 0, 1})
                          .to(at::kFloat);
    EXPECT_LT((levels - want).abs().max().item<double>(), 1e-3) << file;
  }
}

TEST(ClipPreprocess, CropOffsetsAndShapes) {
  // A 2-pixel-wide image with a distinct column per x: after a 1:1 "resize"
  // of the short side the crop must start where torchvision's round() says.
  image::Image img;
  img.width = 7;
  img.height = 4;
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 7; ++x) img.rgb.insert(img.rgb.end(), {uint8_t(x * 30), uint8_t(y * 60), 0});
  image::Image crop = resize_and_crop(img, 4);  // short side already 4: no resampling
  ASSERT_EQ(crop.width, 4);
  ASSERT_EQ(crop.height, 4);
  // (7-4)/2 = 1.5 -> round half to even = 2.
  EXPECT_EQ(crop.rgb[0], 2 * 30);
  image::Image img2 = img;
  img2.width = 9;
  img2.rgb.clear();
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 9; ++x) img2.rgb.insert(img2.rgb.end(), {uint8_t(x * 25), 0, 0});
  // (9-4)/2 = 2.5 -> 2.
  EXPECT_EQ(resize_and_crop(img2, 4).rgb[0], 2 * 25);
}

TEST(ClipPreprocess, GeneratedBatchAgreesWithTheImagePath) {
  // Smooth random images in [-1,1] at 64x48 (downscale to 32 on the short side, crop).
  at::manual_seed(0);
  at::Tensor low = at::rand({3, 3, 8, 6}) * 2 - 1;
  at::Tensor img = at::upsample_bilinear2d(low, {64, 48}, false).clamp(-1, 1);
  at::Tensor batch = preprocess_generated(img, 32);
  ASSERT_EQ(batch.sizes(), at::IntArrayRef({3, 3, 32, 32}));
  for (int n = 0; n < 3; ++n) {
    image::Image one;
    one.width = 48;
    one.height = 64;
    at::Tensor q = ((img[n] + 1) * 127.5).clamp(0, 255).to(at::kByte).permute({1, 2, 0}).contiguous();
    one.rgb.assign(q.data_ptr<uint8_t>(), q.data_ptr<uint8_t>() + q.numel());
    at::Tensor single = preprocess_image(one, 32);
    EXPECT_TRUE(at::equal(batch[n], single)) << "image " << n;
  }
  // Upscaling path and a square input without resampling.
  EXPECT_EQ(preprocess_generated(at::zeros({1, 3, 16, 16}), 24).sizes(), at::IntArrayRef({1, 3, 24, 24}));
  at::Tensor same = preprocess_generated(at::zeros({2, 3, 24, 24}), 24);
  EXPECT_NEAR(same[0][0][0][0].item<float>(), (127.0f / 255.0f - kClipMean[0]) / kClipStd[0], 1e-6);
}

}  // namespace
}  // namespace feu::clip
