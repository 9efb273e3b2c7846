// HDF5 files as feu uses them: named n-d datasets (float32, int64, uint8,
// strings) and scalar attributes, with every failure turned into a feu::Error
// that names the file and the dataset.
//
// All calls into libhdf5 are serialized by one process-wide lock because the
// Debian build of libhdf5 is not thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace feu::h5 {

using Shape = std::vector<int64_t>;

// Number of elements of a shape ([] is a scalar: 1 element).
int64_t numel(const Shape& shape);
// "[2, 3, 4]".
std::string shape_string(const Shape& shape);

class File {
 public:
  // Opens an existing file read-only. Errors: not_found, corrupt_file.
  static File open_read(const std::string& path);
  // Opens an existing file for reading and writing.
  static File open_rw(const std::string& path);
  // Creates (truncates) a file.
  static File create(const std::string& path);

  File(File&& other) noexcept;
  File& operator=(File&& other) noexcept;
  File(const File&) = delete;
  File& operator=(const File&) = delete;
  ~File();

  const std::string& path() const { return path_; }
  // Flushes and closes; further calls fail. The destructor closes too.
  void close();

  // True when `name` (a dataset or group, "a/b/c") exists.
  bool has(const std::string& name) const;
  bool is_group(const std::string& name) const;
  // Member names of a group ("/" for the root), in creation or name order.
  std::vector<std::string> list(const std::string& group) const;
  // Shape of a dataset; [] for a scalar dataset.
  Shape shape(const std::string& dataset) const;

  // Reads a numeric dataset converted to the requested element type.
  // `shape`, when given, receives the dataset's shape.
  std::vector<float> read_float(const std::string& dataset, Shape* shape = nullptr) const;
  std::vector<double> read_double(const std::string& dataset, Shape* shape = nullptr) const;
  std::vector<int64_t> read_int64(const std::string& dataset, Shape* shape = nullptr) const;
  std::vector<uint8_t> read_uint8(const std::string& dataset, Shape* shape = nullptr) const;
  // Reads a 1-d dataset of strings (fixed or variable length).
  std::vector<std::string> read_strings(const std::string& dataset) const;

  // Writes a dataset, creating intermediate groups; replaces an existing one.
  // `chunk_rows` > 0 chunks along the first axis and compresses (gzip 1).
  void write_float(const std::string& dataset, const float* data, const Shape& shape,
                   int64_t chunk_rows = 0);
  void write_int64(const std::string& dataset, const int64_t* data, const Shape& shape);
  void write_int32(const std::string& dataset, const int32_t* data, const Shape& shape);
  void write_uint8(const std::string& dataset, const uint8_t* data, const Shape& shape);
  void write_strings(const std::string& dataset, const std::vector<std::string>& values);
  void create_group(const std::string& group);

  // Attributes on an object ("/" is the root).
  bool has_attr(const std::string& object, const std::string& name) const;
  std::string attr_string(const std::string& object, const std::string& name) const;
  int64_t attr_int(const std::string& object, const std::string& name) const;
  double attr_double(const std::string& object, const std::string& name) const;
  std::vector<double> attr_doubles(const std::string& object, const std::string& name) const;
  void set_attr(const std::string& object, const std::string& name, const std::string& value);
  void set_attr(const std::string& object, const std::string& name, const char* value);
  void set_attr(const std::string& object, const std::string& name, int64_t value);
  void set_attr(const std::string& object, const std::string& name, double value);
  void set_attr(const std::string& object, const std::string& name, const std::vector<double>& values);

 private:
  File(int64_t id, std::string path) : id_(id), path_(std::move(path)) {}
  int64_t id_ = -1;
  std::string path_;
};

}  // namespace feu::h5
