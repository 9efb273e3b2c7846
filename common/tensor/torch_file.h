// Reads PyTorch files (TorchScript archives and torch.save zips) as plain data.
//
// A PyTorch file is a zip whose `<dir>/data.pkl` pickle describes an object tree and whose
// `<dir>/data/<key>` entries hold the tensors' bytes. Loading it with torch::jit::load or
// Python's pickle runs code the file names (a TorchScript class's __setstate__, any global);
// this reader runs none: it interprets only the pickle opcodes torch.save and torch.jit.save
// emit, resolves only allow-listed names (tensor rebuilds, storage types, dtypes,
// collections.OrderedDict) and reads a TorchScript module (`__torch__.*`) as a record of its
// attributes without instantiating it. Anything else is a typed error naming the file.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace feu::torch_file {

class Value;
using ValuePtr = std::shared_ptr<const Value>;

// One object of the file's pickle. Trees returned by read() are acyclic and shallow, so they
// can be walked recursively.
class Value {
 public:
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kFloat,
    kString,
    kBytes,
    kTuple,
    kList,
    kDict,     // dict or collections.OrderedDict, entries in file order
    kRecord,   // an instance of a TorchScript class: its class name and BUILD state
    kTensor,   // a CPU tensor viewing a storage
    kStorage,  // a storage (flat typed data that tensors view), as a 1-D CPU tensor
    kGlobal,   // a name the file refers to but feu never resolves, e.g. "torch.float16"
  };

  Kind kind() const { return kind_; }
  static const char* kind_name(Kind kind);

  // Typed access. Another kind is a corrupt_file error naming both kinds; callers that can
  // name the entry check kind() first.
  bool as_bool() const;
  int64_t as_int() const;
  double as_double() const;              // kFloat or kInt
  const std::string& as_string() const;  // kString, kBytes, or kGlobal's dotted name
  const at::Tensor& as_tensor() const;   // kTensor or kStorage
  const std::vector<ValuePtr>& items() const;                          // kTuple, kList
  const std::vector<std::pair<ValuePtr, ValuePtr>>& entries() const;  // kDict
  const std::string& class_name() const;  // kRecord, e.g. "__torch__.model.CLIP"
  // kRecord: what BUILD gave it (a TorchScript module's attributes as a string-keyed dict;
  // a class with __getstate__ has its state as is), nullptr when it has none.
  const Value* state() const;

  // A dict's value under a string key (the last such entry), or a record's attribute;
  // nullptr when absent or when this is neither a dict nor a record.
  const Value* find(const std::string& key) const;

 private:
  friend class Unpickler;
  explicit Value(Kind kind) : kind_(kind) {}
  [[noreturn]] void wrong_kind(const char* expected) const;

  Kind kind_;
  bool bool_ = false;
  int64_t int_ = 0;
  double float_ = 0.0;
  std::string text_;  // string, bytes, global name, record class name
  std::vector<ValuePtr> items_;
  std::vector<std::pair<ValuePtr, ValuePtr>> entries_;
  ValuePtr state_;
  at::Tensor tensor_;
};

// Reads the object tree of a PyTorch file. Every tensor is on the CPU in its stored dtype
// (storage locations such as cuda:0 are ignored); tensors that shared a storage when saved
// share it here. Errors: not_found (no file), io_error, corrupt_file (not a zip, truncated,
// no single `<dir>/data.pkl`, a malformed pickle, a tensor outside its storage, a storage
// whose entry has another size, objects nested deeper than 100 or containing themselves),
// unsupported (a global or opcode outside the subset, big-endian data, the pre-1.6 format).
ValuePtr read(const std::string& path);

// Every tensor reachable from `root`, named by its dotted path of record attributes, dict
// keys and list indices, as torch's named_parameters()/named_buffers() name a module's
// tensors ("visual.conv1.weight"); other tensor attributes come along. Errors: corrupt_file
// naming `source` when two paths give the same name.
std::map<std::string, at::Tensor> named_tensors(const Value& root, const std::string& source);

}  // namespace feu::torch_file
