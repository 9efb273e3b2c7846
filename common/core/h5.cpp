#include "core/h5.h"

#include <hdf5.h>

#include <cstring>
#include <filesystem>
#include <mutex>
#include <sstream>

#include "core/error.h"

namespace feu::h5 {
namespace {

std::recursive_mutex& hdf5_lock() {
  static std::recursive_mutex lock;
  return lock;
}

// Owns one HDF5 identifier and closes it with the matching H5*close.
class Handle {
 public:
  using Closer = herr_t (*)(hid_t);
  Handle(hid_t id, Closer closer) : id_(id), closer_(closer) {}
  Handle(Handle&& other) noexcept : id_(other.id_), closer_(other.closer_) { other.id_ = -1; }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle& operator=(Handle&&) = delete;
  ~Handle() {
    if (id_ >= 0) closer_(id_);
  }
  hid_t get() const { return id_; }
  bool ok() const { return id_ >= 0; }

 private:
  hid_t id_;
  Closer closer_;
};

void silence_hdf5() {
  static std::once_flag once;
  std::call_once(once, [] { H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr); });
}

std::string where(const std::string& file, const std::string& name) {
  return file + ":" + name;
}

Shape dataspace_shape(hid_t space) {
  int rank = H5Sget_simple_extent_ndims(space);
  if (rank < 0) return {};
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(space, dims.data(), nullptr);
  return Shape(dims.begin(), dims.end());
}

void ensure_parent_groups(hid_t file, const std::string& name) {
  size_t pos = 0;
  while ((pos = name.find('/', pos + 1)) != std::string::npos) {
    std::string group = name.substr(0, pos);
    if (group.empty()) continue;
    if (H5Lexists(file, group.c_str(), H5P_DEFAULT) > 0) continue;
    Handle g(H5Gcreate2(file, group.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose);
    if (!g.ok()) throw Error(ErrorCode::kIoError, "cannot create HDF5 group " + group);
  }
}

bool link_exists(hid_t file, const std::string& name) {
  if (name == "/" || name.empty()) return true;
  // H5Lexists fails on a missing intermediate group, so walk the path.
  size_t pos = 0;
  while (true) {
    size_t next = name.find('/', pos + 1);
    std::string prefix = name.substr(0, next);
    if (!prefix.empty() && prefix != "/" && H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0)
      return false;
    if (next == std::string::npos) return true;
    pos = next;
  }
}

template <typename T>
hid_t memory_type();
template <> hid_t memory_type<float>() { return H5T_NATIVE_FLOAT; }
template <> hid_t memory_type<double>() { return H5T_NATIVE_DOUBLE; }
template <> hid_t memory_type<int64_t>() { return H5T_NATIVE_INT64; }
template <> hid_t memory_type<int32_t>() { return H5T_NATIVE_INT32; }
template <> hid_t memory_type<uint8_t>() { return H5T_NATIVE_UINT8; }

}  // namespace

int64_t numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_string(const Shape& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

File File::open_read(const std::string& path) {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  silence_hdf5();
  if (!std::filesystem::exists(path))
    throw Error(ErrorCode::kNotFound, "file not found: " + path);
  if (H5Fis_hdf5(path.c_str()) <= 0)
    throw Error(ErrorCode::kCorruptFile, "not an HDF5 file (or corrupt): " + path);
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  if (id < 0) throw Error(ErrorCode::kCorruptFile, "cannot open HDF5 file: " + path);
  return File(id, path);
}

File File::open_rw(const std::string& path) {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  silence_hdf5();
  if (!std::filesystem::exists(path))
    throw Error(ErrorCode::kNotFound, "file not found: " + path);
  hid_t id = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (id < 0) throw Error(ErrorCode::kCorruptFile, "cannot open HDF5 file for writing: " + path);
  return File(id, path);
}

File File::create(const std::string& path) {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  silence_hdf5();
  hid_t id = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (id < 0) throw Error(ErrorCode::kIoError, "cannot create HDF5 file: " + path);
  return File(id, path);
}

File::File(File&& other) noexcept : id_(other.id_), path_(std::move(other.path_)) {
  other.id_ = -1;
}

File& File::operator=(File&& other) noexcept {
  if (this != &other) {
    close();
    id_ = other.id_;
    path_ = std::move(other.path_);
    other.id_ = -1;
  }
  return *this;
}

File::~File() { close(); }

void File::close() {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  if (id_ >= 0) {
    H5Fflush(id_, H5F_SCOPE_LOCAL);
    H5Fclose(id_);
    id_ = -1;
  }
}

bool File::has(const std::string& name) const {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  return link_exists(id_, name);
}

bool File::is_group(const std::string& name) const {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  if (!link_exists(id_, name)) return false;
  // The object's identifier type, not H5Oget_info_by_name: its signature changed in HDF5 1.12.
  Handle object(H5Oopen(id_, name.c_str(), H5P_DEFAULT), H5Oclose);
  return object.ok() && H5Iget_type(object.get()) == H5I_GROUP;
}

std::vector<std::string> File::list(const std::string& group) const {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  if (!link_exists(id_, group))
    throw Error(ErrorCode::kNotFound, "missing HDF5 group " + where(path_, group));
  Handle g(H5Gopen2(id_, group.c_str(), H5P_DEFAULT), H5Gclose);
  if (!g.ok()) throw Error(ErrorCode::kCorruptFile, "not an HDF5 group: " + where(path_, group));
  H5G_info_t info;
  H5Gget_info(g.get(), &info);
  std::vector<std::string> names;
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    ssize_t size = H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, nullptr, 0,
                                      H5P_DEFAULT);
    std::string name(static_cast<size_t>(size), '\0');
    H5Lget_name_by_idx(g.get(), ".", H5_INDEX_NAME, H5_ITER_INC, i, name.data(), name.size() + 1,
                       H5P_DEFAULT);
    names.push_back(name);
  }
  return names;
}

