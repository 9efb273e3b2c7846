#include "index/artifacts.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <cerrno>
#include <cstring>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/files.h"
#include "core/json.h"
#include "core/h5.h"
#include "index/corpus.h"
#include "index/directions.h"

#ifndef FEU_VERSION
#define FEU_VERSION "0.0.0"
#endif

namespace feu::index {
namespace fs = std::filesystem;

std::string tool_version() { return FEU_VERSION; }

// ---------------------------------------------------------------------------- Manifest

nlohmann::json Manifest::to_json() const {
  nlohmann::json files_json = nlohmann::json::array();
  for (const ManifestFile& f : files)
    files_json.push_back({{"path", f.path}, {"sha256", f.sha256}, {"size", f.size}});
  return {{"format", format},
          {"version", version},
          {"created", created},
          {"models", {{"generator_sha256", generator_sha256}, {"clip_sha256", clip_sha256}}},
          {"files", files_json},
          {"config", config},
          {"versions", versions}};
}

namespace {

// A manifest names files inside its version directory, nothing else: an
// absolute path or a ".." would make verify, load or a copy reach outside it.
void check_manifest_path(const std::string& path, const std::string& origin) {
  const fs::path p(path);
  bool escapes = path.empty() || p.is_absolute() || path.find('\\') != std::string::npos;
  for (const auto& part : p)
    if (part == "..") escapes = true;
  check(!escapes, ErrorCode::kCorruptFile,
        origin + ": manifest entry '" + path +
            "' is not a relative path inside the version directory (absolute paths and '..' are refused)");
}


// One manifest read from `origin`: each field checked for its type, an error naming the field
// ("files[2].size") rather than the JSON library's words.
class ManifestReader {
 public:
  explicit ManifestReader(std::string origin) : origin_(std::move(origin)) {}

  const nlohmann::json& member(const nlohmann::json& object, const std::string& key, const std::string& where,
                               nlohmann::json::value_t type, const char* expected) const {
    auto it = object.find(key);
    if (it == object.end()) fail(where + key, "is missing (expected " + std::string(expected) + ")");
    if (it->type() != type) fail(where + key, "must be " + std::string(expected) + ", got " + it->type_name());
    return *it;
  }
  std::string string(const nlohmann::json& object, const std::string& key, const std::string& where = "") const {
    return member(object, key, where, nlohmann::json::value_t::string, "a string").get<std::string>();
  }
  const nlohmann::json& object(const nlohmann::json& object, const std::string& key,
                               const std::string& where = "") const {
    return member(object, key, where, nlohmann::json::value_t::object, "an object");
  }
  // A size or a format number: an integer from 0 to INT64_MAX.
  int64_t count(const nlohmann::json& object, const std::string& key, const std::string& where = "") const {
    auto it = object.find(key);
    const bool fits = it != object.end() && (it->is_number_unsigned() ? it->get<uint64_t>() <= INT64_MAX
                                                                       : it->is_number_integer() && *it >= 0);
    if (!fits)
      fail(where + key, it == object.end() ? "is missing (expected an integer of at least 0)"
                                           : "must be an integer of at least 0, got " + it->dump());
    return it->get<int64_t>();
  }
  [[noreturn]] void fail(const std::string& field, const std::string& what) const {
    throw Error(ErrorCode::kCorruptFile, origin_ + ": invalid manifest: field '" + field + "' " + what);
  }

 private:
  std::string origin_;
};

}  // namespace

Manifest Manifest::from_json(const nlohmann::json& json, const std::string& origin) {
  const ManifestReader read(origin);
  check(json.is_object(), ErrorCode::kCorruptFile,
        origin + ": invalid manifest: expected a JSON object, got " + std::string(json.type_name()));
  Manifest m;
  const int64_t format = read.count(json, "format");
  check(format == 1, ErrorCode::kUnsupported,
        origin + ": manifest format " + std::to_string(format) + " is not supported (expected 1)");
  m.format = static_cast<int>(format);
  m.version = read.string(json, "version");
  m.created = read.string(json, "created");
  const nlohmann::json& models = read.object(json, "models");
  m.generator_sha256 = read.string(models, "generator_sha256", "models.");
  m.clip_sha256 = read.string(models, "clip_sha256", "models.");
  const nlohmann::json& files = read.member(json, "files", "", nlohmann::json::value_t::array, "an array");
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string where = "files[" + std::to_string(i) + "].";
    if (!files[i].is_object()) read.fail("files[" + std::to_string(i) + "]", "must be an object, got " +
                                                                               std::string(files[i].type_name()));
    m.files.push_back(ManifestFile{read.string(files[i], "path", where), read.string(files[i], "sha256", where),
                                   read.count(files[i], "size", where)});
  }
  for (const ManifestFile& f : m.files) check_manifest_path(f.path, origin);
  if (json.contains("config")) m.config = read.object(json, "config");
  if (json.contains("versions")) {
    for (const auto& [tool, version] : read.object(json, "versions").items()) {
      if (!version.is_string())
        read.fail("versions." + tool, std::string("must be a string, got ") + version.type_name());
      m.versions[tool] = version.get<std::string>();
    }
  }
  return m;
}

