// Published artifact versions: what the daemon serves and what other machines
// copy.
//
// <root>/<version>/            one immutable version directory
//   manifest.json              files (sha256, size), models, config, versions
//   corpus/corpus.faiss, corpus/corpus.h5
//   directions.h5
//   models/...                 optional copies of the model files
// <root>/current -> <version>  switched atomically (symlink + rename)
// <root>/current.json          {"version", "manifest_sha256"}: the same, for
//                              a static HTTP server (feu-indexer pull reads it)
//
// A version is assembled in a hidden temporary directory under <root>, fsynced
// and renamed into place, so a crash never leaves a half version visible and
// never changes `current`.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace feu::index {

struct ManifestFile {
  std::string path;    // relative to the version directory
  std::string sha256;
  int64_t size = 0;
};

struct Manifest {
  int format = 1;
  std::string version;
  std::vector<ManifestFile> files;
  std::string generator_sha256;   // models the artifacts were made with
  std::string clip_sha256;
  nlohmann::json config = nlohmann::json::object();        // build options recorded by publish
  std::map<std::string, std::string> versions;              // feu, faiss, libtorch, ...
  std::string created;

  nlohmann::json to_json() const;
  // Errors: corrupt_file naming the missing/mistyped key.
  static Manifest from_json(const nlohmann::json& json, const std::string& origin);
  static Manifest load(const std::string& version_dir);
  const ManifestFile* find(const std::string& path) const;
};

inline const char* kManifestFile = "manifest.json";
inline const char* kCurrentJsonFile = "current.json";
inline const char* kDirectionsFile = "directions.h5";
inline const char* kCorpusDir = "corpus";

struct VerifyReport {
  std::string version_dir;
  std::vector<std::string> checked;   // one line per passed check
  std::vector<std::string> problems;  // one line per failed check
  bool checksum_failed = false;       // a file is missing, extra, or differs from the manifest
  bool ok() const { return problems.empty(); }
  // Human-readable report: "OK ..." / "MISMATCH ..." lines and a summary.
  std::string text() const;
};

// Rechecks every file's size and sha256, that no unlisted file is present,
// and the cross-references: directions.h5 and corpus.h5 were made with the
// generator/CLIP the manifest names (and the model copies, when shipped, hash
// to those fingerprints). Never throws for a mismatch; reports it.
VerifyReport verify(const std::string& version_dir);

struct PublishOptions {
  std::string root;             // artifact root (created when absent)
  std::string version;          // directory name; must not exist yet
  std::string corpus_dir;       // holds corpus.faiss + corpus.h5
  std::string directions_path;  // directions.h5
  std::vector<std::string> model_paths;  // copied into models/ (optional)
  std::string generator_path;   // when given, its sha256 must match directions'
  std::string clip_path;        // when given, its sha256 must match corpus'/directions'
  nlohmann::json config = nlohmann::json::object();
  bool make_current = true;
  // Test hook: called with a stage name ("copied", "manifest", "renamed");
  // throwing from it simulates a crash at that point.
  std::function<void(const std::string& stage)> hook;
};

// Publishes a version and (by default) switches `current` to it. Returns the
// version directory. Errors: invalid_argument (version exists, bad name),
// artifact_mismatch (inputs made with different models), io_error.
std::string publish(const PublishOptions& options);

// Points <root>/current at `version` atomically, then rewrites
// <root>/current.json (temp + fsync + rename) to name it and its manifest's sha256.
void set_current(const std::string& root, const std::string& version);

// Refuses a version name that is not a plain directory name ("current",
// hidden, a path). Errors: invalid_argument.
void check_version_name(const std::string& version);

// Renames a complete, fsynced temporary version directory (under `root`) to
// <root>/<version> without replacing an existing one, and fsyncs the root.
// publish and pull install through it. Errors: invalid_argument (exists), io_error.
void install_version(const std::string& temp_dir, const std::string& root, const std::string& version);

class ArtifactSet {
 public:
  // Opens a version directory; with `verify` a failing verify() is a
  // checksum_mismatch / artifact_mismatch error carrying the report's first problem.
  static ArtifactSet open(const std::string& version_dir, bool verify = true);
  // Version directory <root>/current points at (absolute). not_found when absent.
  static std::string resolve_current(const std::string& root);

  const Manifest& manifest() const { return manifest_; }
  const std::string& version_dir() const { return dir_; }
  std::string corpus_dir() const;
  std::string directions_path() const;
  // Path of a shipped model copy ("" when the version has none).
  std::string model_path(const std::string& file_name) const;

 private:
  std::string dir_;
  Manifest manifest_;
};

// feu's own version string.
std::string tool_version();

}  // namespace feu::index