Shape File::shape(const std::string& dataset) const {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  if (!link_exists(id_, dataset))
    throw Error(ErrorCode::kNotFound, "missing HDF5 dataset " + where(path_, dataset));
  Handle d(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.ok()) throw Error(ErrorCode::kCorruptFile, "cannot open dataset " + where(path_, dataset));
  Handle space(H5Dget_space(d.get()), H5Sclose);
  return dataspace_shape(space.get());
}

namespace {

template <typename T>
std::vector<T> read_numeric(hid_t file, const std::string& path, const std::string& dataset,
                            Shape* shape_out) {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  if (!link_exists(file, dataset))
    throw Error(ErrorCode::kNotFound, "missing HDF5 dataset " + where(path, dataset));
  Handle d(H5Dopen2(file, dataset.c_str(), H5P_DEFAULT), H5Dclose);
  if (!d.ok()) throw Error(ErrorCode::kCorruptFile, "cannot open dataset " + where(path, dataset));
  Handle type(H5Dget_type(d.get()), H5Tclose);
  H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    throw Error(ErrorCode::kCorruptFile,
                "dataset " + where(path, dataset) + " is not numeric (expected a number array)");
  Handle space(H5Dget_space(d.get()), H5Sclose);
  Shape shape = dataspace_shape(space.get());
  std::vector<T> data(static_cast<size_t>(numel(shape)));
  if (!data.empty() &&
      H5Dread(d.get(), memory_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data.data()) < 0)
    throw Error(ErrorCode::kCorruptFile, "cannot read dataset " + where(path, dataset));
  if (shape_out) *shape_out = shape;
  return data;
}

template <typename T>
void write_numeric(hid_t file, const std::string& path, const std::string& dataset, const T* data,
                   const Shape& shape, int64_t chunk_rows) {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  ensure_parent_groups(file, dataset);
  if (link_exists(file, dataset)) H5Ldelete(file, dataset.c_str(), H5P_DEFAULT);
  std::vector<hsize_t> dims(shape.begin(), shape.end());
  Handle space(shape.empty() ? H5Screate(H5S_SCALAR)
                             : H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr),
               H5Sclose);
  Handle props(H5Pcreate(H5P_DATASET_CREATE), H5Pclose);
  if (chunk_rows > 0 && !shape.empty() && shape[0] > 0 && numel(shape) > 0) {
    std::vector<hsize_t> chunk = dims;
    chunk[0] = static_cast<hsize_t>(std::min<int64_t>(chunk_rows, shape[0]));
    H5Pset_chunk(props.get(), static_cast<int>(chunk.size()), chunk.data());
    H5Pset_deflate(props.get(), 1);
  }
  Handle d(H5Dcreate2(file, dataset.c_str(), memory_type<T>(), space.get(), H5P_DEFAULT,
                      props.get(), H5P_DEFAULT),
           H5Dclose);
  if (!d.ok()) throw Error(ErrorCode::kIoError, "cannot create dataset " + where(path, dataset));
  if (numel(shape) > 0 &&
      H5Dwrite(d.get(), memory_type<T>(), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) < 0)
    throw Error(ErrorCode::kIoError, "cannot write dataset " + where(path, dataset));
}

Handle open_object(hid_t file, const std::string& path, const std::string& object) {
  std::string name = object.empty() ? "/" : object;
  if (!link_exists(file, name))
    throw Error(ErrorCode::kNotFound, "missing HDF5 object " + where(path, name));
  Handle o(H5Oopen(file, name.c_str(), H5P_DEFAULT), H5Oclose);
  if (!o.ok()) throw Error(ErrorCode::kCorruptFile, "cannot open " + where(path, name));
  return o;
}

