#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "core/files.h"
#include "index/artifacts.h"
#include "index/corpus.h"
#include "index/directions.h"
#include "test_support.h"

namespace feu::index {
namespace {
namespace fs = std::filesystem;

// Inputs of a publish: fake model files, a corpus and directions made "with" them.
struct Inputs {
  test::TempDir dir;
  std::string generator, clip, corpus_dir, directions;

  explicit Inputs(const std::string& directions_clip = "") {
    generator = dir.file("generator.h5");
    clip = dir.file("clip.h5");
    write_file_atomic(generator, std::string("generator weights"));
    write_file_atomic(clip, std::string("clip weights"));
    const int64_t n = 40, dim = 8;
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    std::vector<float> emb(n * dim);
    for (float& v : emb) v = normal(rng);
    std::vector<CorpusEntry> entries;
    for (int64_t i = 0; i < n; ++i) entries.push_back({i, std::to_string(i) + ".png", 10, 20});
    CorpusProvenance provenance;
    provenance.clip_sha256 = sha256_file(clip);
    corpus_dir = dir.file("corpus");
    fs::create_directories(corpus_dir);
    CorpusIndex::build(entries, emb, dim, {}, provenance).save(corpus_dir);
    auto layers = stylegan2_layout(8, 64, 16);
    Directions d;
    d.set_layout(layers, coverage_mask(layers, "all-conv"), dim);
    for (int64_t r = 0; r < d.covered(); ++r) d.fs3[r * dim + r % dim] = 1.0f;
    const int64_t total = layers.back().offset + layers.back().channels;
    d.s_mean.assign(total, 0.0f);
    d.s_std.assign(total, 1.0f);
    d.info.generator_sha256 = sha256_file(generator);
    d.info.clip_sha256 = directions_clip.empty() ? sha256_file(clip) : directions_clip;
    directions = dir.file("directions.h5");
    d.save(directions);
  }

