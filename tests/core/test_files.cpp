#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/files.h"
#include "test_support.h"

namespace feu {
namespace {
namespace fs = std::filesystem;

TEST(AtomicFile, UncommittedWriteLeavesNothing) {
  test::TempDir dir;
  std::string target = dir.file("out.bin");
  {
    AtomicFile file(target);
    std::ofstream(file.temp_path()) << "partial";
  }
  EXPECT_FALSE(fs::exists(target));
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(AtomicFile, CommitReplacesTarget) {
  test::TempDir dir;
  std::string target = dir.file("out.txt");
  write_file_atomic(target, std::string("old"));
  write_file_atomic(target, std::string("new"));
  auto bytes = read_file(target);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), "new");
  EXPECT_THROW(AtomicFile(dir.file("no/such/dir/x")), Error);
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_bytes("abc", 3), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  test::TempDir dir;
  write_file_atomic(dir.file("abc"), std::string("abc"));
  EXPECT_EQ(sha256_file(dir.file("abc")), sha256_bytes("abc", 3));
}

}  // namespace
}  // namespace feu