Manifest Manifest::load(const std::string& version_dir) {
  const std::string path = version_dir + "/" + kManifestFile;
  const std::vector<uint8_t> bytes = read_file(path);
  std::string why;
  const std::optional<nlohmann::json> json =
      parse_outside_json(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), &why);
  if (!json) throw Error(ErrorCode::kCorruptFile, path + " " + why);
  return from_json(*json, path);
}

const ManifestFile* Manifest::find(const std::string& path) const {
  for (const ManifestFile& f : files)
    if (f.path == path) return &f;
  return nullptr;
}

// ---------------------------------------------------------------------------- verify

std::string VerifyReport::text() const {
  std::ostringstream out;
  out << "verify " << version_dir << "\n";
  for (const std::string& line : checked) out << "  OK        " << line << "\n";
  for (const std::string& line : problems) out << "  MISMATCH  " << line << "\n";
  out << (ok() ? "verified: " : "FAILED: ") << checked.size() << " checks passed, " << problems.size()
      << " problems\n";
  return out.str();
}

namespace {

std::string short_hash(const std::string& sha) { return sha.size() > 12 ? sha.substr(0, 12) : sha; }


}  // namespace

VerifyReport verify(const std::string& version_dir) {
  VerifyReport report;
  report.version_dir = version_dir;
  Manifest manifest;
  try {
    manifest = Manifest::load(version_dir);
    report.checked.push_back(std::string(kManifestFile) + " parsed (version " + manifest.version + ", " +
                             std::to_string(manifest.files.size()) + " files)");
  } catch (const Error& e) {
    report.problems.push_back(e.what());
    report.checksum_failed = true;
    return report;
  }
  bool files_ok = true;
  for (const ManifestFile& f : manifest.files) {
    const std::string path = version_dir + "/" + f.path;
    std::error_code ec;
    if (!fs::is_regular_file(path, ec)) {
      report.problems.push_back(f.path + ": listed in the manifest but missing");
      files_ok = false;
      continue;
    }
    const int64_t size = static_cast<int64_t>(fs::file_size(path, ec));
    if (size != f.size) {
      report.problems.push_back(f.path + ": size " + std::to_string(size) + " bytes, manifest says " +
                                std::to_string(f.size));
      files_ok = false;
      continue;
    }
    const std::string sha = sha256_file(path);
    if (sha != f.sha256) {
      // In full: two hashes can share a prefix.
      report.problems.push_back(f.path + ": sha256 " + sha + " differs from the manifest's " + f.sha256);
      files_ok = false;
      continue;
    }
    report.checked.push_back(f.path + ": size and sha256 match (" + short_hash(sha) + "…)");
  }
  for (auto it = fs::recursive_directory_iterator(version_dir); it != fs::recursive_directory_iterator(); ++it) {
    if (!it->is_regular_file()) continue;
    const std::string rel = fs::relative(it->path(), version_dir).generic_string();
    if (rel == kManifestFile) continue;
    if (!manifest.find(rel)) {
      report.problems.push_back(rel + ": present but not listed in the manifest");
      files_ok = false;
    }
  }
  if (!files_ok) report.checksum_failed = true;

  // Cross-references: only meaningful when the files are the published ones.
  const std::string directions_path = version_dir + "/" + kDirectionsFile;
  const std::string corpus_h5 = version_dir + "/" + kCorpusDir + "/" + kCorpusH5File;
  auto cross_check = [&](const std::string& what, const std::string& actual, const std::string& expected,
                         const std::string& model) {
    if (actual == expected)
      report.checked.push_back(what + " was made with the manifest's " + model + " (" + short_hash(expected) + "…)");
    else
      report.problems.push_back(what + " was made with " + model + " " +
                                (actual.empty() ? std::string("<unrecorded>") : short_hash(actual) + "…") +
                                " but the manifest names " + short_hash(expected) + "…");
  };
  try {
    if (manifest.find(kDirectionsFile)) {
      Directions directions = Directions::load(directions_path);
      report.checked.push_back(std::string(kDirectionsFile) + ": " + std::to_string(directions.covered()) +
                               " rows of dim " + std::to_string(directions.embed_dim) + ", layer table consistent");
      cross_check(kDirectionsFile, directions.info.generator_sha256, manifest.generator_sha256, "generator");
      cross_check(kDirectionsFile, directions.info.clip_sha256, manifest.clip_sha256, "CLIP");
    } else {
      report.problems.push_back(std::string(kDirectionsFile) + " is not in the manifest");
    }
    const std::string corpus_rel = std::string(kCorpusDir) + "/" + kCorpusH5File;
    if (manifest.find(corpus_rel)) {
      CorpusIndex corpus = CorpusIndex::load(version_dir + "/" + kCorpusDir);
      report.checked.push_back(corpus_rel + ": " + std::to_string(corpus.size()) + " images of dim " +
                               std::to_string(corpus.dim()) + ", FAISS index agrees");
      cross_check(corpus_rel, corpus.provenance().clip_sha256, manifest.clip_sha256, "CLIP");
      if (manifest.find(kDirectionsFile)) {
        const int64_t fs3_dim = Directions::load(directions_path).embed_dim;
        if (fs3_dim != corpus.dim())
          report.problems.push_back("corpus embeddings have dim " + std::to_string(corpus.dim()) +
                                    " but directions have dim " + std::to_string(fs3_dim));
      }
    } else {
      report.problems.push_back(corpus_rel + " is not in the manifest");
    }
    for (const ManifestFile& f : manifest.files) {
      if (f.path.rfind("models/", 0) != 0) continue;
      if (f.sha256 == manifest.generator_sha256)
        report.checked.push_back(f.path + " is the manifest's generator");
      else if (f.sha256 == manifest.clip_sha256)
        report.checked.push_back(f.path + " is the manifest's CLIP");
      else if (f.path.size() < 7 || f.path.substr(f.path.size() - 7) != ".txt.gz")
        report.problems.push_back(f.path + " is neither the manifest's generator nor its CLIP");
    }
  } catch (const Error& e) {
    report.problems.push_back(std::string("cannot read the artifacts: ") + e.what());
  }
  return report;
}

