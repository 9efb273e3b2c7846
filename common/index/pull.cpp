#include "index/pull.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/files.h"
#include "core/json.h"
#include "index/artifacts.h"

namespace feu::index {
namespace fs = std::filesystem;

std::string PullReport::text() const {
  char buffer[512];
  if (already_present) {
    std::snprintf(buffer, sizeof buffer, "version %s is already installed and verifies: %s\n", version.c_str(),
                  version_dir.c_str());
  } else {
    std::snprintf(buffer, sizeof buffer,
                  "pulled %s: %ld files, %ld bytes downloaded, %ld bytes resumed from partial files, %ld retries "
                  "-> %s\n",
                  version.c_str(), long(files), long(bytes_downloaded), long(bytes_resumed), long(retries),
                  version_dir.c_str());
  }
  return buffer;
}

namespace {

void init_curl() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// Each path segment percent-encoded: a manifest name must not change the URL's shape.
std::string join_url(std::string base, const std::string& relative) {
  while (!base.empty() && base.back() == '/') base.pop_back();
  size_t start = 0;
  while (start <= relative.size()) {
    const size_t slash = std::min(relative.find('/', start), relative.size());
    const std::string segment = relative.substr(start, slash - start);
    char* escaped = curl_easy_escape(nullptr, segment.c_str(), static_cast<int>(segment.size()));
    base += "/" + std::string(escaped ? escaped : "");
    curl_free(escaped);
    start = slash + 1;
  }
  return base;
}

struct Timeouts {
  long connect_s = 10;
  long stall_s = 30;
};

struct Transfer {
  CURLcode code = CURLE_OK;
  long status = 0;
  std::string message;  // curl's error text
};

// A dropped or stalled transfer, or a server error, may succeed when repeated.
bool worth_retrying(const Transfer& t) {
  switch (t.code) {
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_OPERATION_TIMEDOUT:
      return true;
    case CURLE_HTTP_RETURNED_ERROR:
      return t.status >= 500;
    default:
      return false;
  }
}

FetchError fetch_error(const std::string& url, const Transfer& t) {
  if (t.code == CURLE_HTTP_RETURNED_ERROR)
    return FetchError(t.status == 404 ? ErrorCode::kNotFound : ErrorCode::kIoError,
                      "HTTP " + std::to_string(t.status) + " for " + url, t.status);
  if (t.code == CURLE_COULDNT_CONNECT || t.code == CURLE_COULDNT_RESOLVE_HOST ||
      t.code == CURLE_COULDNT_RESOLVE_PROXY)
    return FetchError(ErrorCode::kIoError, "cannot reach " + url + ": " + t.message, 0);
  if (t.code == CURLE_UNSUPPORTED_PROTOCOL || t.code == CURLE_URL_MALFORMAT)
    return FetchError(ErrorCode::kInvalidArgument, "cannot fetch " + url + ": " + t.message +
                                                       " (expected an http:// or https:// URL)", 0);
  return FetchError(ErrorCode::kIoError, "transfer of " + url + " failed: " + t.message, t.status);
}

// GET `url` from byte `offset` (a Range request when > 0). `body` receives the
// status (200 or 206) with each chunk and returns false to abort.
Transfer http_get(const std::string& url, int64_t offset, const Timeouts& timeouts,
                  const std::function<bool(long status, const char* data, size_t size)>& body) {
  init_curl();
  CURL* curl = curl_easy_init();
  check(curl != nullptr, ErrorCode::kInternal, "curl_easy_init failed");
  struct Sink {
    CURL* curl;
    const std::function<bool(long, const char*, size_t)>* body;
  } sink{curl, &body};
  char error[CURL_ERROR_SIZE] = {0};
  const std::string range = std::to_string(offset) + "-";
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, timeouts.connect_s);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, timeouts.stall_s);
  if (offset > 0) curl_easy_setopt(curl, CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, +[](char* data, size_t size, size_t count, void* user) -> size_t {
    Sink* s = static_cast<Sink*>(user);
    long status = 0;
    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    return (*s->body)(status, data, size * count) ? size * count : 0;
  });
  Transfer t;
  t.code = curl_easy_perform(curl);
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &t.status);
  t.message = error[0] ? error : curl_easy_strerror(t.code);
  curl_easy_cleanup(curl);
  return t;
}

std::string get_small(const std::string& url, const Timeouts& timeouts) {
  std::string text;
  Transfer t = http_get(url, 0, timeouts, [&](long, const char* data, size_t size) {
    text.append(data, size);
    return text.size() < (64u << 20);  // a manifest, not a data file
  });
  if (t.code != CURLE_OK) throw fetch_error(url, t);
  return text;
}

