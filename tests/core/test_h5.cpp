#include <gtest/gtest.h>

#include <fstream>

#include "core/error.h"
#include "core/h5.h"
#include "test_support.h"

namespace feu {
namespace {

TEST(H5, RoundTripsDatasetsAndAttributes) {
  test::TempDir dir;
  std::string path = dir.file("a.h5");
  {
    h5::File f = h5::File::create(path);
    std::vector<float> values = {1, 2, 3, 4, 5, 6};
    f.write_float("group/x", values.data(), {2, 3});
    float scalar = 7.5f;
    f.write_float("weights/synthesis.b4.conv1.noise_strength", &scalar, {});
    std::vector<int64_t> ids = {10, -20};
    f.write_int64("ids", ids.data(), {2});
    std::vector<int32_t> points = {3, -4, 5, 6};
    f.write_int32("group/points", points.data(), {2, 2});
    f.write_strings("paths", {"00000/00000.png", "b/ü.jpg"});
    f.set_attr("/", "name", std::string("feu"));
    f.set_attr("/", "count", int64_t{42});
    f.set_attr("group", "beta", 0.15);
    f.set_attr("/", "mean", std::vector<double>{0.5, 0.25});
  }
  h5::File f = h5::File::open_read(path);
  h5::Shape shape;
  EXPECT_EQ(f.read_float("group/x", &shape), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  EXPECT_EQ(shape, (h5::Shape{2, 3}));
  EXPECT_EQ(f.shape("weights/synthesis.b4.conv1.noise_strength"), h5::Shape{});
  EXPECT_FLOAT_EQ(f.read_float("weights/synthesis.b4.conv1.noise_strength")[0], 7.5f);
  EXPECT_EQ(f.read_int64("ids"), (std::vector<int64_t>{10, -20}));
  EXPECT_EQ(f.read_double("ids")[1], -20.0);
  EXPECT_EQ(f.read_int64("group/points", &shape), (std::vector<int64_t>{3, -4, 5, 6}));
  EXPECT_EQ(shape, (h5::Shape{2, 2}));
  EXPECT_EQ(f.read_strings("paths")[1], "b/ü.jpg");
  EXPECT_EQ(f.attr_string("/", "name"), "feu");
  EXPECT_EQ(f.attr_int("/", "count"), 42);
  EXPECT_DOUBLE_EQ(f.attr_double("group", "beta"), 0.15);
  EXPECT_EQ(f.attr_doubles("/", "mean"), (std::vector<double>{0.5, 0.25}));
  EXPECT_TRUE(f.has("group/x"));
  EXPECT_FALSE(f.has("nothing/at/all"));
  EXPECT_TRUE(f.is_group("group"));
  EXPECT_FALSE(f.is_group("ids"));  // a dataset
  EXPECT_FALSE(f.is_group("nothing"));
  EXPECT_EQ(f.list("/"), (std::vector<std::string>{"group", "ids", "paths", "weights"}));
}

TEST(H5, ErrorsNameFileAndDataset) {
  test::TempDir dir;
  try {
    h5::File::open_read(dir.file("missing.h5"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("missing.h5"), std::string::npos);
  }
  std::ofstream(dir.file("junk.h5")) << "not hdf5 at all";
  try {
    h5::File::open_read(dir.file("junk.h5"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
  }
  {
    h5::File f = h5::File::create(dir.file("ok.h5"));
    f.write_strings("names", {"a"});
  }
  h5::File f = h5::File::open_read(dir.file("ok.h5"));
  try {
    f.read_float("weights/x");
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("weights/x"), std::string::npos);
  }
  EXPECT_THROW(f.read_float("names"), Error);
  EXPECT_THROW(f.attr_int("/", "absent"), Error);
}

}  // namespace
}  // namespace feu