// ---------------------------------------------------------------------------- publish

void check_version_name(const std::string& version) {
  const bool valid = !version.empty() && version != "current" && version != kCurrentJsonFile &&
                     version[0] != '.' && version.find('/') == std::string::npos &&
                     version.find('\\') == std::string::npos && version.find('\0') == std::string::npos;
  check(valid, ErrorCode::kInvalidArgument,
        "invalid version name '" + version + "' (expected a plain directory name, not 'current', not hidden)");
}

namespace {

void copy_file_synced(const std::string& from, const std::string& to) {
  std::error_code ec;
  fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
  if (ec) throw Error(ErrorCode::kIoError, "cannot copy " + from + " to " + to + ": " + ec.message());
  fsync_path(to);
}

// Removes a temporary version directory unless released.
class TempDirGuard {
 public:
  explicit TempDirGuard(std::string path) : path_(std::move(path)) {}
  ~TempDirGuard() {
    if (!path_.empty()) {
      std::error_code ignored;
      fs::remove_all(path_, ignored);
    }
  }
  void release() { path_.clear(); }

 private:
  std::string path_;
};

// rename() that refuses to replace an existing target (a directory rename
// would otherwise replace an empty directory).
void rename_no_replace(const std::string& from, const std::string& to) {
#ifdef RENAME_NOREPLACE
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  const int err = errno;
  if (err != EINVAL && err != ENOSYS)
    throw Error(err == EEXIST ? ErrorCode::kInvalidArgument : ErrorCode::kIoError,
                "cannot rename " + from + " to " + to + ": " + std::strerror(err));
#endif
  check(!fs::exists(to), ErrorCode::kInvalidArgument, "version directory already exists: " + to);
  if (::rename(from.c_str(), to.c_str()) != 0)
    throw Error(ErrorCode::kIoError, "cannot rename " + from + " to " + to + ": " + std::strerror(errno));
}

// A crashed publish leaves a hidden ".publishing-<version>-<pid>" directory (or a
// ".current-<pid>" link); remove those whose process is gone.
void remove_stale_temporaries(const std::string& root) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(".publishing-", 0) != 0 && name.rfind(".current-", 0) != 0) continue;
    const size_t dash = name.rfind('-');
    long pid = 0;
    try {
      pid = std::stol(name.substr(dash + 1));
    } catch (const std::exception&) {
      continue;
    }
    if (pid > 0 && pid != ::getpid() && ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH) {
      std::error_code ignored;
      fs::remove_all(entry.path(), ignored);
    }
  }
}

}  // namespace