  PublishOptions options(const std::string& root, const std::string& version) const {
    PublishOptions o;
    o.root = root;
    o.version = version;
    o.corpus_dir = corpus_dir;
    o.directions_path = directions;
    o.generator_path = generator;
    o.clip_path = clip;
    o.model_paths = {generator, clip};
    o.config = {{"test", true}};
    return o;
  }
};

std::vector<std::string> listing(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(Publish, VersionVerifiesAndCurrentPointsAtIt) {
  Inputs in;
  test::TempDir root;
  const std::string v1 = publish(in.options(root.path(), "v1"));
  EXPECT_EQ(fs::canonical(v1), fs::canonical(root.path() + "/v1"));
  EXPECT_EQ(ArtifactSet::resolve_current(root.path()), fs::canonical(v1).string());
  EXPECT_TRUE(fs::is_symlink(root.path() + "/current"));
  VerifyReport report = verify(v1);
  EXPECT_TRUE(report.ok()) << report.text();
  ArtifactSet set = ArtifactSet::open(ArtifactSet::resolve_current(root.path()));
  EXPECT_EQ(set.manifest().version, "v1");
  EXPECT_EQ(set.manifest().generator_sha256, sha256_file(in.generator));
  EXPECT_EQ(set.manifest().versions.at("faiss"), faiss_version());
  EXPECT_EQ(set.manifest().config["test"], true);
  EXPECT_EQ(CorpusIndex::load(set.corpus_dir()).size(), 40);
  EXPECT_EQ(Directions::load(set.directions_path()).embed_dim, 8);
  EXPECT_EQ(sha256_file(set.model_path("generator.h5")), sha256_file(in.generator));
  // Versions are immutable.
  EXPECT_THROW(publish(in.options(root.path(), "v1")), Error);
  EXPECT_THROW(publish(in.options(root.path(), "current")), Error);
  // A second version switches current.
  publish(in.options(root.path(), "v2"));
  EXPECT_EQ(ArtifactSet::resolve_current(root.path()), fs::canonical(root.path() + "/v2").string());
  // The version directory verifies after being copied elsewhere.
  test::TempDir elsewhere;
  fs::copy(v1, elsewhere.path() + "/v1", fs::copy_options::recursive);
  EXPECT_TRUE(verify(elsewhere.path() + "/v1").ok());
}

TEST(Verify, CatchesAFlippedByteAndExtraFiles) {
  Inputs in;
  test::TempDir root;
  const std::string v1 = publish(in.options(root.path(), "v1"));
  const std::string target = v1 + "/corpus/corpus.faiss";
  fs::permissions(target, fs::perms::owner_write, fs::perm_options::add);
  {
    std::fstream f(target, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(100);
    char c;
    f.read(&c, 1);
    c ^= 0x01;
    f.seekp(100);
    f.write(&c, 1);
  }
  VerifyReport report = verify(v1);
  ASSERT_FALSE(report.ok());
  EXPECT_TRUE(report.checksum_failed);
  EXPECT_NE(report.text().find("corpus/corpus.faiss"), std::string::npos) << report.text();
  // Both hashes in full: they may share any prefix.
  EXPECT_NE(report.text().find(sha256_file(target)), std::string::npos) << report.text();
  EXPECT_NE(report.text().find(Manifest::load(v1).files.front().sha256.substr(0, 64)), std::string::npos);
  try {
    ArtifactSet::open(v1);
    FAIL() << "opened a corrupted version";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kChecksumMismatch);
  }
  EXPECT_NO_THROW(ArtifactSet::open(v1, /*verify=*/false));

  const std::string v2 = publish(in.options(root.path(), "v2"));
  write_file_atomic(v2 + "/stray.txt", std::string("x"));
  report = verify(v2);
  EXPECT_FALSE(report.ok());
  EXPECT_NE(report.text().find("stray.txt"), std::string::npos);
}

TEST(Verify, ManifestPathsCannotLeaveTheVersionDirectory) {
  Inputs in;
  test::TempDir root;
  const std::string v1 = publish(in.options(root.path(), "v1"));
  const std::string manifest_path = v1 + "/" + kManifestFile;
  fs::permissions(manifest_path, fs::perms::owner_write, fs::perm_options::add);
  const std::vector<uint8_t> original = read_file(manifest_path);
  for (const std::string bad : {"../../../../etc/hostname", "/etc/hostname", "corpus/../../v0/x"}) {
    nlohmann::json manifest = nlohmann::json::parse(original.begin(), original.end());
    manifest["files"][0]["path"] = bad;
    write_file_atomic(manifest_path, manifest.dump());
    VerifyReport report = verify(v1);
    EXPECT_FALSE(report.ok()) << bad;
    EXPECT_NE(report.text().find("not a relative path inside the version directory"), std::string::npos)
        << report.text();
    EXPECT_EQ(report.text().find("size and sha256 match"), std::string::npos) << "a file outside was read: " << bad;
    try {
      ArtifactSet::open(v1);
      FAIL() << "loaded a manifest naming " << bad;
    } catch (const Error& e) {
      EXPECT_TRUE(e.code() == ErrorCode::kCorruptFile || e.code() == ErrorCode::kChecksumMismatch) << e.what();
    }
    EXPECT_THROW(ArtifactSet::open(v1, /*verify=*/false), Error) << bad;  // loading alone refuses it too
  }
}

TEST(Verify, CrossReferencesModels) {
  Inputs in;
  test::TempDir root;
  const std::string v1 = publish(in.options(root.path(), "v1"));
  // The manifest claims another CLIP than the one corpus/directions were made with.
  Manifest m = Manifest::load(v1);
  m.clip_sha256 = std::string(64, 'e');
  fs::permissions(v1 + "/manifest.json", fs::perms::owner_write, fs::perm_options::add);
  write_file_atomic(v1 + "/manifest.json", m.to_json().dump(2));
  VerifyReport report = verify(v1);
  EXPECT_FALSE(report.ok());
  EXPECT_FALSE(report.checksum_failed);
  EXPECT_NE(report.text().find("CLIP"), std::string::npos) << report.text();
  try {
    ArtifactSet::open(v1);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kArtifactMismatch);
  }
}

TEST(Publish, RefusesInputsMadeWithDifferentModels) {
  Inputs in(std::string(64, 'f'));
  test::TempDir root;
  try {
    publish(in.options(root.path(), "v1"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kArtifactMismatch) << e.what();
  }
  EXPECT_FALSE(fs::exists(root.path() + "/v1"));
}

TEST(Publish, InterruptedRunLeavesCurrentUnchanged) {
  Inputs in;
  test::TempDir root;
  publish(in.options(root.path(), "v1"));
  const std::string current = ArtifactSet::resolve_current(root.path());
  // An exception at each stage before the rename: nothing visible, nothing left.
  for (const char* stage : {"copied", "manifest"}) {
    PublishOptions o = in.options(root.path(), "v2");
    o.hook = [&](const std::string& s) {
      if (s == stage) throw Error(ErrorCode::kCancelled, "simulated crash");
    };
    EXPECT_THROW(publish(o), Error);
    EXPECT_EQ(listing(root.path()), (std::vector<std::string>{"current", "v1"})) << stage;
    EXPECT_EQ(ArtifactSet::resolve_current(root.path()), current);
  }
  // SIGKILL in the middle (a real crash): the half version stays hidden and
  // current is untouched; a later publish of the same version works.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    PublishOptions o = in.options(root.path(), "v2");
    o.hook = [](const std::string& s) {
      if (s == "manifest") ::kill(::getpid(), SIGKILL);
    };
    publish(o);
    _exit(0);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_FALSE(fs::exists(root.path() + "/v2"));
  EXPECT_EQ(ArtifactSet::resolve_current(root.path()), current);
  for (const auto& name : listing(root.path()))
    EXPECT_TRUE(name == "current" || name == "v1" || name[0] == '.') << name;
  bool leftover = false;
  for (const auto& name : listing(root.path())) leftover = leftover || name.rfind(".publishing-", 0) == 0;
  EXPECT_TRUE(leftover) << "the killed publish should have left its hidden temporary";
  publish(in.options(root.path(), "v2"));
  EXPECT_TRUE(verify(root.path() + "/v2").ok());
  // The next publish cleaned the dead run's temporary.
  EXPECT_EQ(listing(root.path()), (std::vector<std::string>{"current", "v1", "v2"}));
}

TEST(Publish, CommandLineVerifyExitCodes) {
  const std::string indexer = test::program("feu-indexer");
  if (!fs::exists(indexer)) GTEST_SKIP() << "feu-indexer not built";
  Inputs in;
  test::TempDir root;
  std::string out;
  const std::string cmd = indexer + " publish --root " + root.path() + " --version v1 --corpus " + in.corpus_dir +
                          " --directions " + in.directions + " --generator " + in.generator + " --clip " + in.clip;
  ASSERT_EQ(test::run_command(cmd, &out), 0) << out;
  EXPECT_EQ(test::run_command(indexer + " verify " + root.path() + "/current", &out), 0) << out;
  EXPECT_NE(out.find("verified"), std::string::npos) << out;
  const std::string target = root.path() + "/v1/directions.h5";
  fs::permissions(target, fs::perms::owner_write, fs::perm_options::add);
  std::vector<uint8_t> bytes = read_file(target);
  bytes[bytes.size() / 2] ^= 0x80;
  write_file_atomic(target, bytes.data(), bytes.size());
  EXPECT_NE(test::run_command(indexer + " verify " + root.path() + "/v1", &out), 0);
  EXPECT_NE(out.find("MISMATCH"), std::string::npos) << out;
  // A dangling `current`: exit 2 like every bad input, naming the link and its target.
  fs::remove(root.path() + "/current");
  fs::create_directory_symlink(root.path() + "/v9", root.path() + "/current");
  EXPECT_EQ(test::run_command(indexer + " verify " + root.path() + "/current", &out), 2) << out;
  EXPECT_NE(out.find("v9, which does not exist"), std::string::npos) << out;
}

}  // namespace
}  // namespace feu::index