nlohmann::json parse_json(const std::string& text, const std::string& url) {
  std::string why;
  std::optional<nlohmann::json> value = parse_outside_json(text, &why);
  if (!value) throw Error(ErrorCode::kCorruptFile, url + " " + why);
  return std::move(*value);
}

int64_t size_or_zero(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  return ec ? 0 : static_cast<int64_t>(size);
}

// Downloads `url` into `partial`, appending to what an interrupted attempt left.
void download(const std::string& url, const std::string& partial, int64_t expected_size,
              const PullOptions& o, PullReport* report) {
  const Timeouts timeouts{o.connect_timeout_s, o.stall_timeout_s};
  const int64_t kept = size_or_zero(partial);
  if (kept > 0 && kept < expected_size) report->bytes_resumed += kept;
  for (int attempt = 1;; ++attempt) {
    int64_t offset = size_or_zero(partial);
    if (offset >= expected_size && expected_size > 0) {
      if (offset == expected_size) return;
      fs::resize_file(partial, 0);  // longer than the manifest says: start over
      offset = 0;
    }
    FILE* out = std::fopen(partial.c_str(), "ab");
    check(out != nullptr, ErrorCode::kIoError, "cannot write " + partial + ": " + std::strerror(errno));
    bool first_chunk = true, write_failed = false;
    Transfer t = http_get(url, offset, timeouts, [&](long status, const char* data, size_t size) {
      if (first_chunk && offset > 0 && status == 200) {  // the server ignored the Range: a whole body follows
        report->bytes_resumed -= offset;
        if (::ftruncate(::fileno(out), 0) != 0) return !(write_failed = true);
      }
      first_chunk = false;
      if (std::fwrite(data, 1, size, out) != size) return !(write_failed = true);
      report->bytes_downloaded += static_cast<int64_t>(size);
      return true;
    });
    const bool flushed = std::fflush(out) == 0 && ::fsync(::fileno(out)) == 0;
    std::fclose(out);
    check(!write_failed && flushed, ErrorCode::kIoError, "cannot write " + partial + ": " + std::strerror(errno));
    if (t.code == CURLE_OK) return;
    if (t.code == CURLE_HTTP_RETURNED_ERROR && t.status == 416) {  // nothing past our offset: start over
      fs::resize_file(partial, 0);
    } else if (!worth_retrying(t) || attempt >= o.attempts) {
      throw fetch_error(url, t);
    }
    ++report->retries;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(100 * attempt * attempt, 3000)));
  }
}