Handle open_attr(hid_t object, const std::string& path, const std::string& obj_name,
                 const std::string& name) {
  if (H5Aexists(object, name.c_str()) <= 0)
    throw Error(ErrorCode::kNotFound,
                "missing HDF5 attribute '" + name + "' on " + where(path, obj_name));
  return Handle(H5Aopen(object, name.c_str(), H5P_DEFAULT), H5Aclose);
}

template <typename T>
std::vector<T> read_attr_numeric(hid_t file, const std::string& path, const std::string& object,
                                 const std::string& name) {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  Handle o = open_object(file, path, object);
  Handle a = open_attr(o.get(), path, object, name);
  Handle type(H5Aget_type(a.get()), H5Tclose);
  H5T_class_t cls = H5Tget_class(type.get());
  if (cls != H5T_FLOAT && cls != H5T_INTEGER)
    throw Error(ErrorCode::kCorruptFile,
                "attribute '" + name + "' on " + where(path, object) + " is not a number");
  Handle space(H5Aget_space(a.get()), H5Sclose);
  std::vector<T> values(static_cast<size_t>(numel(dataspace_shape(space.get()))));
  H5Aread(a.get(), memory_type<T>(), values.data());
  return values;
}

void delete_attr_if_present(hid_t object, const std::string& name) {
  if (H5Aexists(object, name.c_str()) > 0) H5Adelete(object, name.c_str());
}

template <typename T>
void write_attr_numeric(hid_t file, const std::string& path, const std::string& object,
                        const std::string& name, const T* values, size_t count, bool scalar) {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  Handle o = open_object(file, path, object);
  delete_attr_if_present(o.get(), name);
  hsize_t dims[1] = {count};
  Handle space(scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, dims, nullptr), H5Sclose);
  Handle a(H5Acreate2(o.get(), name.c_str(), memory_type<T>(), space.get(), H5P_DEFAULT,
                      H5P_DEFAULT),
           H5Aclose);
  if (!a.ok() || H5Awrite(a.get(), memory_type<T>(), values) < 0)
    throw Error(ErrorCode::kIoError, "cannot write attribute '" + name + "' on " + where(path, object));
}

}  // namespace

std::vector<float> File::read_float(const std::string& dataset, Shape* shape) const {
  return read_numeric<float>(id_, path_, dataset, shape);
}
std::vector<double> File::read_double(const std::string& dataset, Shape* shape) const {
  return read_numeric<double>(id_, path_, dataset, shape);
}
std::vector<int64_t> File::read_int64(const std::string& dataset, Shape* shape) const {
  return read_numeric<int64_t>(id_, path_, dataset, shape);
}
std::vector<uint8_t> File::read_uint8(const std::string& dataset, Shape* shape) const {
  return read_numeric<uint8_t>(id_, path_, dataset, shape);
}

