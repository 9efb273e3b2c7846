#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "index/directions.h"
#include "test_support.h"

namespace feu::index {
namespace {

int64_t total_of(const std::vector<LayerSpec>& layers) { return layers.back().offset + layers.back().channels; }

int64_t covered_count(const std::vector<LayerSpec>& layers, const std::vector<bool>& covered) {
  int64_t n = 0;
  for (size_t i = 0; i < layers.size(); ++i) n += covered[i] ? layers[i].channels : 0;
  return n;
}

TEST(StyleLayout, FfhqConfigFMatchesStyleClipTable) {
  auto layers = stylegan2_layout(1024, 32768, 512);
  ASSERT_EQ(layers.size(), 26u);
  EXPECT_EQ(total_of(layers), 9088);
  int64_t conv = 0, conv_layers = 0;
  for (const auto& l : layers)
    if (l.is_conv) conv += l.channels, ++conv_layers;
  EXPECT_EQ(conv, 6048);
  EXPECT_EQ(conv_layers, 17);
  EXPECT_EQ(covered_count(layers, coverage_mask(layers, "128")), 5376);
  EXPECT_EQ(covered_count(layers, coverage_mask(layers, "all-conv")), 6048);
  // Spot checks against the spec's table (stylegan2.md §6).
  EXPECT_EQ(layers[1].name, "b4.torgb");
  EXPECT_EQ(layers[1].w_index, 1);
  EXPECT_EQ(layers[15].name, "b128.conv1");
  EXPECT_EQ(layers[15].channels, 256);
  EXPECT_EQ(layers[15].offset, 7680);
  EXPECT_EQ(layers[15].w_index, 10);
  EXPECT_EQ(layers[25].name, "b1024.torgb");
  EXPECT_EQ(layers[25].w_index, 17);
  EXPECT_EQ(layers[25].offset, 9056);
  // Other resolutions (styleclip.md §1.2).
  auto paper256 = stylegan2_layout(256, 16384, 512);
  EXPECT_EQ(total_of(paper256), 7424);
  EXPECT_EQ(covered_count(paper256, coverage_mask(paper256, "128")), 4736);
  EXPECT_EQ(total_of(stylegan2_layout(512, 32768, 512)), 8960);
  EXPECT_THROW(stylegan2_layout(100, 32768, 512), Error);
  EXPECT_THROW(coverage_mask(layers, "most"), Error);
}

Directions random_directions(const std::vector<LayerSpec>& layers, const std::string& coverage, int64_t dim) {
  Directions d;
  d.set_layout(layers, coverage_mask(layers, coverage), dim);
  std::mt19937 rng(3);
  std::normal_distribution<float> normal;
  for (int64_t r = 0; r < d.covered(); ++r) {
    double n2 = 0;
    for (int64_t i = 0; i < dim; ++i) n2 += std::pow(d.fs3[r * dim + i] = normal(rng), 2);
    for (int64_t i = 0; i < dim; ++i) d.fs3[r * dim + i] /= std::sqrt(n2);
  }
  d.dead[1] = 1;
  std::fill(d.fs3.begin() + dim, d.fs3.begin() + 2 * dim, 0.0f);
  const int64_t total = layers.back().offset + layers.back().channels;
  for (int64_t c = 0; c < total; ++c) {
    d.s_mean.push_back(0.01f * c);
    d.s_std.push_back(0.5f + 0.001f * c);
  }
  d.info.generator_sha256 = "gen";
  d.info.clip_sha256 = "clip";
  d.info.images_per_channel = 4;
  return d;
}

TEST(Directions, SaveLoadRoundTrip) {
  test::TempDir dir;
  auto layers = stylegan2_layout(32, 512, 64);
  Directions d = random_directions(layers, "16", 8);
  d.save(dir.file("directions.h5"));
  Directions back = Directions::load(dir.file("directions.h5"));
  EXPECT_EQ(back.layer_names, d.layer_names);
  EXPECT_EQ(back.layer_offsets, d.layer_offsets);
  EXPECT_EQ(back.layer_covered, d.layer_covered);
  EXPECT_EQ(back.layer_w_index, d.layer_w_index);
  EXPECT_EQ(back.covered_channels, d.covered_channels);
  EXPECT_EQ(back.fs3, d.fs3);
  EXPECT_EQ(back.s_std, d.s_std);
  EXPECT_EQ(back.dead, d.dead);
  EXPECT_EQ(back.info.generator_sha256, "gen");
  EXPECT_EQ(back.info.images_per_channel, 4);
  // Covered rows are the conv layers at <= 16² in flat-S order, never toRGB.
  for (int64_t c : back.covered_channels) {
    bool ok = false;
    for (const auto& l : layers)
      if (c >= l.offset && c < l.offset + l.channels) ok = l.is_conv && l.resolution <= 16;
    EXPECT_TRUE(ok) << c;
  }
}

TEST(Directions, ValidateRejectsNonUnitRows) {
  auto layers = stylegan2_layout(16, 256, 32);
  Directions d = random_directions(layers, "all-conv", 4);
  d.fs3[0] *= 3;
  EXPECT_THROW(d.validate(), Error);
}

// Writes a float16 .npy by hand (numpy's layout), for the reader.
void write_f16_npy(const std::string& path, const std::vector<uint16_t>& halves, int64_t rows, int64_t cols) {
  std::string header = "{'descr': '<f2', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  out.write("\x93NUMPY\x01\x00", 8);
  const char len[2] = {char(header.size() & 0xff), char(header.size() >> 8)};
  out.write(len, 2);
  out << header;
  out.write(reinterpret_cast<const char*>(halves.data()), halves.size() * 2);
}

TEST(Npy, ReadsFloat32AndFloat16) {
  test::TempDir dir;
  std::vector<float> values = {1.0f, -2.5f, 0.0f, 3.25f, 65504.0f, 1e-7f};
  write_npy(dir.file("a.npy"), values, {2, 3});
  NpyArray a = read_npy(dir.file("a.npy"));
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.data, values);
  // float16 bit patterns: 1.0, -2.5, 0, 3.25, 65504 (max), 2^-24 (smallest subnormal).
  write_f16_npy(dir.file("h.npy"), {0x3c00, 0xc100, 0x0000, 0x4280, 0x7bff, 0x0001}, 3, 2);
  NpyArray h = read_npy(dir.file("h.npy"));
  EXPECT_EQ(h.dtype, "<f2");
  EXPECT_EQ(h.shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(h.data[0], 1.0f);
  EXPECT_EQ(h.data[1], -2.5f);
  EXPECT_EQ(h.data[2], 0.0f);
  EXPECT_EQ(h.data[3], 3.25f);
  EXPECT_EQ(h.data[4], 65504.0f);
  EXPECT_EQ(h.data[5], std::ldexp(1.0f, -24));
  std::ofstream(dir.file("bad.npy")) << "not numpy";
  EXPECT_THROW(read_npy(dir.file("bad.npy")), Error);
}

TEST(ImportStyleClip, MapsRowsOntoConvLayersByPrefixSums) {
  auto layers = stylegan2_layout(1024, 32768, 512);
  const int64_t total = 9088, dim = 4;
  std::vector<float> mean(total, 0.0f), std(total, 1.0f);
  for (int64_t rows : {5376, 6048}) {
    NpyArray fs3;
    fs3.shape = {rows, dim};
    fs3.dtype = "<f4";
    // Row r points along axis r % dim with length 2 (renormalized on import).
    fs3.data.assign(rows * dim, 0.0f);
    for (int64_t r = 0; r < rows; ++r) fs3.data[r * dim + r % dim] = 2.0f;
    fs3.data[7 * dim + 7 % dim] = 0.0f;  // a dead row
    Directions d = import_styleclip_fs3(fs3, layers, mean, std);
    EXPECT_NO_THROW(d.validate());
    ASSERT_EQ(d.covered(), rows);
    // Row 512 is the first channel of b8.conv0 (S offset 1024: b4.torgb is skipped).
    EXPECT_EQ(d.covered_channels[512], 1024);
    // Row 5120 is b128.conv1 channel 0 at S offset 7680.
    EXPECT_EQ(d.covered_channels[5120], 7680);
    EXPECT_EQ(d.fs3[5121 * dim + 5121 % dim], 1.0f);
    EXPECT_EQ(d.dead[7], 1);
    EXPECT_EQ(d.dead[8], 0);
    const bool b256_covered = d.layer_covered[17];
    EXPECT_EQ(b256_covered, rows == 6048);
    for (size_t i = 0; i < layers.size(); ++i)
      if (!layers[i].is_conv) {
        EXPECT_FALSE(d.layer_covered[i]);
      }
  }
  NpyArray odd;
  odd.shape = {5000, dim};
  odd.data.assign(5000 * dim, 1.0f);
  try {
    import_styleclip_fs3(odd, layers, mean, std);
    FAIL() << "5000 rows accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("5376"), std::string::npos) << e.what();
  }
}

TEST(ImportStyleClip, CommandLineWritesLoadableDirections) {
  const std::string indexer = test::program("feu-indexer");
  if (!std::filesystem::exists(indexer)) GTEST_SKIP() << "feu-indexer not built";
  test::TempDir dir;
  const int64_t rows = 5376, dim = 8, total = 9088;
  std::vector<float> fs3(rows * dim, 0.0f), mean(total, 0.5f), stdv(total, 0.25f);
  for (int64_t r = 0; r < rows; ++r) fs3[r * dim + (r * 7) % dim] = -3.0f;
  write_npy(dir.file("fs3.npy"), fs3, {rows, dim});
  write_npy(dir.file("mean.npy"), mean, {total});
  write_npy(dir.file("std.npy"), stdv, {total});
  std::string out;
  const std::string cmd = indexer + " import-styleclip --fs3 " + dir.file("fs3.npy") + " --s-mean " +
                          dir.file("mean.npy") + " --s-std " + dir.file("std.npy") + " --out " +
                          dir.file("directions.h5") + " --generator-sha256 g123 --clip-sha256 c456";
  ASSERT_EQ(test::run_command(cmd, &out), 0) << out;
  Directions d = Directions::load(dir.file("directions.h5"));
  EXPECT_EQ(d.covered(), rows);
  EXPECT_EQ(d.info.source, "import-styleclip");
  EXPECT_EQ(d.info.generator_sha256, "g123");
  EXPECT_EQ(d.info.clip_sha256, "c456");
  EXPECT_EQ(d.fs3[100 * dim + (100 * 7) % dim], -1.0f);
  EXPECT_EQ(d.s_std[9000], 0.25f);
  // A row count that is no prefix of the conv widths is refused with a clear error.
  write_npy(dir.file("bad.npy"), std::vector<float>(100 * dim, 1.0f), {100, dim});
  EXPECT_NE(test::run_command(indexer + " import-styleclip --fs3 " + dir.file("bad.npy") + " --s-mean " +
                                  dir.file("mean.npy") + " --s-std " + dir.file("std.npy") + " --out " +
                                  dir.file("bad.h5"),
                              &out),
            0);
  EXPECT_NE(out.find("prefix sum"), std::string::npos) << out;
}

}  // namespace
}  // namespace feu::index
