// The one latent-file reader: every format gives the same latents as the
// equivalent .h5 (numpy.save and torch.save fixtures from
// data/make_latent_fixtures.py), S order is kept, and every bad input is a
// typed error naming the file and what was expected.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <limits>

#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "core/npy.h"
#include "tensor/latent_file.h"
#include "test_support.h"

namespace feu::latents {
namespace {

std::string fixture(const std::string& name) {
  return std::string(FEU_SOURCE_DIR) + "/tests/tensor/data/" + name;
}

// A toy generator: num_ws 3, w_dim 4, and S layers whose alphabetical order
// (b16 before b4) is not S order, as in every real generator.
Shapes toy_shapes() {
  Shapes shapes;
  shapes.z_dim = 4;
  shapes.w_dim = 4;
  shapes.num_ws = 3;
  shapes.layer_names = {"b4.conv1", "b4.torgb", "b8.conv0", "b16.conv0"};
  shapes.layer_channels = {2, 1, 2, 3};
  return shapes;
}

// The fixtures' W+ codes [2, 3, 4]: (arange(24) - 11) / 8.
std::vector<float> fixture_wplus() {
  std::vector<float> values;
  for (int i = 0; i < 24; ++i) values.push_back(static_cast<float>((i - 11) / 8.0));
  return values;
}

std::vector<float> s_codes(int64_t count, int64_t total) {
  std::vector<float> values;
  for (int64_t i = 0; i < count * total; ++i)
    values.push_back(static_cast<float>(i) * 0.25f - 1.0f);
  return values;
}

// Found by scripts/fuzz.sh (UBSan: memcpy from an empty vector's null data); the file is
// numpy.save's of float32 zeros((0, 4)).
TEST(Npy, AnEmptyArrayReadsAsItsShapeWithNoValues) {
  test::TempDir dir;
  npy::write_float(dir.file("ours.npy"), nullptr, {0, 4});
  const std::string numpys = std::string(FEU_SOURCE_DIR) + "/tests/fuzz/regressions/fuzz_npy/empty-float32-array.npy";
  for (const std::string& path : {dir.file("ours.npy"), numpys}) {
    const npy::FloatArray array = npy::read_float(path);
    EXPECT_EQ(array.shape, (std::vector<int64_t>{0, 4})) << path;
    EXPECT_EQ(array.dtype, "float32") << path;
    EXPECT_TRUE(array.values.empty()) << path;
  }
}

TEST(LatentFile, EveryFormatGivesTheSameWPlusAsTheH5) {
  test::TempDir dir;
  const std::vector<float> wplus = fixture_wplus();
  {
    h5::File file = h5::File::create(dir.file("wplus.h5"));
    file.write_float("ws", wplus.data(), {2, 3, 4});
  }
  npy::write_float(dir.file("ours.npy"), wplus.data(), {2, 3, 4});
  const Latents h5 = read(dir.file("wplus.h5"), toy_shapes());
  EXPECT_EQ(h5.kind, Kind::kWPlus);
  EXPECT_EQ(h5.count, 2);
  EXPECT_EQ(h5.format, "h5");
  EXPECT_EQ(h5.values, wplus);
  for (const std::string& path : {dir.file("ours.npy"), fixture("wplus_f32.npy"),
                                  fixture("wplus_f64.npy"), fixture("latents.pt")}) {
    const Latents other = read(path, toy_shapes());
    EXPECT_EQ(other.kind, Kind::kWPlus) << path;
    EXPECT_EQ(other.count, 2) << path;
    EXPECT_EQ(other.values, h5.values) << path;
  }
  EXPECT_EQ(read(fixture("latents.pt"), toy_shapes()).format, "pt");
  EXPECT_EQ(read(fixture("wplus_f64.npy"), toy_shapes()).format, "npy");
  // One W+ code [num_ws, w_dim] when the kind is said.
  npy::write_float(dir.file("one.npy"), wplus.data(), {3, 4});
  const Latents one = read(dir.file("one.npy"), toy_shapes(), Kind::kWPlus);
  EXPECT_EQ(one.count, 1);
  EXPECT_EQ(one.values, std::vector<float>(wplus.begin(), wplus.begin() + 12));
}

TEST(LatentFile, ShapeDecidesTheKindOnlyWhereOneKindFits) {
  test::TempDir dir;
  // [N, w_dim] is z or w: the file or the caller must say.
  test::expect_error([&] { read(fixture("w_f32.npy"), toy_shapes()); }, ErrorCode::kInvalidArgument,
                     {fixture("w_f32.npy"), "[2, 4]", "z or w", "--latent-kind z|w"});
  EXPECT_EQ(read(fixture("w_f32.npy"), toy_shapes(), Kind::kW).kind, Kind::kW);
  EXPECT_EQ(read(fixture("w_f32.npy"), toy_shapes(), Kind::kZ).kind, Kind::kZ);
  // A consumer without the mapping network refuses z by name.
  Shapes no_z = toy_shapes();
  no_z.z_dim = 0;
  test::expect_error([&] { read(fixture("w_f32.npy"), no_z, Kind::kZ); }, ErrorCode::kUnsupported,
                     {fixture("w_f32.npy"), "z latents", "w, wplus or s"});
  // [N, total_channels] is S.
  const std::vector<float> s = s_codes(3, 8);
  npy::write_float(dir.file("s.npy"), s.data(), {3, 8});
  const Latents flat = read(dir.file("s.npy"), toy_shapes());
  EXPECT_EQ(flat.kind, Kind::kS);
  EXPECT_EQ(flat.count, 3);
  // An .h5 names its kind by dataset: ws [N, w_dim] is W.
  {
    h5::File file = h5::File::create(dir.file("w.h5"));
    file.write_float("ws", s.data(), {2, 4});
  }
  EXPECT_EQ(read(dir.file("w.h5"), toy_shapes()).kind, Kind::kW);
  test::expect_error([&] { read(dir.file("w.h5"), toy_shapes(), Kind::kS); }, ErrorCode::kNotFound,
                     {dir.file("w.h5"), "no s latents", "ws (w)"});
}

TEST(LatentFile, FlatSAndTheStylesGroupAreInSOrder) {
  test::TempDir dir;
  const Shapes shapes = toy_shapes();
  const std::vector<float> s = s_codes(2, 8);
  {
    h5::File file = h5::File::create(dir.file("s.h5"));
    write_styles(file, shapes, s.data(), 2);
  }
  {
    h5::File file = h5::File::open_read(dir.file("s.h5"));
    EXPECT_EQ(file.attr_string("s", "kind"), "s");
    EXPECT_EQ(file.attr_string("styles", "kind"), "s");
    EXPECT_EQ(file.attr_string("s", "layer_names"), "b4.conv1,b4.torgb,b8.conv0,b16.conv0");
    EXPECT_EQ(file.attr_doubles("s", "layer_offsets"), (std::vector<double>{0, 2, 3, 5}));
    EXPECT_EQ(file.attr_doubles("s", "layer_channels"), (std::vector<double>{2, 1, 2, 3}));
    // Layer b8.conv0 is columns 3..4 of each row of s.
    EXPECT_EQ(file.read_float("styles/b8.conv0"),
              (std::vector<float>{s[3], s[4], s[8 + 3], s[8 + 4]}));
  }
  const Latents both = read(dir.file("s.h5"), shapes);
  EXPECT_EQ(both.kind, Kind::kS);
  EXPECT_EQ(both.values, s);

  // The trap: styles/<layer> concatenated in the order HDF5 lists them (b16 first).
  {
    h5::File file = h5::File::open_rw(dir.file("s.h5"));
    std::vector<float> alphabetical;
    for (int row = 0; row < 2; ++row)
      for (const char* layer : {"b16.conv0", "b4.conv1", "b4.torgb", "b8.conv0"}) {
        h5::Shape shape;
        const std::vector<float> values = file.read_float(std::string("styles/") + layer, &shape);
        alphabetical.insert(alphabetical.end(), values.begin() + row * shape[1],
                            values.begin() + (row + 1) * shape[1]);
      }
    file.write_float("s", alphabetical.data(), {2, 8});
  }
  test::expect_error(
      [&] { read(dir.file("s.h5"), shapes); }, ErrorCode::kCorruptFile,
      {dir.file("s.h5"), "styles/ and s disagree", "b4.conv1, b4.torgb, b8.conv0, b16.conv0"});

  // A flat s whose layer_names attribute names another order.
  {
    h5::File file = h5::File::create(dir.file("other_order.h5"));
    file.write_float("s", s.data(), {2, 8});
    file.set_attr("s", "layer_names", "b16.conv0,b4.conv1,b4.torgb,b8.conv0");
  }
  test::expect_error(
      [&] { read(dir.file("other_order.h5"), shapes); }, ErrorCode::kShapeMismatch,
      {dir.file("other_order.h5"), "b16.conv0,b4.conv1", "S order is b4.conv1,b4.torgb"});
}

TEST(LatentFile, KindAttributesAreHonouredAndChecked) {
  test::TempDir dir;
  const std::vector<float> wplus = fixture_wplus();
  const std::vector<float> s = s_codes(2, 8);
  // The root kind picks among several latents (feu-indexer generate writes ws and s).
  {
    h5::File file = h5::File::create(dir.file("both.h5"));
    file.write_float("ws", wplus.data(), {2, 3, 4});
    write_styles(file, toy_shapes(), s.data(), 2);
  }
  test::expect_error([&] { read(dir.file("both.h5"), toy_shapes()); }, ErrorCode::kInvalidArgument,
                     {dir.file("both.h5"), "several kinds", "--latent-kind"});
  EXPECT_EQ(read(dir.file("both.h5"), toy_shapes(), Kind::kS).values, s);
  {
    h5::File file = h5::File::open_rw(dir.file("both.h5"));
    file.set_attr("/", "kind", "wplus");
  }
  EXPECT_EQ(read(dir.file("both.h5"), toy_shapes()).values, wplus);

  // A kind attribute the shape contradicts.
  {
    h5::File file = h5::File::create(dir.file("contradiction.h5"));
    file.write_float("latents", wplus.data(), {2, 3, 4});  // not a latent name: ignored
    file.write_float("ws", wplus.data(), {2, 3, 4});
    file.set_attr("ws", "kind", "s");
  }
  test::expect_error([&] { read(dir.file("contradiction.h5"), toy_shapes()); },
                     ErrorCode::kShapeMismatch,
                     {dir.file("contradiction.h5"), "[2, 3, 4] (W+)", "kind attribute", "says s"});
  {
    h5::File file = h5::File::create(dir.file("w_says_s.h5"));
    file.write_float("w", wplus.data(), {6, 4});
    file.set_attr("w", "kind", "s");
  }
  test::expect_error([&] { read(dir.file("w_says_s.h5"), toy_shapes()); },
                     ErrorCode::kShapeMismatch,
                     {dir.file("w_says_s.h5"), "[6, 4] (the shape of z)", "kind is s", "[N, 8]"});
  // --latent-kind against what the file states.
  test::expect_error([&] { read(fixture("latents.pt"), toy_shapes(), Kind::kS); },
                     ErrorCode::kShapeMismatch,
                     {fixture("latents.pt"), "W+", "--latent-kind", "says s"});
  {
    h5::File file = h5::File::create(dir.file("bad_kind.h5"));
    file.write_float("s", s.data(), {2, 8});
    file.set_attr("s", "kind", "style");
  }
  test::expect_error([&] { read(dir.file("bad_kind.h5"), toy_shapes()); }, ErrorCode::kCorruptFile,
                     {dir.file("bad_kind.h5"), "\"style\"", "z, w, wplus or s"});
}

TEST(LatentFile, BadInputsAreTypedErrorsNamingTheFile) {
  test::TempDir dir;
  const Shapes shapes = toy_shapes();
  test::expect_error([&] { read(dir.file("missing.npy"), shapes); }, ErrorCode::kNotFound,
                     {"missing.npy"});
  write_file_atomic(dir.file("text.npy"), std::string("hello, not latents"));
  test::expect_error([&] { read(dir.file("text.npy"), shapes); }, ErrorCode::kCorruptFile,
                     {dir.file("text.npy"), "not a latent file", ".h5", ".npy", ".pt"});
  // numpy's float16 and Fortran order.
  test::expect_error([&] { read(fixture("wplus_f16.npy"), shapes); }, ErrorCode::kUnsupported,
                     {fixture("wplus_f16.npy"), "\"<f2\"", "float32", "float64"});
  test::expect_error([&] { read(fixture("wplus_fortran.npy"), shapes); }, ErrorCode::kUnsupported,
                     {fixture("wplus_fortran.npy"), "Fortran order", "C order"});
  // Truncated: the data, then the header.
  const std::vector<uint8_t> whole = read_file(fixture("wplus_f32.npy"));
  write_file_atomic(dir.file("short.npy"), whole.data(), whole.size() - 5);
  test::expect_error([&] { read(dir.file("short.npy"), shapes); }, ErrorCode::kCorruptFile,
                     {dir.file("short.npy"), "truncated .npy data", "the shape needs 96"});
  write_file_atomic(dir.file("header.npy"), whole.data(), 40);
  test::expect_error([&] { read(dir.file("header.npy"), shapes); }, ErrorCode::kCorruptFile,
                     {dir.file("header.npy"), "truncated .npy header"});
  // A shape this generator cannot take.
  const std::vector<float> values(2 * 3 * 5, 0.5f);
  npy::write_float(dir.file("wide.npy"), values.data(), {2, 3, 5});
  test::expect_error([&] { read(dir.file("wide.npy"), shapes); }, ErrorCode::kShapeMismatch,
                     {dir.file("wide.npy"), "[2, 3, 5]", "[N, 3, 4]"});
  npy::write_float(dir.file("odd.npy"), values.data(), {2, 7});
  test::expect_error([&] { read(dir.file("odd.npy"), shapes); }, ErrorCode::kShapeMismatch,
                     {dir.file("odd.npy"), "[2, 7]", "fits no latent", "[N, 8]"});
  npy::write_float(dir.file("empty.npy"), values.data(), {0, 3, 4});
  test::expect_error([&] { read(dir.file("empty.npy"), shapes); }, ErrorCode::kInvalidArgument,
                     {dir.file("empty.npy"), "no latents"});
  // NaN and infinity.
  std::vector<float> wplus = fixture_wplus();
  wplus[13] = std::numeric_limits<float>::quiet_NaN();
  npy::write_float(dir.file("nan.npy"), wplus.data(), {2, 3, 4});
  test::expect_error([&] { read(dir.file("nan.npy"), shapes); }, ErrorCode::kInvalidArgument,
                     {dir.file("nan.npy"), "latent 1, value 1 is NaN"});
  wplus[13] = std::numeric_limits<float>::infinity();
  {
    h5::File file = h5::File::create(dir.file("inf.h5"));
    file.write_float("wplus", wplus.data(), {2, 3, 4});
  }
  test::expect_error([&] { read(dir.file("inf.h5"), shapes); }, ErrorCode::kInvalidArgument,
                     {dir.file("inf.h5"), "infinite"});
  // torch.save of anything but one tensor.
  test::expect_error([&] { read(fixture("dict.pt"), shapes); }, ErrorCode::kCorruptFile,
                     {fixture("dict.pt"), "holds a dict", "expected one tensor"});
  test::expect_error([&] { read(fixture("object.pt"), shapes); }, ErrorCode::kUnsupported,
                     {"object.pt"});
  // A truncated torch.save zip.
  const std::vector<uint8_t> pt = read_file(fixture("latents.pt"));
  write_file_atomic(dir.file("short.pt"), pt.data(), pt.size() / 2);
  EXPECT_THROW(read(dir.file("short.pt"), shapes), Error);
  // An .h5 without latents, and a styles group missing a layer.
  {
    h5::File file = h5::File::create(dir.file("none.h5"));
    file.write_float("img", values.data(), {2, 15});
  }
  test::expect_error([&] { read(dir.file("none.h5"), shapes); }, ErrorCode::kNotFound,
                     {dir.file("none.h5"), "no latents", "styles/<layer>"});
  {
    h5::File file = h5::File::create(dir.file("partial.h5"));
    file.write_float("styles/b4.conv1", values.data(), {1, 2});
  }
  test::expect_error([&] { read(dir.file("partial.h5"), shapes); }, ErrorCode::kShapeMismatch,
                     {dir.file("partial.h5"), "missing dataset styles/b4.torgb", "[N, 1]"});
}

}  // namespace
}  // namespace feu::latents
