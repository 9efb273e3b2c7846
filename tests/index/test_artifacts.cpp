#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/files.h"
#include "index/artifacts.h"
#include "index/corpus.h"
#include "index/directions.h"
#include "index/pull.h"
#include "artifact_test_helpers.h"
#include "test_support.h"

namespace feu::index {
namespace {
namespace fs = std::filesystem;

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

// A manifest is outside JSON too (another machine's, for pull): nested past the limit, it is a
// corrupt file, not a stack overflow when its config is copied.
TEST(Verify, AManifestNestedPastTheJsonLimitIsCorrupt) {
  test::TempDir dir;
  const std::string deep = std::string(1'000'000, '[') + std::string(1'000'000, ']');
  write_file_atomic(dir.file(kManifestFile), R"({"version": "v1", "files": [], "config": )" + deep + "}");
  test::expect_error([&] { Manifest::load(dir.path()); }, ErrorCode::kCorruptFile,
                     {dir.file(kManifestFile), "nests deeper than 64 levels"});
  EXPECT_FALSE(verify(dir.path()).ok());
}

// A manifest comes from disk or another machine: a field of the wrong type or range is a
// corrupt_file naming the field, never the JSON library's words or a silently cut value.
TEST(Verify, AManifestFieldOfTheWrongTypeOrRangeIsNamed) {
  test::TempDir dir;
  const nlohmann::json good = {{"format", 1},
                               {"version", "v1"},
                               {"created", "2026-11-29T00:00:00Z"},
                               {"models", {{"generator_sha256", "g"}, {"clip_sha256", "c"}}},
                               {"files", {{{"path", "a.h5"}, {"sha256", "s"}, {"size", 10}}}},
                               {"versions", {{"feu", "1"}}}};
  write_file_atomic(dir.file(kManifestFile), good.dump());
  EXPECT_EQ(Manifest::load(dir.path()).files.at(0).size, 10);
  const std::vector<std::pair<nlohmann::json::json_pointer, nlohmann::json>> faults = {
      {"/files/0/size"_json_pointer, 1.5},
      {"/files/0/size"_json_pointer, -1},
      {"/files/0/size"_json_pointer, 18446744073709551615ull},
      {"/files/0/sha256"_json_pointer, 5},
      {"/files/0"_json_pointer, "a.h5"},
      {"/files"_json_pointer, nlohmann::json::object()},
      {"/models"_json_pointer, nlohmann::json::array()},
      {"/version"_json_pointer, nullptr},
      {"/versions/feu"_json_pointer, 1},
      {"/format"_json_pointer, "1"}};
  const std::vector<std::string> expected = {
      "field 'files[0].size' must be an integer of at least 0, got 1.5",
      "field 'files[0].size' must be an integer of at least 0, got -1",
      "field 'files[0].size' must be an integer of at least 0, got 18446744073709551615",
      "field 'files[0].sha256' must be a string, got number",
      "field 'files[0]' must be an object, got string",
      "field 'files' must be an array, got object",
      "field 'models' must be an object, got array",
      "field 'version' must be a string, got null",
      "field 'versions.feu' must be a string, got number",
      "field 'format' must be an integer of at least 0, got \"1\""};
  for (size_t i = 0; i < faults.size(); ++i) {
    nlohmann::json manifest = good;
    manifest[faults[i].first] = faults[i].second;
    write_file_atomic(dir.file(kManifestFile), manifest.dump());
    test::expect_error([&] { Manifest::load(dir.path()); }, ErrorCode::kCorruptFile,
                       {dir.file(kManifestFile) + ": invalid manifest: " + expected[i]});
  }
  write_file_atomic(dir.file(kManifestFile), "[1, 2]");
  test::expect_error([&] { Manifest::load(dir.path()); }, ErrorCode::kCorruptFile,
                     {"invalid manifest: expected a JSON object, got array"});
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
    EXPECT_EQ(listing(root.path()), (std::vector<std::string>{"current", "current.json", "v1"})) << stage;
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
    EXPECT_TRUE(name == "current" || name == "current.json" || name == "v1" || name[0] == '.') << name;
  bool leftover = false;
  for (const auto& name : listing(root.path())) leftover = leftover || name.rfind(".publishing-", 0) == 0;
  EXPECT_TRUE(leftover) << "the killed publish should have left its hidden temporary";
  publish(in.options(root.path(), "v2"));
  EXPECT_TRUE(verify(root.path() + "/v2").ok());
  // The next publish cleaned the dead run's temporary.
  EXPECT_EQ(listing(root.path()), (std::vector<std::string>{"current", "current.json", "v1", "v2"}));
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

// ---------------------------------------------------------------------------- pull

// Every file under a version directory, relative path -> bytes.
std::map<std::string, std::vector<uint8_t>> files_of(const std::string& dir) {
  std::map<std::string, std::vector<uint8_t>> files;
  for (auto it = fs::recursive_directory_iterator(dir); it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file()) files[fs::relative(it->path(), dir).generic_string()] = read_file(it->path().string());
  return files;
}

PullOptions pull_options(const std::string& url, const std::string& root, const std::string& version = "") {
  PullOptions o;
  o.from = url;
  o.root = root;
  o.version = version;
  return o;
}

TEST(Pull, FetchesTheCurrentVersionIntoTheSameFiles) {
  Inputs in;
  test::TempDir remote, local;
  const std::string v1 = publish(in.options(remote.path(), "v1"));
  const nlohmann::json current = nlohmann::json::parse(read_file(remote.path() + "/current.json"));
  EXPECT_EQ(current["version"], "v1");
  EXPECT_EQ(current["manifest_sha256"], sha256_file(v1 + "/manifest.json"));
  ArtifactServer server(remote.path());
  PullReport report = pull(pull_options(server.url(), local.path()));
  EXPECT_EQ(report.version, "v1");
  EXPECT_FALSE(report.already_present);
  EXPECT_EQ(report.files, int64_t(Manifest::load(v1).files.size()));
  EXPECT_EQ(files_of(local.path() + "/v1"), files_of(v1));
  EXPECT_EQ(ArtifactSet::resolve_current(local.path()), fs::canonical(local.path() + "/v1").string());
  EXPECT_EQ(read_file(local.path() + "/current.json"), read_file(remote.path() + "/current.json"));
  EXPECT_EQ(listing(local.path()), (std::vector<std::string>{"current", "current.json", "v1"}));
  // Pulling it again downloads nothing.
  PullReport again = pull(pull_options(server.url(), local.path()));
  EXPECT_TRUE(again.already_present);
  EXPECT_EQ(again.bytes_downloaded, 0);
}

TEST(Pull, ResumesADroppedDownloadWithARangeRequest) {
  Inputs in;
  test::TempDir remote, local;
  const std::string v1 = publish(in.options(remote.path(), "v1"));
  ArtifactServer server(remote.path(), {"--drop-first"});
  // One attempt per file: the first file's half stays in its partial file.
  PullOptions once = pull_options(server.url(), local.path());
  once.attempts = 1;
  try {
    pull(once);
    ADD_FAILURE() << "a dropped connection with one attempt should fail";
  } catch (const FetchError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIoError) << e.what();
    EXPECT_EQ(e.http_status(), 200);  // the answer began, then the connection dropped
    EXPECT_NE(std::string(e.what()).find("v1/corpus/corpus.faiss failed"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(local.path() + "/current"));
  // The next run resumes that file and retries every later drop in place.
  PullReport report = pull(pull_options(server.url(), local.path()));
  EXPECT_GT(report.bytes_resumed, 0);
  EXPECT_GE(report.retries, 4);  // every later file dropped once
  EXPECT_EQ(files_of(local.path() + "/v1"), files_of(v1));
  const std::string requests = server.requests();
  EXPECT_NE(requests.find("GET /v1/corpus/corpus.faiss range=bytes="), std::string::npos) << requests;
  EXPECT_NE(requests.find("GET /v1/directions.h5 range=bytes="), std::string::npos) << requests;
  EXPECT_EQ(listing(local.path()), (std::vector<std::string>{"current", "current.json", "v1"}));
}

TEST(Pull, RefusesACorruptedByteAndKeepsCurrent) {
  Inputs in;
  test::TempDir remote, local;
  publish(in.options(remote.path(), "v1"));
  {
    ArtifactServer clean(remote.path());
    pull(pull_options(clean.url(), local.path()));
  }
  const std::string v2 = publish(in.options(remote.path(), "v2"));
  ArtifactServer server(remote.path(), {"--corrupt", "v2/directions.h5"});
  const std::string expected = sha256_file(v2 + "/directions.h5");
  test::expect_error([&] { pull(pull_options(server.url(), local.path())); }, ErrorCode::kChecksumMismatch,
                     {"directions.h5", "sha256", expected});
  EXPECT_EQ(ArtifactSet::resolve_current(local.path()), fs::canonical(local.path() + "/v1").string());
  EXPECT_FALSE(fs::exists(local.path() + "/v2"));
  EXPECT_TRUE(verify(local.path() + "/v1").ok());
}

TEST(Pull, ASecondVersionKeepsThePreviousAndSwitchesCurrent) {
  Inputs in;
  test::TempDir remote, local;
  publish(in.options(remote.path(), "v1"));
  ArtifactServer server(remote.path());
  pull(pull_options(server.url(), local.path()));
  const std::string v2 = publish(in.options(remote.path(), "v2"));
  EXPECT_EQ(pull(pull_options(server.url(), local.path())).version, "v2");
  EXPECT_EQ(ArtifactSet::resolve_current(local.path()), fs::canonical(local.path() + "/v2").string());
  EXPECT_TRUE(verify(local.path() + "/v1").ok());
  EXPECT_EQ(files_of(local.path() + "/v2"), files_of(v2));
  // An explicit --version goes back without downloading.
  PullReport back = pull(pull_options(server.url(), local.path(), "v1"));
  EXPECT_TRUE(back.already_present);
  EXPECT_EQ(ArtifactSet::resolve_current(local.path()), fs::canonical(local.path() + "/v1").string());
}

TEST(Pull, TypedErrorsForStatusUnreachableHostAndEscapingPaths) {
  Inputs in;
  test::TempDir remote, local;
  const std::string v1 = publish(in.options(remote.path(), "v1"));
  ArtifactServer server(remote.path());
  try {
    pull(pull_options(server.url(), local.path(), "v9"));
    ADD_FAILURE() << "a missing version should fail";
  } catch (const FetchError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_EQ(e.http_status(), 404);
    EXPECT_NE(std::string(e.what()).find("HTTP 404 for " + server.url() + "/v9/manifest.json"), std::string::npos)
        << e.what();
  }
  // A port nothing listens on: the server's port once it is gone.
  std::string closed_url;
  {
    ArtifactServer gone(remote.path());
    closed_url = gone.url();
  }
  try {
    pull(pull_options(closed_url, local.path()));
    ADD_FAILURE() << "an unreachable host should fail";
  } catch (const FetchError& e) {
    EXPECT_EQ(e.code(), ErrorCode::kIoError);
    EXPECT_EQ(e.http_status(), 0);
    EXPECT_NE(std::string(e.what()).find("cannot reach " + closed_url), std::string::npos) << e.what();
  }
  // A manifest naming a file outside its version directory is refused before any download.
  fs::copy(v1, remote.path() + "/evil", fs::copy_options::recursive);
  const std::string evil_manifest = remote.path() + "/evil/manifest.json";
  nlohmann::json manifest = nlohmann::json::parse(read_file(evil_manifest));
  manifest["version"] = "evil";
  manifest["files"][0]["path"] = "../v1/directions.h5";
  fs::permissions(evil_manifest, fs::perms::owner_write, fs::perm_options::add);
  write_file_atomic(evil_manifest, manifest.dump());
  test::expect_error([&] { pull(pull_options(server.url(), local.path(), "evil")); }, ErrorCode::kCorruptFile,
                     {"../v1/directions.h5", "not a relative path inside the version directory"});
  EXPECT_FALSE(fs::exists(local.path() + "/v1"));
  EXPECT_FALSE(fs::exists(local.path() + "/evil"));
}

TEST(Pull, FollowerPullsNewVersionsAndKeepsTheGoodOneOnAFailure) {
  Inputs in;
  test::TempDir remote, local;
  publish(in.options(remote.path(), "v1"));
  // The corrupted file belongs to v3, published later.
  ArtifactServer server(remote.path(), {"--corrupt", "v3/directions.h5"});
  std::vector<std::string> failures;
  std::mutex log_mutex;
  ArtifactFollower follower(pull_options(server.url(), local.path()), std::chrono::hours(1),
                            [&](const std::string& line, bool failed) {
                              std::lock_guard<std::mutex> lock(log_mutex);
                              if (failed) failures.push_back(line);
                            });
  follower.wait_for_passes(1);
  EXPECT_EQ(follower.last_error(), "");
  EXPECT_EQ(ArtifactSet::resolve_current(local.path()), fs::canonical(local.path() + "/v1").string());
  publish(in.options(remote.path(), "v2"));
  follower.wake();
  follower.wait_for_passes(2);
  EXPECT_EQ(ArtifactSet::resolve_current(local.path()), fs::canonical(local.path() + "/v2").string());
  publish(in.options(remote.path(), "v3"));
  follower.wake();
  follower.wait_for_passes(3);
  EXPECT_NE(follower.last_error().find("directions.h5"), std::string::npos) << follower.last_error();
  EXPECT_EQ(ArtifactSet::resolve_current(local.path()), fs::canonical(local.path() + "/v2").string());
  EXPECT_TRUE(fs::exists(local.path() + "/v1"));
  std::lock_guard<std::mutex> lock(log_mutex);
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_NE(failures[0].find("keeping the current version"), std::string::npos) << failures[0];
}

TEST(Pull, CommandLine) {
  const std::string indexer = test::program("feu-indexer");
  if (!fs::exists(indexer)) GTEST_SKIP() << "feu-indexer not built";
  Inputs in;
  test::TempDir remote, local;
  publish(in.options(remote.path(), "v1"));
  ArtifactServer server(remote.path());
  std::string out;
  EXPECT_EQ(test::run_command(indexer + " pull --from " + server.url() + " --root " + local.path(), &out), 0) << out;
  EXPECT_NE(out.find("pulled v1"), std::string::npos) << out;
  EXPECT_TRUE(verify(local.path() + "/current").ok());
  EXPECT_EQ(test::run_command(indexer + " pull --from " + server.url() + " --root " + local.path() + " --version v7",
                              &out),
            2)
      << out;
  EXPECT_NE(out.find("HTTP 404"), std::string::npos) << out;
}

}  // namespace
}  // namespace feu::index