// One pull of a version into a root at a time.
class PullLock {
 public:
  explicit PullLock(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    check(fd_ >= 0, ErrorCode::kIoError, "cannot open " + path_ + ": " + std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw Error(ErrorCode::kBusy, "another pull holds " + path_ + " (the same version into the same root)");
    }
  }
  ~PullLock() {
    ::unlink(path_.c_str());
    ::close(fd_);
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

std::string remote_current_version(const std::string& from, std::string* manifest_sha256, long connect_timeout_s) {
  const std::string url = join_url(from, kCurrentJsonFile);
  const nlohmann::json current = parse_json(get_small(url, Timeouts{connect_timeout_s, 30}), url);
  try {
    if (manifest_sha256) *manifest_sha256 = current.value("manifest_sha256", std::string());
    return current.at("version").get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::kCorruptFile, url + ": expected {\"version\": ..., \"manifest_sha256\": ...} (" +
                                             e.what() + ")");
  }
}

PullReport pull(const PullOptions& o) {
  check(!o.from.empty(), ErrorCode::kInvalidArgument, "pull needs --from: the publisher root's URL");
  check(!o.root.empty(), ErrorCode::kInvalidArgument, "pull needs --root: the local artifact root");
  check(o.attempts >= 1, ErrorCode::kInvalidArgument, "pull attempts must be at least 1");
  const Timeouts timeouts{o.connect_timeout_s, o.stall_timeout_s};
  PullReport report;
  std::string expected_manifest_sha;
  report.version = o.version.empty() ? remote_current_version(o.from, &expected_manifest_sha, o.connect_timeout_s)
                                     : o.version;
  check_version_name(report.version);
  fs::create_directories(o.root);
  report.version_dir = o.root + "/" + report.version;

  if (fs::exists(report.version_dir)) {
    VerifyReport verified = verify(report.version_dir);
    if (!verified.ok())
      throw Error(ErrorCode::kChecksumMismatch, report.version_dir + " exists but fails verification (" +
                                                    verified.problems.front() + "); remove it to pull it again");
    report.already_present = true;
    if (o.make_current) set_current(o.root, report.version);
    return report;
  }

  const std::string staging = o.root + "/.pulling-" + report.version;
  PullLock lock(staging + ".lock");
  const std::string manifest_url = join_url(o.from, report.version + "/" + kManifestFile);
  const std::string manifest_text = get_small(manifest_url, timeouts);
  const std::string manifest_sha = sha256_bytes(manifest_text.data(), manifest_text.size());
  check(expected_manifest_sha.empty() || manifest_sha == expected_manifest_sha, ErrorCode::kChecksumMismatch,
        manifest_url + ": sha256 " + manifest_sha + " differs from the " + kCurrentJsonFile + "'s " +
            expected_manifest_sha + " (published again meanwhile? pull again)");
  const Manifest manifest = Manifest::from_json(parse_json(manifest_text, manifest_url), manifest_url);
  check(manifest.version == report.version, ErrorCode::kCorruptFile,
        manifest_url + " describes version '" + manifest.version + "', not '" + report.version + "'");

  fs::create_directories(staging);
  for (const ManifestFile& f : manifest.files) {
    const std::string target = staging + "/" + f.path;
    const std::string url = join_url(o.from, report.version + "/" + f.path);
    ++report.files;
    // A file a previous run completed is kept when it still checks out.
    if (size_or_zero(target) == f.size && sha256_file(target) == f.sha256) continue;
    fs::create_directories(fs::path(target).parent_path());
    const std::string partial = target + ".partial";
    download(url, partial, f.size, o, &report);
    const int64_t size = size_or_zero(partial);
    const std::string sha = sha256_file(partial);
    if (sha != f.sha256 || size != f.size) {
      std::error_code ignored;
      fs::remove(partial, ignored);
      throw Error(ErrorCode::kChecksumMismatch, f.path + ": downloaded " + std::to_string(size) + " bytes with sha256 " +
                                                    sha + ", the manifest expects " + std::to_string(f.size) +
                                                    " bytes with sha256 " + f.sha256 + " (from " + url + ")");
    }
    if (std::rename(partial.c_str(), target.c_str()) != 0)
      throw Error(ErrorCode::kIoError, "cannot rename " + partial + ": " + std::strerror(errno));
    fsync_path(fs::path(target).parent_path().string());
  }
  // Leftovers of an earlier, different attempt would fail verify as unlisted files.
  std::vector<fs::path> unlisted;
  for (auto it = fs::recursive_directory_iterator(staging); it != fs::recursive_directory_iterator(); ++it)
    if (it->is_regular_file() && !manifest.find(fs::relative(it->path(), staging).generic_string()))
      unlisted.push_back(it->path());
  for (const fs::path& path : unlisted) fs::remove(path);
  write_file_atomic(staging + "/" + kManifestFile, manifest_text);
  fsync_path(staging);

  VerifyReport verified = verify(staging);
  if (!verified.ok()) {
    std::error_code ignored;
    fs::remove_all(staging, ignored);
    throw Error(verified.checksum_failed ? ErrorCode::kChecksumMismatch : ErrorCode::kArtifactMismatch,
                "pulled version " + report.version + " fails verification: " + verified.problems.front());
  }
  install_version(staging, o.root, report.version);
  if (o.make_current) set_current(o.root, report.version);
  return report;
}

// ---------------------------------------------------------------------------- ArtifactFollower

ArtifactFollower::ArtifactFollower(PullOptions options, std::chrono::milliseconds period, Log log)
    : options_(std::move(options)), period_(period), log_(std::move(log)) {
  check(period_.count() > 0, ErrorCode::kInvalidArgument, "artifacts.poll_s must be positive");
  options_.version.clear();  // always the publisher's current
  thread_ = std::thread([this] { loop(); });
}

ArtifactFollower::~ArtifactFollower() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void ArtifactFollower::wake() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    woken_ = true;
  }
  changed_.notify_all();
}

int64_t ArtifactFollower::wait_for_passes(int64_t passes) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return passes_ >= passes || stop_; });
  return passes_;
}

std::string ArtifactFollower::last_error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_error_;
}

void ArtifactFollower::loop() {
  std::string last_version;
  for (;;) {
    std::string error;
    try {
      PullReport report = pull(options_);
      if (!report.already_present || report.version != last_version)
        if (log_) log_("artifacts: " + report.text().substr(0, report.text().size() - 1), false);
      last_version = report.version;
    } catch (const std::exception& e) {
      error = e.what();
      if (log_) log_("artifacts: pull from " + options_.from + " failed (keeping the current version): " + error, true);
    }
    std::unique_lock<std::mutex> lock(mutex_);
    last_error_ = error;
    ++passes_;
    changed_.notify_all();
    changed_.wait_for(lock, period_, [&] { return stop_ || woken_; });
    woken_ = false;
    if (stop_) return;
  }
}

}  // namespace feu::index