void set_current(const std::string& root, const std::string& version) {
  check_version_name(version);
  check(fs::is_directory(root + "/" + version), ErrorCode::kNotFound,
        "cannot point current at " + version + ": " + root + "/" + version + " does not exist");
  // A relative link keeps the root copyable; rename() over the old link is atomic.
  const std::string temp = root + "/.current-" + std::to_string(::getpid());
  std::error_code ignored;
  fs::remove(temp, ignored);
  if (::symlink(version.c_str(), temp.c_str()) != 0)
    throw Error(ErrorCode::kIoError, "cannot create symlink " + temp + ": " + std::strerror(errno));
  if (::rename(temp.c_str(), (root + "/current").c_str()) != 0) {
    const int err = errno;
    fs::remove(temp, ignored);
    throw Error(ErrorCode::kIoError, "cannot switch " + root + "/current: " + std::strerror(err));
  }
  fsync_path(root);
  const nlohmann::json current = {{"version", version},
                                  {"manifest_sha256", sha256_file(root + "/" + version + "/" + kManifestFile)}};
  write_file_atomic(root + "/" + kCurrentJsonFile, current.dump(2) + "\n");
}

void install_version(const std::string& temp_dir, const std::string& root, const std::string& version) {
  check_version_name(version);
  rename_no_replace(temp_dir, root + "/" + version);
  fsync_path(root);
}

