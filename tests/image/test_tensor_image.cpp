// Generator output -> uint8 with both reference conventions.
#include <ATen/ATen.h>

#include "image/tensor_image.h"
#include "test_support.h"

namespace feu::image {
namespace {

TEST(TensorImage, BothQuantizationConventions) {
  // One pixel per value, [1, 3, 1, 6].
  std::vector<float> values = {-1.5f, -1.0f, 0.0f, 0.5f, 1.0f, 2.0f};
  at::Tensor x = at::tensor(values).view({1, 1, 1, 6}).repeat({1, 3, 1, 1});
  auto nv = images_from_tensor(x, Quantize::kNvlabs);
  auto sc = images_from_tensor(x, Quantize::kStyleClip);
  ASSERT_EQ(nv.size(), 1u);
  ASSERT_EQ(nv[0].width, 6);
  ASSERT_EQ(nv[0].height, 1);
  // x*127.5+128 truncated: 0, 0.5->0, 128, 191.75->191, 255.5->255, clamp.
  const uint8_t nv_expected[6] = {0, 0, 128, 191, 255, 255};
  // (x+1)*127.5 truncated: clamp, 0, 127.5->127, 191.25->191, 255, clamp.
  const uint8_t sc_expected[6] = {0, 0, 127, 191, 255, 255};
  for (int i = 0; i < 6; ++i)
    for (int c = 0; c < 3; ++c) {
      EXPECT_EQ(nv[0].rgb[i * 3 + c], nv_expected[i]) << values[i];
      EXPECT_EQ(sc[0].rgb[i * 3 + c], sc_expected[i]) << values[i];
    }
}

TEST(TensorImage, LayoutIsHwcRgb) {
  // [2, 3, 2, 3] with distinct channel values: image n, channel c -> (n*3+c)/10 - 0.9.
  at::Tensor x = at::zeros({2, 3, 2, 3});
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 3; ++c) x[n][c].fill_((n * 3 + c) / 10.0 - 0.9);
  x[1][2][1][2] = 1.0;  // bottom-right pixel of image 1, blue
  auto images = images_from_tensor(x, Quantize::kStyleClip);
  ASSERT_EQ(images.size(), 2u);
  EXPECT_EQ(images[1].width, 3);
  EXPECT_EQ(images[1].height, 2);
  EXPECT_EQ(images[1].rgb[(1 * 3 + 2) * 3 + 2], 255);
  EXPECT_EQ(images[0].rgb[0], static_cast<uint8_t>((0.0 - 0.9 + 1.0) * 127.5));
  EXPECT_EQ(images[0].rgb[1], static_cast<uint8_t>((0.1f - 0.9f + 1.0f) * 127.5f));
  EXPECT_THROW(images_from_tensor(at::zeros({3, 2, 2}), Quantize::kNvlabs), std::exception);
}

}  // namespace
}  // namespace feu::image
