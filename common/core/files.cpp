#include "core/files.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <cstring>
#include <fstream>

#include "core/error.h"

namespace feu {
namespace fs = std::filesystem;

AtomicFile::AtomicFile(std::string final_path) : final_path_(std::move(final_path)) {
  static std::atomic<uint64_t> counter{0};
  temp_path_ = final_path_ + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  fs::path parent = fs::path(final_path_).parent_path();
  if (!parent.empty() && !fs::is_directory(parent))
    throw Error(ErrorCode::kNotFound, "output directory does not exist: " + parent.string());
}

AtomicFile::~AtomicFile() {
  if (!committed_) {
    std::error_code ignored;
    fs::remove(temp_path_, ignored);
  }
}

void AtomicFile::commit() {
  if (!fs::exists(temp_path_))
    throw Error(ErrorCode::kInternal, "nothing was written to " + temp_path_);
  fsync_path(temp_path_);
  std::error_code ec;
  fs::rename(temp_path_, final_path_, ec);
  if (ec) throw Error(ErrorCode::kIoError, "cannot rename " + temp_path_ + " to " + final_path_ + ": " + ec.message());
  committed_ = true;
  fs::path parent = fs::path(final_path_).parent_path();
  fsync_path(parent.empty() ? "." : parent.string());
}

std::vector<uint8_t> read_file(const std::string& path) {
  if (!fs::exists(path)) throw Error(ErrorCode::kNotFound, "file not found: " + path);
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw Error(ErrorCode::kIoError, "cannot read " + path + ": Is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIoError, "cannot read " + path + ": " + std::strerror(errno));
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void write_file_atomic(const std::string& path, const void* data, size_t size) {
  AtomicFile file(path);
  {
    std::ofstream out(file.temp_path(), std::ios::binary);
    out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
    out.flush();
    if (!out) throw Error(ErrorCode::kIoError, "cannot write " + file.temp_path() + ": " + std::strerror(errno));
  }
  file.commit();
}

void write_file_atomic(const std::string& path, const std::string& text) {
  write_file_atomic(path, text.data(), text.size());
}

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(ErrorCode::kIoError, "cannot open for fsync: " + path + ": " + std::strerror(errno));
  // A failed fsync means the data may not be on disk: callers that promise
  // durability must hear it. EINVAL: the file system cannot sync this kind of file.
  const int result = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  if (result != 0 && error != EINVAL)
    throw Error(ErrorCode::kIoError, "cannot fsync " + path + ": " + std::strerror(error));
}

namespace {
std::string to_hex(const unsigned char* digest, unsigned int length) {
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(hex[digest[i] >> 4]);
    out.push_back(hex[digest[i] & 15]);
  }
  return out;
}
}  // namespace

std::string sha256_bytes(const void* data, size_t size) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_Digest(data, size, digest, &length, EVP_sha256(), nullptr);
  return to_hex(digest, length);
}

std::string sha256_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "file not found: " + path);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) EVP_DigestUpdate(ctx, buffer.data(), static_cast<size_t>(in.gcount()));
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(ctx, digest, &length);
  EVP_MD_CTX_free(ctx);
  return to_hex(digest, length);
}

std::string utc_timestamp() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buffer;
}

}  // namespace feu
