// Crash-safe file output: nothing half-written is ever visible under its
// final name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace feu {

// Writes go to a temporary sibling ("<path>.tmp-<pid>-<n>"); commit() fsyncs
// it, renames it over `path` and fsyncs the directory. Destroyed without
// commit() (error, exception), the temporary is removed.
class AtomicFile {
 public:
  explicit AtomicFile(std::string final_path);
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  ~AtomicFile();

  const std::string& temp_path() const { return temp_path_; }
  const std::string& final_path() const { return final_path_; }
  void commit();

 private:
  std::string final_path_;
  std::string temp_path_;
  bool committed_ = false;
};

// Reads a whole file. Errors: not_found, io_error.
std::vector<uint8_t> read_file(const std::string& path);
// Writes bytes through an AtomicFile.
void write_file_atomic(const std::string& path, const void* data, size_t size);
void write_file_atomic(const std::string& path, const std::string& text);
// fsync a file or a directory by path.
void fsync_path(const std::string& path);

// Lower-case hex SHA-256 of a file / of bytes.
std::string sha256_file(const std::string& path);
std::string sha256_bytes(const void* data, size_t size);

// UTC time as ISO 8601, e.g. "2026-11-27T05:03:24Z".
std::string utc_timestamp();

}  // namespace feu
