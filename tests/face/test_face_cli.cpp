// feu-indexer align: one HDF5 group per photo (or PNGs in a directory), every
// face, a warning and an empty group for a photo without one.
#include <filesystem>
#include <string>
#include <vector>

#include "core/h5.h"
#include "image/codec.h"
#include "test_support.h"

namespace feu {
namespace {
namespace fs = std::filesystem;

std::string quoted(const std::string& s) { return "'" + s + "'"; }

TEST(AlignCli, OneGroupPerPhotoWithEveryFace) {
  FEU_SHARED_FILE_OR_SKIP(reference_path, "parity/face_align.h5");
  FEU_SHARED_FILE_OR_SKIP(first, "faces/2008_001009.jpg");
  FEU_SHARED_FILE_OR_SKIP(second, "faces/2008_002506.jpg");
  FEU_SHARED_FILE_OR_SKIP(dogs, "faces/dogs.jpg");
  test::TempDir dir;
  const std::string out = dir.file("faces.h5");
  std::string output;
  // --upsample 0 reproduces the fixture's detections (test_face_parity.cpp).
  const int rc = test::run_command(test::program("feu-indexer") + " align --upsample 0 --out " + quoted(out) + " " +
                                       quoted(first) + " " + quoted(second) + " " + quoted(dogs),
                                   &output);
  ASSERT_EQ(rc, 0) << output;
  EXPECT_NE(output.find("warning [no_face]: no face found in " + dogs), std::string::npos) << output;

  h5::File file = h5::File::open_read(out);
  h5::File reference = h5::File::open_read(reference_path);
  EXPECT_EQ(file.list("/"), (std::vector<std::string>{"2008_001009.jpg", "2008_002506.jpg", "dogs.jpg"}));
  for (const std::string group : {"2008_001009.jpg", "2008_002506.jpg"}) {
    h5::Shape shape;
    EXPECT_EQ(file.read_int64(group + "/landmarks", &shape), reference.read_int64(group + "/landmarks")) << group;
    const int64_t faces = shape[0];
    EXPECT_EQ(shape, (h5::Shape{faces, 68, 2}));
    EXPECT_EQ(file.read_uint8(group + "/aligned", &shape), reference.read_uint8(group + "/aligned256")) << group;
    EXPECT_EQ(shape, (h5::Shape{faces, 256, 256, 3}));
    EXPECT_EQ(file.shape(group + "/boxes"), (h5::Shape{faces, 4}));
    EXPECT_EQ(file.shape(group + "/quads"), (h5::Shape{faces, 4, 2}));
    EXPECT_EQ(file.shape(group + "/scores"), (h5::Shape{faces}));
  }
  EXPECT_EQ(file.shape("2008_002506.jpg/landmarks")[0], 3);
  EXPECT_EQ(file.shape("dogs.jpg/landmarks"), (h5::Shape{0, 68, 2}));
  EXPECT_EQ(file.shape("dogs.jpg/aligned"), (h5::Shape{0, 256, 256, 3}));
  EXPECT_EQ(file.attr_int("/", "output_size"), 256);
}

TEST(AlignCli, DirectoryOutputWritesPngs) {
  FEU_SHARED_FILE_OR_SKIP(photo, "faces/2008_001009.jpg");
  test::TempDir dir;
  const std::string out = dir.file("crops") + "/";
  std::string output;
  ASSERT_EQ(test::run_command(test::program("feu-indexer") + " align --size 128 --transform 512 --out " + quoted(out) +
                                  " " + quoted(photo),
                              &output),
            0)
      << output;
  for (const std::string name : {"2008_001009_0.png", "2008_001009_1.png"}) {
    const image::Image crop = image::decode_file(out + name);
    EXPECT_EQ(crop.width, 128) << name;
    EXPECT_EQ(crop.height, 128) << name;
  }
  EXPECT_FALSE(fs::exists(out + "2008_001009_2.png"));
}

TEST(AlignCli, BrokenInputFailsWithoutOutput) {
  FEU_SHARED_FILE_OR_SKIP(photo, "faces/2008_001009.jpg");
  test::TempDir dir;
  const std::string broken = dir.file("broken.jpg");
  {
    std::FILE* f = std::fopen(broken.c_str(), "wb");
    std::fputs("\xff\xd8\xff garbage", f);
    std::fclose(f);
  }
  const std::string out = dir.file("faces.h5");
  std::string output;
  EXPECT_EQ(test::run_command(test::program("feu-indexer") + " align --out " + quoted(out) + " " + quoted(photo) +
                                  " " + quoted(broken),
                              &output),
            2);
  EXPECT_NE(output.find("error [corrupt_file]"), std::string::npos) << output;
  EXPECT_NE(output.find("broken.jpg"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(out)) << "nothing half-written";

  // Two photos of the same name would share a group.
  fs::create_directories(dir.file("other"));
  fs::copy_file(photo, dir.file("other/2008_001009.jpg"));
  EXPECT_EQ(test::run_command(test::program("feu-indexer") + " align --out " + quoted(out) + " " + quoted(photo) +
                                  " " + quoted(dir.file("other/2008_001009.jpg")),
                              &output),
            2);
  EXPECT_NE(output.find("would both be written as '2008_001009.jpg'"), std::string::npos) << output;
}

}  // namespace
}  // namespace feu