std::string publish(const PublishOptions& options) {
  check_version_name(options.version);
  check(!options.root.empty(), ErrorCode::kInvalidArgument, "publish needs an artifact root");
  const std::string corpus_h5 = options.corpus_dir + "/" + kCorpusH5File;
  const std::string corpus_faiss = options.corpus_dir + "/" + kCorpusFaissFile;
  check(fs::is_regular_file(corpus_h5) && fs::is_regular_file(corpus_faiss), ErrorCode::kNotFound,
        "corpus directory " + options.corpus_dir + " must hold corpus.h5 and corpus.faiss");

  // Inputs must agree with each other before anything is written.
  Directions directions = Directions::load(options.directions_path);
  check(!directions.info.shard.active(), ErrorCode::kInvalidArgument,
        options.directions_path + " is shard " + directions.info.shard.text() +
            " of a sharded run, not whole directions: join the shards with feu-indexer merge-directions");
  CorpusIndex corpus = CorpusIndex::load(options.corpus_dir);
  const std::string generator_sha = directions.info.generator_sha256;
  const std::string clip_sha = directions.info.clip_sha256;
  check(corpus.provenance().clip_sha256 == clip_sha, ErrorCode::kArtifactMismatch,
        "the corpus was embedded with CLIP " + short_hash(corpus.provenance().clip_sha256) +
            "… but the directions were computed with CLIP " + short_hash(clip_sha) + "…");
  check(corpus.dim() == directions.embed_dim, ErrorCode::kArtifactMismatch,
        "corpus embeddings have dim " + std::to_string(corpus.dim()) + " but directions have dim " +
            std::to_string(directions.embed_dim));
  if (!options.generator_path.empty())
    check(sha256_file(options.generator_path) == generator_sha, ErrorCode::kArtifactMismatch,
          options.generator_path + " is not the generator the directions were computed with (" +
              short_hash(generator_sha) + "…)");
  if (!options.clip_path.empty())
    check(sha256_file(options.clip_path) == clip_sha, ErrorCode::kArtifactMismatch,
          options.clip_path + " is not the CLIP the artifacts were made with (" + short_hash(clip_sha) + "…)");

  fs::create_directories(options.root);
  const std::string final_dir = options.root + "/" + options.version;
  check(!fs::exists(final_dir), ErrorCode::kInvalidArgument,
        "version " + options.version + " already exists in " + options.root + " (versions are immutable)");

  remove_stale_temporaries(options.root);
  const std::string temp_dir = options.root + "/.publishing-" + options.version + "-" + std::to_string(::getpid());
  fs::remove_all(temp_dir);
  TempDirGuard guard(temp_dir);
  fs::create_directories(temp_dir + "/" + kCorpusDir);
  copy_file_synced(corpus_h5, temp_dir + "/" + kCorpusDir + "/" + kCorpusH5File);
  copy_file_synced(corpus_faiss, temp_dir + "/" + kCorpusDir + "/" + kCorpusFaissFile);
  copy_file_synced(options.directions_path, temp_dir + "/" + kDirectionsFile);
  if (!options.model_paths.empty()) {
    fs::create_directories(temp_dir + "/models");
    for (const std::string& model : options.model_paths) {
      const std::string name = fs::path(model).filename().string();
      check(!fs::exists(temp_dir + "/models/" + name), ErrorCode::kInvalidArgument,
            "two model files are named " + name);
      copy_file_synced(model, temp_dir + "/models/" + name);
    }
    fsync_path(temp_dir + "/models");
  }
  if (options.hook) options.hook("copied");

  Manifest manifest;
  manifest.version = options.version;
  manifest.created = utc_timestamp();
  manifest.generator_sha256 = generator_sha;
  manifest.clip_sha256 = clip_sha;
  manifest.config = options.config;
  manifest.versions = {{"feu", tool_version()},
                       {"faiss", faiss_version()},
                       {"libtorch", directions.info.torch_version.empty() ? corpus.provenance().torch_version
                                                                           : directions.info.torch_version}};
  std::vector<std::string> rels;
  for (auto it = fs::recursive_directory_iterator(temp_dir); it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file()) rels.push_back(fs::relative(it->path(), temp_dir).generic_string());
  std::sort(rels.begin(), rels.end());
  for (const std::string& rel : rels) {
    const std::string path = temp_dir + "/" + rel;
    manifest.files.push_back(ManifestFile{rel, sha256_file(path), static_cast<int64_t>(fs::file_size(path))});
  }
  for (const ManifestFile& f : manifest.files)
    if (f.path.rfind("models/", 0) == 0 && f.sha256 != generator_sha && f.sha256 != clip_sha &&
        f.path.find(".txt.gz") == std::string::npos)
      throw Error(ErrorCode::kArtifactMismatch,
                  "model file " + f.path + " is neither the generator nor the CLIP the artifacts were made with");
  write_file_atomic(temp_dir + "/" + kManifestFile, manifest.to_json().dump(2) + "\n");
  fsync_path(temp_dir + "/" + kCorpusDir);
  fsync_path(temp_dir);
  if (options.hook) options.hook("manifest");

  install_version(temp_dir, options.root, options.version);
  guard.release();
  if (options.hook) options.hook("renamed");
  if (options.make_current) set_current(options.root, options.version);
  return final_dir;
}

// ---------------------------------------------------------------------------- ArtifactSet

ArtifactSet ArtifactSet::open(const std::string& version_dir, bool verify_files) {
  check(fs::is_directory(version_dir), ErrorCode::kNotFound, "artifact version directory not found: " + version_dir);
  ArtifactSet set;
  set.dir_ = fs::canonical(version_dir).string();
  if (verify_files) {
    VerifyReport report = verify(set.dir_);
    if (!report.ok())
      throw Error(report.checksum_failed ? ErrorCode::kChecksumMismatch : ErrorCode::kArtifactMismatch,
                  "artifacts in " + set.dir_ + " fail verification: " + report.problems.front() +
                      (report.problems.size() > 1
                           ? " (and " + std::to_string(report.problems.size() - 1) + " more problems)"
                           : std::string()));
  }
  set.manifest_ = Manifest::load(set.dir_);
  return set;
}

std::string ArtifactSet::resolve_current(const std::string& root) {
  const std::string link = root + "/current";
  std::error_code ec;
  check(fs::exists(link, ec), ErrorCode::kNotFound,
        "no published artifacts: " + link + " does not exist (run feu-indexer publish)");
  return fs::canonical(link).string();
}

std::string ArtifactSet::corpus_dir() const { return dir_ + "/" + kCorpusDir; }
std::string ArtifactSet::directions_path() const { return dir_ + "/" + kDirectionsFile; }

std::string ArtifactSet::model_path(const std::string& file_name) const {
  const std::string rel = "models/" + file_name;
  return manifest_.find(rel) ? dir_ + "/" + rel : std::string();
}

}  // namespace feu::index