std::vector<std::string> File::read_strings(const std::string& dataset) const {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  if (!link_exists(id_, dataset))
    throw Error(ErrorCode::kNotFound, "missing HDF5 dataset " + where(path_, dataset));
  Handle d(H5Dopen2(id_, dataset.c_str(), H5P_DEFAULT), H5Dclose);
  Handle type(H5Dget_type(d.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw Error(ErrorCode::kCorruptFile, "dataset " + where(path_, dataset) + " is not strings");
  Handle space(H5Dget_space(d.get()), H5Sclose);
  size_t count = static_cast<size_t>(numel(dataspace_shape(space.get())));
  std::vector<std::string> out;
  if (H5Tis_variable_str(type.get()) > 0) {
    std::vector<char*> raw(count, nullptr);
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5T_CSET_UTF8);
    if (count && H5Dread(d.get(), mem.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0)
      throw Error(ErrorCode::kCorruptFile, "cannot read strings " + where(path_, dataset));
    for (char* s : raw) out.emplace_back(s ? s : "");
    if (count) H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, raw.data());
  } else {
    size_t size = H5Tget_size(type.get());
    std::vector<char> raw(count * size);
    if (count && H5Dread(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0)
      throw Error(ErrorCode::kCorruptFile, "cannot read strings " + where(path_, dataset));
    for (size_t i = 0; i < count; ++i) {
      const char* s = raw.data() + i * size;
      out.emplace_back(s, strnlen(s, size));
    }
  }
  return out;
}

void File::write_float(const std::string& dataset, const float* data, const Shape& shape,
                       int64_t chunk_rows) {
  write_numeric<float>(id_, path_, dataset, data, shape, chunk_rows);
}
void File::write_int64(const std::string& dataset, const int64_t* data, const Shape& shape) {
  write_numeric<int64_t>(id_, path_, dataset, data, shape, 0);
}
void File::write_int32(const std::string& dataset, const int32_t* data, const Shape& shape) {
  write_numeric<int32_t>(id_, path_, dataset, data, shape, 0);
}
void File::write_uint8(const std::string& dataset, const uint8_t* data, const Shape& shape) {
  write_numeric<uint8_t>(id_, path_, dataset, data, shape, 0);
}

void File::write_strings(const std::string& dataset, const std::vector<std::string>& values) {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  ensure_parent_groups(id_, dataset);
  if (link_exists(id_, dataset)) H5Ldelete(id_, dataset.c_str(), H5P_DEFAULT);
  hsize_t dims[1] = {values.size()};
  Handle space(H5Screate_simple(1, dims, nullptr), H5Sclose);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle d(H5Dcreate2(id_, dataset.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT,
                      H5P_DEFAULT),
           H5Dclose);
  std::vector<const char*> raw;
  for (const auto& v : values) raw.push_back(v.c_str());
  if (!d.ok() ||
      (!raw.empty() && H5Dwrite(d.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, raw.data()) < 0))
    throw Error(ErrorCode::kIoError, "cannot write strings " + where(path_, dataset));
}

void File::create_group(const std::string& group) {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  ensure_parent_groups(id_, group + "/");
}

bool File::has_attr(const std::string& object, const std::string& name) const {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  if (!link_exists(id_, object.empty() ? "/" : object)) return false;
  Handle o = open_object(id_, path_, object);
  return H5Aexists(o.get(), name.c_str()) > 0;
}

std::string File::attr_string(const std::string& object, const std::string& name) const {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  Handle o = open_object(id_, path_, object);
  Handle a = open_attr(o.get(), path_, object, name);
  Handle type(H5Aget_type(a.get()), H5Tclose);
  if (H5Tget_class(type.get()) != H5T_STRING)
    throw Error(ErrorCode::kCorruptFile,
                "attribute '" + name + "' on " + where(path_, object) + " is not a string");
  if (H5Tis_variable_str(type.get()) > 0) {
    char* raw = nullptr;
    Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
    H5Tset_size(mem.get(), H5T_VARIABLE);
    H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
    H5Aread(a.get(), mem.get(), &raw);
    std::string value = raw ? raw : "";
    H5free_memory(raw);
    return value;
  }
  size_t size = H5Tget_size(type.get());
  std::string value(size, '\0');
  H5Aread(a.get(), type.get(), value.data());
  value.resize(strnlen(value.c_str(), size));
  return value;
}

int64_t File::attr_int(const std::string& object, const std::string& name) const {
  auto values = read_attr_numeric<int64_t>(id_, path_, object, name);
  if (values.size() != 1)
    throw Error(ErrorCode::kCorruptFile, "attribute '" + name + "' on " + where(path_, object) +
                                             " is not a single number");
  return values[0];
}

double File::attr_double(const std::string& object, const std::string& name) const {
  auto values = read_attr_numeric<double>(id_, path_, object, name);
  if (values.size() != 1)
    throw Error(ErrorCode::kCorruptFile, "attribute '" + name + "' on " + where(path_, object) +
                                             " is not a single number");
  return values[0];
}

std::vector<double> File::attr_doubles(const std::string& object, const std::string& name) const {
  return read_attr_numeric<double>(id_, path_, object, name);
}

void File::set_attr(const std::string& object, const std::string& name, const std::string& value) {
  std::lock_guard<std::recursive_mutex> guard(hdf5_lock());
  Handle o = open_object(id_, path_, object);
  delete_attr_if_present(o.get(), name);
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose);
  H5Tset_size(type.get(), H5T_VARIABLE);
  H5Tset_cset(type.get(), H5T_CSET_UTF8);
  Handle space(H5Screate(H5S_SCALAR), H5Sclose);
  Handle a(H5Acreate2(o.get(), name.c_str(), type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT),
           H5Aclose);
  const char* raw = value.c_str();
  if (!a.ok() || H5Awrite(a.get(), type.get(), &raw) < 0)
    throw Error(ErrorCode::kIoError, "cannot write attribute '" + name + "' on " + where(path_, object));
}

void File::set_attr(const std::string& object, const std::string& name, const char* value) {
  set_attr(object, name, std::string(value));
}

void File::set_attr(const std::string& object, const std::string& name, int64_t value) {
  write_attr_numeric<int64_t>(id_, path_, object, name, &value, 1, true);
}

void File::set_attr(const std::string& object, const std::string& name, double value) {
  write_attr_numeric<double>(id_, path_, object, name, &value, 1, true);
}

void File::set_attr(const std::string& object, const std::string& name,
                    const std::vector<double>& values) {
  write_attr_numeric<double>(id_, path_, object, name, values.data(), values.size(), false);
}

}  // namespace feu::h5
