// `feu-indexer pull`: copies a published artifact version from a static HTTP
// server or an S3-compatible bucket (the layout `publish` writes, see
// artifacts.h) into a local artifact root, the way publish installs one.
//
// manifest.json is fetched first; each file it lists is downloaded into
// <root>/.pulling-<version>/<path>.partial, resumed with an HTTP Range request
// after a dropped connection (in this run, or the next one), and checked
// against the manifest's size and sha256 before it takes its name. The
// complete version is verified like a published one, renamed into place and
// `current` switched; earlier versions stay.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/error.h"

namespace feu::index {

// A failed HTTP exchange: `http_status` is the server's answer (404, 503, or
// 200 for a body cut short) or 0 when none came (host unreachable, timeout).
class FetchError : public Error {
 public:
  FetchError(ErrorCode code, const std::string& message, long http_status)
      : Error(code, message), http_status_(http_status) {}
  long http_status() const { return http_status_; }

 private:
  long http_status_;
};

struct PullOptions {
  std::string from;         // base URL of a publisher root (http://host/artifacts)
  std::string root;         // local artifact root (created when absent)
  std::string version;      // "" = the one the publisher's current.json names
  bool make_current = true;
  int attempts = 5;         // tries per file; each retry resumes where the last stopped
  long connect_timeout_s = 10;
  long stall_timeout_s = 30;  // a transfer slower than 1 byte/s for this long is dropped and retried
};

struct PullReport {
  std::string version;
  std::string version_dir;
  bool already_present = false;  // the version was installed (and verifies); only `current` was switched
  int64_t files = 0;
  int64_t bytes_downloaded = 0;  // over the network by this run
  int64_t bytes_resumed = 0;     // kept from partial files instead of downloaded again
  int64_t retries = 0;           // requests repeated after a dropped transfer
  std::string text() const;
};

// The version <from>/current.json names (and the manifest sha256 it records,
// when `manifest_sha256` is given). Errors: FetchError, corrupt_file.
std::string remote_current_version(const std::string& from, std::string* manifest_sha256 = nullptr,
                                   long connect_timeout_s = 10);

// Errors: FetchError (not_found for HTTP 404, io_error for another status or
// an unreachable host), checksum_mismatch naming the file, the expected and the
// received sha256 (the version is not installed, `current` is unchanged),
// corrupt_file (a manifest path escaping the version directory, bad JSON),
// artifact_mismatch (a complete version that fails verification).
PullReport pull(const PullOptions& options);

// The daemon's `artifacts: {follow: URL, poll_s: N}`: a background thread pulls
// the publisher's current version now and every `period` into options.root,
// so the daemon's reload (which watches <root>/current) picks it up. A failed
// pull changes nothing (pull installs only verified versions) and is retried
// at the next period. The destructor stops the thread after the pull under way.
class ArtifactFollower {
 public:
  using Log = std::function<void(const std::string& line, bool failed)>;
  ArtifactFollower(PullOptions options, std::chrono::milliseconds period, Log log);
  ~ArtifactFollower();
  ArtifactFollower(const ArtifactFollower&) = delete;
  ArtifactFollower& operator=(const ArtifactFollower&) = delete;

  // Pulls now instead of at the end of the period.
  void wake();
  // Blocks until at least `passes` pulls have finished; returns the count (tests).
  int64_t wait_for_passes(int64_t passes);
  // The last pull's error ("" after a success).
  std::string last_error() const;

 private:
  void loop();

  PullOptions options_;
  std::chrono::milliseconds period_;
  Log log_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool stop_ = false, woken_ = false;
  int64_t passes_ = 0;
  std::string last_error_;
  std::thread thread_;
};

}  // namespace feu::index
