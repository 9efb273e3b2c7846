// A restricted reader of PyTorch zips: libzip for the archive, and a pickle interpreter that
// knows only the opcodes torch.save / torch.jit.save emit and only allow-listed names, each of
// which it implements itself as a data constructor. Nothing the file names is ever called.
#include "tensor/torch_file.h"

#include <ATen/ATen.h>
#include <zip.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"

namespace feu::torch_file {
namespace {

// Real checkpoints' pickles are well under 1 MiB and a few thousand objects; the limits only
// keep a hostile file from exhausting memory or the C++ stack.
constexpr uint64_t kMaxPickleBytes = 64ull << 20;
constexpr size_t kMaxObjects = 1u << 20;     // values made, stack entries, memo entries
constexpr size_t kMaxDepth = 100;            // nesting of containers
constexpr uint64_t kMaxTreeSize = 1u << 22;  // objects counted once per path (shared ones repeat)
constexpr size_t kMaxRank = 64;
// Deflate expands at most 1032:1; a larger claim is a lie meant to make us allocate.
constexpr uint64_t kMaxDeflateRatio = 1032;

struct StorageType {
  const char* name;
  at::ScalarType dtype;
};
constexpr StorageType kStorageTypes[] = {
    {"torch.FloatStorage", at::kFloat},
    {"torch.DoubleStorage", at::kDouble},
    {"torch.HalfStorage", at::kHalf},
    {"torch.BFloat16Storage", at::kBFloat16},
    {"torch.LongStorage", at::kLong},
    {"torch.IntStorage", at::kInt},
    {"torch.ShortStorage", at::kShort},
    {"torch.CharStorage", at::kChar},
    {"torch.ByteStorage", at::kByte},
    {"torch.BoolStorage", at::kBool},
    {"torch.ComplexFloatStorage", at::kComplexFloat},
    {"torch.ComplexDoubleStorage", at::kComplexDouble},
    {"torch.UntypedStorage", at::kByte},
};

const StorageType* find_storage_type(const std::string& name) {
  for (const StorageType& type : kStorageTypes)
    if (name == type.name) return &type;
  return nullptr;
}

// Names that stand for themselves in the tree (a pickled dtype is GLOBAL torch.float16).
bool is_dtype_name(const std::string& name) {
  static const char* const kDtypes[] = {
      "torch.float32", "torch.float",     "torch.float64",    "torch.double", "torch.float16",
      "torch.half",    "torch.bfloat16",  "torch.int64",      "torch.long",   "torch.int32",
      "torch.int",     "torch.int16",     "torch.short",      "torch.int8",   "torch.uint8",
      "torch.bool",    "torch.complex64", "torch.complex128", "torch.cfloat", "torch.cdouble"};
  for (const char* dtype : kDtypes)
    if (name == dtype) return true;
  return false;
}

// The callables the reader implements itself (see Unpickler::reduce).
const char* const kRebuildTensor = "torch._utils._rebuild_tensor_v2";
const char* const kRebuildParameter = "torch._utils._rebuild_parameter";
const char* const kRebuildParameterWithState = "torch._utils._rebuild_parameter_with_state";
const char* const kOrderedDict = "collections.OrderedDict";
const char* const kRestoreTypeTag = "torch.jit._pickle.restore_type_tag";

bool is_typed_list_builder(const std::string& name) {
  return name == "torch.jit._pickle.build_intlist" ||
         name == "torch.jit._pickle.build_doublelist" ||
         name == "torch.jit._pickle.build_boollist" || name == "torch.jit._pickle.build_tensorlist";
}

// A module name, or a full dotted name, under TorchScript's own namespace.
bool is_torchscript_class(const std::string& name) {
  return name == "__torch__" || name.rfind("__torch__.", 0) == 0;
}

bool is_allowed_global(const std::string& module, const std::string& full) {
  return is_torchscript_class(module) || find_storage_type(full) || is_dtype_name(full) ||
         full == kRebuildTensor || full == kRebuildParameter ||
         full == kRebuildParameterWithState || full == kOrderedDict || full == kRestoreTypeTag ||
         is_typed_list_builder(full);
}

// Every pickle opcode by its byte, for messages; the reader runs the ones marked supported.
struct Opcode {
  uint8_t byte;
  const char* name;
  bool supported;
};
constexpr Opcode kOpcodes[] = {
    {'(', "MARK", true},           {'.', "STOP", true},
    {'0', "POP", false},           {'1', "POP_MARK", false},
    {'2', "DUP", false},           {'F', "FLOAT", false},
    {'I', "INT", false},           {'J', "BININT", true},
    {'K', "BININT1", true},        {'L', "LONG", false},
    {'M', "BININT2", true},        {'N', "NONE", true},
    {'P', "PERSID", false},        {'Q', "BINPERSID", true},
    {'R', "REDUCE", true},         {'S', "STRING", false},
    {'T', "BINSTRING", false},     {'U', "SHORT_BINSTRING", false},
    {'V', "UNICODE", false},       {'X', "BINUNICODE", true},
    {'a', "APPEND", true},         {'b', "BUILD", true},
    {'c', "GLOBAL", true},         {'d', "DICT", false},
    {'}', "EMPTY_DICT", true},     {'e', "APPENDS", true},
    {'g', "GET", false},           {'h', "BINGET", true},
    {'i', "INST", false},          {'j', "LONG_BINGET", true},
    {'l', "LIST", false},          {']', "EMPTY_LIST", true},
    {'o', "OBJ", false},           {'p', "PUT", false},
    {'q', "BINPUT", true},         {'r', "LONG_BINPUT", true},
    {'s', "SETITEM", true},        {'t', "TUPLE", true},
    {')', "EMPTY_TUPLE", true},    {'u', "SETITEMS", true},
    {'G', "BINFLOAT", true},       {0x80, "PROTO", true},
    {0x81, "NEWOBJ", true},        {0x82, "EXT1", false},
    {0x83, "EXT2", false},         {0x84, "EXT4", false},
    {0x85, "TUPLE1", true},        {0x86, "TUPLE2", true},
    {0x87, "TUPLE3", true},        {0x88, "NEWTRUE", true},
    {0x89, "NEWFALSE", true},      {0x8a, "LONG1", true},
    {0x8b, "LONG4", false},        {'B', "BINBYTES", true},
    {'C', "SHORT_BINBYTES", true}, {0x8c, "SHORT_BINUNICODE", true},
    {0x8d, "BINUNICODE8", true},   {0x8e, "BINBYTES8", true},
    {0x8f, "EMPTY_SET", false},    {0x90, "ADDITEMS", false},
    {0x91, "FROZENSET", false},    {0x92, "NEWOBJ_EX", false},
    {0x93, "STACK_GLOBAL", true},  {0x94, "MEMOIZE", true},
    {0x95, "FRAME", true},         {0x96, "BYTEARRAY8", false},
    {0x97, "NEXT_BUFFER", false},  {0x98, "READONLY_BUFFER", false},
};

const Opcode* find_opcode(uint8_t byte) {
  for (const Opcode& op : kOpcodes)
    if (op.byte == byte) return &op;
  return nullptr;
}

std::string hex_byte(uint8_t byte) {
  const char* digits = "0123456789abcdef";
  return std::string("0x") + digits[byte >> 4] + digits[byte & 15];
}

// A name a GLOBAL may carry: a dotted Python identifier path.
bool is_dotted_name(const std::string& s) {
  if (s.empty() || s.size() > 256) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.';
  });
}

std::string shape_text(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

// The zip side: entries by name, read whole with libzip's CRC check.
class Zip {
 public:
  explicit Zip(const std::string& path) : path_(path) {
    std::error_code ec;
    file_size_ = std::filesystem::file_size(path, ec);
    if (ec && !std::filesystem::exists(path))
      throw Error(ErrorCode::kNotFound, "PyTorch file not found: " + path);
    int code = 0;
    zip_ = zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code);
    if (zip_) return;
    if (code == ZIP_ER_NOENT) throw Error(ErrorCode::kNotFound, "PyTorch file not found: " + path);
    if (code == ZIP_ER_OPEN || code == ZIP_ER_READ || code == ZIP_ER_SEEK || code == ZIP_ER_MEMORY)
      throw Error(ErrorCode::kIoError,
                  "cannot read PyTorch file " + path + ": " + error_text(code));
    if (code == ZIP_ER_NOZIP && starts_like_legacy_pickle())
      throw Error(ErrorCode::kUnsupported,
                  "PyTorch file " + path +
                      " uses the format of torch.save before PyTorch 1.6 (a bare pickle); expected "
                      "a zip: re-save it with a current torch.save");
    throw Error(ErrorCode::kCorruptFile, "PyTorch file " + path +
                                             " is not a readable zip archive (" + error_text(code) +
                                             "); expected a torch.save or TorchScript zip");
  }
  ~Zip() { zip_discard(zip_); }
  Zip(const Zip&) = delete;
  Zip& operator=(const Zip&) = delete;

  // "<dir>/" of the one top-level directory holding data.pkl: "archive/" for TorchScript,
  // the file's stem for torch.save.
  std::string record_prefix() const {
    std::vector<std::string> prefixes;
    const zip_int64_t count = zip_get_num_entries(zip_, 0);
    for (zip_int64_t i = 0; i < count; ++i) {
      const char* name = zip_get_name(zip_, static_cast<zip_uint64_t>(i), ZIP_FL_ENC_RAW);
      if (!name) continue;
      std::string entry = name;
      const std::string suffix = "/data.pkl";
      if (entry.size() > suffix.size() &&
          entry.compare(entry.size() - suffix.size(), suffix.size(), suffix) == 0 &&
          entry.find('/') == entry.size() - suffix.size())
        prefixes.push_back(entry.substr(0, entry.size() - suffix.size() + 1));
    }
    if (prefixes.size() != 1)
      throw Error(ErrorCode::kCorruptFile,
                  "PyTorch file " + path_ + " has " + std::to_string(prefixes.size()) +
                      " top-level <dir>/data.pkl entries; expected exactly one (a torch.save or "
                      "TorchScript zip)");
    return prefixes.front();
  }

  // Index of an entry, -1 when absent.
  zip_int64_t locate(const std::string& name) const {
    return zip_name_locate(zip_, name.c_str(), ZIP_FL_ENC_RAW);
  }

  // Uncompressed size, checked against what the file can really hold.
  uint64_t size_of(zip_int64_t index, const std::string& name) const {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip_, static_cast<zip_uint64_t>(index), 0, &st) != 0 ||
        !(st.valid & ZIP_STAT_SIZE) || !(st.valid & ZIP_STAT_COMP_SIZE) ||
        !(st.valid & ZIP_STAT_COMP_METHOD))
      throw corrupt("cannot stat entry " + name + ": " + zip_strerror(zip_));
    const bool plausible =
        st.comp_size <= file_size_ &&
        (st.comp_method == ZIP_CM_STORE ? st.size == st.comp_size
                                        : st.size <= st.comp_size * kMaxDeflateRatio + 1024);
    if (!plausible)
      throw corrupt("entry " + name + " claims " + std::to_string(st.size) + " bytes from " +
                    std::to_string(st.comp_size) + " stored ones in a file of " +
                    std::to_string(file_size_) + " bytes");
    return st.size;
  }

  // Reads an entry of exactly `size` bytes into `out`.
  void read(zip_int64_t index, const std::string& name, void* out, uint64_t size) const {
    zip_file_t* file = zip_fopen_index(zip_, static_cast<zip_uint64_t>(index), 0);
    if (!file) throw corrupt("cannot open entry " + name + ": " + zip_strerror(zip_));
    uint64_t done = 0;
    while (done < size) {
      zip_int64_t n = zip_fread(file, static_cast<char*>(out) + done, size - done);
      if (n <= 0) break;
      done += static_cast<uint64_t>(n);
    }
    // libzip checks the entry's CRC when a read reaches its end.
    char past_end;
    const zip_int64_t tail = done == size ? zip_fread(file, &past_end, 1) : -1;
    const std::string why = tail != 0 ? zip_file_strerror(file) : "";
    zip_fclose(file);
    if (done != size || tail != 0)
      throw corrupt("entry " + name + " is damaged (" + why + "; read " + std::to_string(done) +
                    " of " + std::to_string(size) + " bytes)");
  }

  std::string read_text(const std::string& name, uint64_t max_bytes) const {
    const zip_int64_t index = locate(name);
    if (index < 0) throw corrupt("has no entry " + name);
    const uint64_t size = size_of(index, name);
    if (size > max_bytes)
      throw corrupt("entry " + name + " holds " + std::to_string(size) +
                    " bytes; expected at most " + std::to_string(max_bytes));
    std::string text(size, '\0');
    read(index, name, text.data(), size);
    return text;
  }

  Error corrupt(const std::string& what) const {
    return Error(ErrorCode::kCorruptFile, "PyTorch file " + path_ + ": " + what);
  }

 private:
  static std::string error_text(int code) {
    zip_error_t error;
    zip_error_init_with_code(&error, code);
    std::string text = zip_error_strerror(&error);
    zip_error_fini(&error);
    return text;
  }

  // torch.save's old format starts with PROTO 2 and a LONG1 magic number.
  bool starts_like_legacy_pickle() const {
    std::ifstream in(path_, std::ios::binary);
    unsigned char head[3] = {0, 0, 0};
    in.read(reinterpret_cast<char*>(head), 3);
    return in.gcount() == 3 && head[0] == 0x80 && head[1] == 2 && head[2] == 0x8a;
  }

  std::string path_;
  uint64_t file_size_ = 0;
  zip_t* zip_ = nullptr;
};

}  // namespace

// The pickle machine. Values it makes are mutable while it runs and handed out as const.
class Unpickler {
 public:
  Unpickler(const std::string& path, const Zip& zip, std::string prefix, std::string pickle)
      : path_(path),
        zip_(zip),
        prefix_(std::move(prefix)),
        entry_(prefix_ + "data.pkl"),
        data_(std::move(pickle)) {}

  ~Unpickler() {
    // What the result does not hold (all of it after an error) may form cycles or deep chains:
    // unlink it first so that nothing leaks and no destructor recurses (containers_ keeps each
    // node alive meanwhile). The result itself was checked to be acyclic and shallow.
    for (const Node& node : containers_) {
      if (in_result_.count(node.get())) continue;
      node->items_.clear();
      node->entries_.clear();
      node->state_.reset();
    }
  }

  ValuePtr run() {
    Node root = interpret();
    check_tree(*root);
    return root;
  }

 private:
  using Node = std::shared_ptr<Value>;

  [[noreturn]] void fail(ErrorCode code, const std::string& what) const {
    throw Error(code, "PyTorch file " + path_ + ": " + what + " (" + entry_ + ", byte " +
                          std::to_string(op_pos_) + ")");
  }

  // --- reading the pickle bytes ---
  const unsigned char* take(uint64_t n) {
    if (n > data_.size() - pos_)
      fail(ErrorCode::kCorruptFile, "the pickle ends before its STOP opcode");
    const unsigned char* p = reinterpret_cast<const unsigned char*>(data_.data()) + pos_;
    pos_ += n;
    return p;
  }
  uint64_t read_le(int bytes) {
    const unsigned char* p = take(static_cast<uint64_t>(bytes));
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  std::string read_line() {
    const size_t end = data_.find('\n', pos_);
    if (end == std::string::npos)
      fail(ErrorCode::kCorruptFile, "the pickle ends inside a GLOBAL name");
    std::string line = data_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return line;
  }
  std::string read_bytes(uint64_t n) {
    return std::string(reinterpret_cast<const char*>(take(n)), n);
  }

  // --- values and the stack ---
  Node make(Value::Kind kind) {
    if (++made_ > kMaxObjects)
      fail(ErrorCode::kCorruptFile,
           "the pickle makes more than " + std::to_string(kMaxObjects) + " objects");
    Node node(new Value(kind));
    if (kind == Value::Kind::kTuple || kind == Value::Kind::kList || kind == Value::Kind::kDict ||
        kind == Value::Kind::kRecord)
      containers_.push_back(node);
    return node;
  }
  void push(Node node) {
    if (stack_.size() >= kMaxObjects)
      fail(ErrorCode::kCorruptFile, "the pickle's stack grows past its limit");
    stack_.push_back(std::move(node));
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  Node pop(const char* op) {
    if (stack_.size() <= floor())
      fail(ErrorCode::kCorruptFile, std::string(op) + " finds no value on the pickle stack");
    Node node = std::move(stack_.back());
    stack_.pop_back();
    return node;
  }
  Node& top(const char* op) {
    if (stack_.size() <= floor())
      fail(ErrorCode::kCorruptFile, std::string(op) + " finds no value on the pickle stack");
    return stack_.back();
  }
  std::vector<Node> pop_to_mark(const char* op) {
    if (marks_.empty()) fail(ErrorCode::kCorruptFile, std::string(op) + " has no MARK before it");
    std::vector<Node> items(
        std::make_move_iterator(stack_.begin() + static_cast<std::ptrdiff_t>(marks_.back())),
        std::make_move_iterator(stack_.end()));
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Node& expect(Node& node, Value::Kind kind, const char* op) {
    if (node->kind_ != kind)
      fail(ErrorCode::kCorruptFile, std::string(op) + " expects a " + Value::kind_name(kind) +
                                        " but finds a " + Value::kind_name(node->kind_));
    return node;
  }
  void memo_put(uint64_t index, const char* op) {
    if (memo_.size() >= kMaxObjects && !memo_.count(index))
      fail(ErrorCode::kCorruptFile, "the pickle's memo grows past its limit");
    if (stack_.empty())
      fail(ErrorCode::kCorruptFile, std::string(op) + " finds no value to memoize");
    memo_[index] = stack_.back();
  }
  void memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end())
      fail(ErrorCode::kCorruptFile,
           "memo entry " + std::to_string(index) + " is read before it is written");
    push(it->second);
  }
  Node tuple_of(std::vector<Node> items) {
    Node tuple = make(Value::Kind::kTuple);
    tuple->items_.assign(items.begin(), items.end());
    return tuple;
  }

  // --- the interpreter ---
  Node interpret() {
    while (true) {
      op_pos_ = pos_;
      const uint8_t byte = *take(1);
      const Opcode* op = find_opcode(byte);
      if (!op) fail(ErrorCode::kCorruptFile, "byte " + hex_byte(byte) + " is not a pickle opcode");
      if (!op->supported)
        fail(ErrorCode::kUnsupported,
             std::string("pickle opcode ") + op->name + " (" + hex_byte(byte) +
                 ") is outside the subset torch.save and torch.jit.save emit");
      switch (byte) {
        case 0x80: {  // PROTO
          const unsigned version = *take(1);
          if (version > 5)
            fail(ErrorCode::kUnsupported,
                 "pickle protocol " + std::to_string(version) + "; expected 2 to 5");
          break;
        }
        case 0x95: {  // FRAME: a length prefix only; its bytes are read as they come
          const uint64_t length = read_le(8);
          if (length > data_.size() - pos_)
            fail(ErrorCode::kCorruptFile, "a FRAME runs past the end of the pickle");
          break;
        }
        case '.':  // STOP
          return pop("STOP");
        case 'c': {  // GLOBAL
          std::string module = read_line();
          std::string name = read_line();
          push(global(module, name));
          break;
        }
        case 0x93: {  // STACK_GLOBAL
          Node name = pop("STACK_GLOBAL");
          Node module = pop("STACK_GLOBAL");
          expect(name, Value::Kind::kString, "STACK_GLOBAL");
          expect(module, Value::Kind::kString, "STACK_GLOBAL");
          push(global(module->text_, name->text_));
          break;
        }
        case 'q': memo_put(*take(1), "BINPUT"); break;
        case 'r': memo_put(read_le(4), "LONG_BINPUT"); break;
        case 0x94: memo_put(memo_.size(), "MEMOIZE"); break;
        case 'h': memo_get(*take(1)); break;
        case 'j': memo_get(read_le(4)); break;
        case '(':
          if (marks_.size() >= kMaxObjects) fail(ErrorCode::kCorruptFile, "too many open MARKs");
          marks_.push_back(stack_.size());
          break;
        case '}': push(make(Value::Kind::kDict)); break;
        case ']': push(make(Value::Kind::kList)); break;
        case ')': push(make(Value::Kind::kTuple)); break;
        case 't': push(tuple_of(pop_to_mark("TUPLE"))); break;
        case 0x85:
        case 0x86:
        case 0x87: {  // TUPLE1..3
          std::vector<Node> items(byte - 0x84);
          for (size_t i = items.size(); i-- > 0;) items[i] = pop(op->name);
          push(tuple_of(std::move(items)));
          break;
        }
        case 'a': {  // APPEND
          Node item = pop("APPEND");
          expect(top("APPEND"), Value::Kind::kList, "APPEND")->items_.push_back(std::move(item));
          break;
        }
        case 'e': {  // APPENDS
          std::vector<Node> items = pop_to_mark("APPENDS");
          Node& list = expect(top("APPENDS"), Value::Kind::kList, "APPENDS");
          list->items_.insert(list->items_.end(), items.begin(), items.end());
          break;
        }
        case 's': {  // SETITEM
          Node value = pop("SETITEM");
          Node key = pop("SETITEM");
          expect(top("SETITEM"), Value::Kind::kDict, "SETITEM")->entries_.emplace_back(key, value);
          break;
        }
        case 'u': {  // SETITEMS
          std::vector<Node> items = pop_to_mark("SETITEMS");
          if (items.size() % 2)
            fail(ErrorCode::kCorruptFile, "SETITEMS has an odd number of keys and values");
          Node& dict = expect(top("SETITEMS"), Value::Kind::kDict, "SETITEMS");
          for (size_t i = 0; i < items.size(); i += 2)
            dict->entries_.emplace_back(items[i], items[i + 1]);
          break;
        }
        case 'J': push(integer(static_cast<int32_t>(read_le(4)))); break;
        case 'K': push(integer(*take(1))); break;
        case 'M': push(integer(static_cast<int64_t>(read_le(2)))); break;
        case 0x8a: {  // LONG1: little-endian two's complement of n bytes
          const unsigned n = *take(1);
          if (n > 8)
            fail(ErrorCode::kUnsupported,
                 "an integer of " + std::to_string(n) + " bytes; expected at most 8");
          uint64_t v = n ? read_le(static_cast<int>(n)) : 0;
          if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);
          push(integer(static_cast<int64_t>(v)));
          break;
        }
        case 'G': {  // BINFLOAT: big-endian IEEE double
          const unsigned char* p = take(8);
          uint64_t bits = 0;
          for (int i = 0; i < 8; ++i) bits = (bits << 8) | p[i];
          Node node = make(Value::Kind::kFloat);
          std::memcpy(&node->float_, &bits, sizeof bits);
          push(node);
          break;
        }
        case 'X': push(text(Value::Kind::kString, read_le(4))); break;
        case 0x8c: push(text(Value::Kind::kString, *take(1))); break;
        case 0x8d: push(text(Value::Kind::kString, read_le(8))); break;
        case 'B': push(text(Value::Kind::kBytes, read_le(4))); break;
        case 'C': push(text(Value::Kind::kBytes, *take(1))); break;
        case 0x8e: push(text(Value::Kind::kBytes, read_le(8))); break;
        case 0x88:
        case 0x89: {  // NEWTRUE, NEWFALSE
          Node node = make(Value::Kind::kBool);
          node->bool_ = byte == 0x88;
          push(node);
          break;
        }
        case 'N': push(make(Value::Kind::kNone)); break;
        case 'Q': {  // BINPERSID
          Node id = pop("BINPERSID");
          push(storage(*id));
          break;
        }
        case 'R': {  // REDUCE
          Node args = pop("REDUCE");
          Node callable = pop("REDUCE");
          push(reduce(*callable, expect(args, Value::Kind::kTuple, "REDUCE")));
          break;
        }
        case 0x81: {  // NEWOBJ
          Node args = pop("NEWOBJ");
          Node cls = pop("NEWOBJ");
          expect(args, Value::Kind::kTuple, "NEWOBJ");
          if (cls->kind_ != Value::Kind::kGlobal || !is_torchscript_class(cls->text_))
            fail(ErrorCode::kUnsupported,
                 "NEWOBJ of " + describe(*cls) + "; expected a TorchScript class (__torch__.*)");
          // Read as a record, never instantiated: its class's code (and __setstate__) stays unread.
          Node record = make(Value::Kind::kRecord);
          record->text_ = cls->text_;
          push(record);
          break;
        }
        case 'b': {  // BUILD
          Node state = pop("BUILD");
          Node& target = top("BUILD");
          if (target->kind_ == Value::Kind::kRecord) {
            if (target->state_)
              fail(ErrorCode::kCorruptFile, "BUILD sets the state of " + target->text_ + " twice");
            target->state_ = state;
          } else if (target->kind_ != Value::Kind::kDict) {
            // An OrderedDict's BUILD only carries attributes such as a state dict's _metadata.
            fail(ErrorCode::kUnsupported, "BUILD on a " +
                                              std::string(Value::kind_name(target->kind_)) +
                                              "; expected a TorchScript record or a dict");
          }
          break;
        }
        default:
          fail(ErrorCode::kInternal,
               "opcode " + std::string(op->name) + " is marked supported but not handled");
      }
    }
  }

  Node integer(int64_t v) {
    Node node = make(Value::Kind::kInt);
    node->int_ = v;
    return node;
  }
  Node text(Value::Kind kind, uint64_t length) {
    Node node = make(kind);
    node->text_ = read_bytes(length);
    return node;
  }

  static std::string describe(const Value& v) {
    return v.kind_ == Value::Kind::kGlobal ? v.text_
                                           : std::string("a ") + Value::kind_name(v.kind_);
  }

  Node global(const std::string& module, const std::string& name) {
    if (!is_dotted_name(module) || !is_dotted_name(name))
      fail(ErrorCode::kCorruptFile,
           "a GLOBAL names something that is not a Python module and name");
    const std::string full = module + "." + name;
    if (!is_allowed_global(module, full))
      fail(ErrorCode::kUnsupported,
           "the pickle refers to " + full +
               ", which feu does not load (expected tensor rebuilds, storage types, dtypes, "
               "collections.OrderedDict or __torch__ classes)");
    Node node = make(Value::Kind::kGlobal);
    node->text_ = full;
    return node;
  }

  // The allow-listed callables, each done here as plain data.
  Node reduce(const Value& callable, const Node& args) {
    const std::string& name = callable.text_;
    const std::vector<ValuePtr>& a = args->items_;
    auto arity = [&](size_t low, size_t high) {
      if (a.size() < low || a.size() > high)
        fail(ErrorCode::kCorruptFile, name + " gets " + std::to_string(a.size()) +
                                          " arguments; expected " + std::to_string(low) +
                                          (high > low ? " to " + std::to_string(high) : ""));
    };
    if (callable.kind_ != Value::Kind::kGlobal)
      fail(ErrorCode::kCorruptFile,
           "REDUCE calls a " + std::string(Value::kind_name(callable.kind_)));
    if (name == kRebuildTensor) {
      arity(6, 7);  // storage, offset, size, stride, requires_grad, backward_hooks[, metadata]
      check_hooks(*a[5], name);
      return tensor_view(*a[0], *a[1], *a[2], *a[3]);
    }
    if (name == kRebuildParameter || name == kRebuildParameterWithState) {
      arity(name == kRebuildParameter ? 3 : 4,
            name == kRebuildParameter ? 3 : 4);  // data, requires_grad, hooks[, state]
      if (a[0]->kind_ != Value::Kind::kTensor)
        fail(ErrorCode::kCorruptFile,
             name + " rebuilds a parameter from " + describe(*a[0]) + "; expected a tensor");
      check_hooks(*a[2], name);
      Node tensor = make(Value::Kind::kTensor);
      tensor->tensor_ = a[0]->tensor_;
      return tensor;
    }
    if (name == kOrderedDict) {
      if (!a.empty())
        fail(ErrorCode::kUnsupported,
             "collections.OrderedDict with arguments; expected () followed by SETITEMS");
      return make(Value::Kind::kDict);
    }
    if (name == kRestoreTypeTag) {  // (value, TorchScript type name): the value
      arity(2, 2);
      return std::const_pointer_cast<Value>(a[0]);
    }
    if (is_typed_list_builder(name)) {  // (list,): the list
      arity(1, 1);
      if (a[0]->kind_ != Value::Kind::kList)
        fail(ErrorCode::kCorruptFile, name + " of " + describe(*a[0]) + "; expected a list");
      return std::const_pointer_cast<Value>(a[0]);
    }
    fail(ErrorCode::kUnsupported,
         "REDUCE calls " + name + ", which is a name feu keeps, not a function it runs");
  }

  void check_hooks(const Value& hooks, const std::string& name) {
    if (hooks.kind_ != Value::Kind::kDict || !hooks.entries_.empty())
      fail(ErrorCode::kUnsupported,
           name + " gets backward hooks (" + describe(hooks) + "); expected an empty OrderedDict");
  }

  std::vector<int64_t> int_tuple(const Value& v, const char* what) {
    if (v.kind_ != Value::Kind::kTuple || v.items_.size() > kMaxRank)
      fail(ErrorCode::kCorruptFile, std::string("a tensor's ") + what + " is " + describe(v) +
                                        "; expected a tuple of at most " +
                                        std::to_string(kMaxRank) + " integers");
    std::vector<int64_t> out;
    for (const ValuePtr& item : v.items_) {
      if (item->kind_ != Value::Kind::kInt || item->int_ < 0)
        fail(ErrorCode::kCorruptFile,
             std::string("a tensor's ") + what + " holds " +
                 (item->kind_ == Value::Kind::kInt ? std::to_string(item->int_) : describe(*item)) +
                 "; expected non-negative integers");
      out.push_back(item->int_);
    }
    return out;
  }

  Node tensor_view(const Value& storage, const Value& offset_value, const Value& size_value,
                   const Value& stride_value) {
    if (storage.kind_ != Value::Kind::kStorage)
      fail(ErrorCode::kCorruptFile,
           "a tensor is rebuilt from " + describe(storage) + "; expected a storage");
    if (offset_value.kind_ != Value::Kind::kInt || offset_value.int_ < 0)
      fail(ErrorCode::kCorruptFile, "a tensor's storage offset is not a non-negative integer");
    const std::vector<int64_t> size = int_tuple(size_value, "size");
    const std::vector<int64_t> stride = int_tuple(stride_value, "stride");
    if (size.size() != stride.size())
      fail(ErrorCode::kCorruptFile,
           "a tensor has size " + shape_text(size) + " but stride " + shape_text(stride));
    // The view's last element, in 128 bits: each term is below 2^126 and the sum stops
    // growing once it is past any storage.
    const int64_t available = storage.tensor_.numel();
    const bool empty = std::find(size.begin(), size.end(), 0) != size.end();
    __int128 last = offset_value.int_;
    for (size_t i = 0; i < size.size() && last < available; ++i)
      last += static_cast<__int128>(size[i] - 1) * stride[i];
    const bool inside = empty ? offset_value.int_ <= available : last < available;
    if (!inside)
      fail(ErrorCode::kCorruptFile,
           "a tensor of size " + shape_text(size) + ", stride " + shape_text(stride) +
               " at offset " + std::to_string(offset_value.int_) + " reaches past its storage of " +
               std::to_string(storage.tensor_.numel()) + " elements");
    Node tensor = make(Value::Kind::kTensor);
    tensor->tensor_ = storage.tensor_.as_strided(size, stride, offset_value.int_);
    return tensor;
  }

  // BINPERSID ('storage', <storage type>, key, location, numel): the entry data/<key>, read once
  // per key and loaded to the CPU whatever location it was saved from.
  Node storage(const Value& id) {
    const auto& f = id.items_;
    const bool well_formed =
        id.kind_ == Value::Kind::kTuple && f.size() == 5 && f[0]->kind_ == Value::Kind::kString &&
        f[0]->text_ == "storage" && f[1]->kind_ == Value::Kind::kGlobal &&
        f[2]->kind_ == Value::Kind::kString && f[3]->kind_ == Value::Kind::kString &&
        f[4]->kind_ == Value::Kind::kInt;
    if (!well_formed)
      fail(ErrorCode::kCorruptFile,
           "a persistent id is " + describe(id) +
               "; expected ('storage', storage type, key, location, numel)");
    const StorageType* type = find_storage_type(f[1]->text_);
    if (!type)
      fail(ErrorCode::kUnsupported,
           "a storage of type " + f[1]->text_ + "; expected a torch.*Storage");
    const std::string& key = f[2]->text_;
    const int64_t numel = f[4]->int_;
    const bool key_ok =
        !key.empty() && key.size() <= 64 && std::all_of(key.begin(), key.end(), [](char c) {
          return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                 c == '_';
        });
    if (!key_ok)
      fail(ErrorCode::kCorruptFile, "a storage key is not a plain name (letters, digits, _)");
    const int64_t item_size = static_cast<int64_t>(c10::elementSize(type->dtype));
    if (numel < 0 || numel > std::numeric_limits<int64_t>::max() / item_size)
      fail(ErrorCode::kCorruptFile,
           "storage " + key + " declares " + std::to_string(numel) + " elements");

    auto cached = storages_.find(key);
    if (cached != storages_.end()) {
      const at::Tensor& flat = cached->second->tensor_;
      if (flat.scalar_type() != type->dtype || flat.numel() != numel)
        fail(ErrorCode::kUnsupported,
             "storage " + key + " is read as two different types or sizes");
      return cached->second;
    }
    const std::string entry = prefix_ + "data/" + key;
    const zip_int64_t index = zip_.locate(entry);
    if (index < 0)
      fail(ErrorCode::kCorruptFile, "the pickle names storage " + entry + ", which the zip lacks");
    const uint64_t bytes = static_cast<uint64_t>(numel * item_size);
    const uint64_t entry_bytes = zip_.size_of(index, entry);
    if (entry_bytes != bytes)
      fail(ErrorCode::kCorruptFile, "storage " + entry + " declares " + std::to_string(numel) +
                                        " " + c10::toString(type->dtype) + " elements (" +
                                        std::to_string(bytes) + " bytes) but its entry holds " +
                                        std::to_string(entry_bytes) + " bytes");
    Node node = make(Value::Kind::kStorage);
    node->tensor_ = at::empty({numel}, at::TensorOptions().dtype(type->dtype));
    if (bytes) zip_.read(index, entry, node->tensor_.data_ptr(), bytes);
    storages_[key] = node;
    return node;
  }

  // Rejects cycles and nesting deeper than kMaxDepth, and bounds the size of the tree as
  // walked path by path, so that callers may recurse over it freely.
  void check_tree(const Value& root) {
    struct Done {
      bool finished = false;
      size_t height = 1;
      uint64_t size = 1;
    };
    struct Visit {
      const Value* node;
      size_t next = 0;
      size_t height = 1;
      uint64_t size = 1;
    };
    auto child = [](const Value& v, size_t i) -> const Value* {
      switch (v.kind_) {
        case Value::Kind::kTuple:
        case Value::Kind::kList: return i < v.items_.size() ? v.items_[i].get() : nullptr;
        case Value::Kind::kDict:
          if (i >= 2 * v.entries_.size()) return nullptr;
          return (i % 2 ? v.entries_[i / 2].second : v.entries_[i / 2].first).get();
        case Value::Kind::kRecord: return i == 0 ? v.state_.get() : nullptr;
        default: return nullptr;
      }
    };
    auto fold = [&](Visit& parent, const Done& c) {
      parent.height = std::max(parent.height, c.height + 1);
      parent.size = std::min(kMaxTreeSize + 1, parent.size + c.size);
      if (parent.height > kMaxDepth)
        fail(ErrorCode::kCorruptFile,
             "objects nest deeper than " + std::to_string(kMaxDepth) + " levels");
      if (parent.size > kMaxTreeSize)
        fail(ErrorCode::kCorruptFile, "shared objects make the tree larger than " +
                                          std::to_string(kMaxTreeSize) + " objects");
    };
    op_pos_ = pos_;
    std::unordered_map<const Value*, Done> seen;
    std::vector<Visit> path{{&root}};
    seen[&root];
    while (!path.empty()) {
      Visit& visit = path.back();
      if (const Value* next = child(*visit.node, visit.next)) {
        ++visit.next;
        auto [it, fresh] = seen.try_emplace(next);
        if (fresh) {
          if (path.size() >= kMaxDepth)
            fail(ErrorCode::kCorruptFile,
                 "objects nest deeper than " + std::to_string(kMaxDepth) + " levels");
          path.push_back({next});
        } else if (!it->second.finished) {
          fail(ErrorCode::kCorruptFile,
               "a " + std::string(Value::kind_name(next->kind_)) + " contains itself");
        } else {
          fold(visit, it->second);
        }
        continue;
      }
      const Done done{true, visit.height, visit.size};
      seen[visit.node] = done;
      path.pop_back();
      if (!path.empty()) fold(path.back(), done);
    }
    for (const auto& [node, done] : seen) in_result_.insert(node);
  }

  const std::string& path_;
  const Zip& zip_;
  const std::string prefix_;
  const std::string entry_;
  const std::string data_;
  uint64_t pos_ = 0;
  uint64_t op_pos_ = 0;
  size_t made_ = 0;
  std::unordered_set<const Value*> in_result_;
  std::vector<Node> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, Node> memo_;
  std::vector<Node> containers_;
  std::unordered_map<std::string, Node> storages_;
};

const char* Value::kind_name(Kind kind) {
  switch (kind) {
    case Kind::kNone: return "None";
    case Kind::kBool: return "bool";
    case Kind::kInt: return "int";
    case Kind::kFloat: return "float";
    case Kind::kString: return "string";
    case Kind::kBytes: return "bytes";
    case Kind::kTuple: return "tuple";
    case Kind::kList: return "list";
    case Kind::kDict: return "dict";
    case Kind::kRecord: return "record";
    case Kind::kTensor: return "tensor";
    case Kind::kStorage: return "storage";
    case Kind::kGlobal: return "global name";
  }
  return "?";
}

void Value::wrong_kind(const char* expected) const {
  throw Error(ErrorCode::kCorruptFile, std::string("a PyTorch file holds a ") + kind_name(kind_) +
                                           " where a " + expected + " is expected");
}

bool Value::as_bool() const {
  if (kind_ != Kind::kBool) wrong_kind("bool");
  return bool_;
}

int64_t Value::as_int() const {
  if (kind_ != Kind::kInt) wrong_kind("int");
  return int_;
}

double Value::as_double() const {
  if (kind_ == Kind::kInt) return static_cast<double>(int_);
  if (kind_ != Kind::kFloat) wrong_kind("float");
  return float_;
}

const std::string& Value::as_string() const {
  if (kind_ != Kind::kString && kind_ != Kind::kBytes && kind_ != Kind::kGlobal)
    wrong_kind("string");
  return text_;
}

const at::Tensor& Value::as_tensor() const {
  if (kind_ != Kind::kTensor && kind_ != Kind::kStorage) wrong_kind("tensor");
  return tensor_;
}

const std::vector<ValuePtr>& Value::items() const {
  if (kind_ != Kind::kTuple && kind_ != Kind::kList) wrong_kind("tuple or list");
  return items_;
}

const std::vector<std::pair<ValuePtr, ValuePtr>>& Value::entries() const {
  if (kind_ != Kind::kDict) wrong_kind("dict");
  return entries_;
}

const std::string& Value::class_name() const {
  if (kind_ != Kind::kRecord) wrong_kind("record");
  return text_;
}

const Value* Value::state() const {
  if (kind_ != Kind::kRecord) wrong_kind("record");
  return state_.get();
}

const Value* Value::find(const std::string& key) const {
  if (kind_ == Kind::kRecord) return state_ ? state_->find(key) : nullptr;
  if (kind_ != Kind::kDict) return nullptr;
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it)
    if (it->first->kind_ == Kind::kString && it->first->text_ == key) return it->second.get();
  return nullptr;
}

ValuePtr read(const std::string& path) {
  Zip zip(path);
  const std::string prefix = zip.record_prefix();
  const std::string byteorder = prefix + "byteorder";
  if (zip.locate(byteorder) >= 0) {
    const std::string order = zip.read_text(byteorder, 16);
    if (order != "little")
      throw Error(ErrorCode::kUnsupported, "PyTorch file " + path + " stores its tensors in '" +
                                               order + "' byte order; expected 'little'");
  }
  Unpickler unpickler(path, zip, prefix, zip.read_text(prefix + "data.pkl", kMaxPickleBytes));
  return unpickler.run();
}

std::map<std::string, at::Tensor> named_tensors(const Value& root, const std::string& source) {
  std::map<std::string, at::Tensor> tensors;
  // read() bounds the tree's depth and size, so recursion is safe.
  std::function<void(const Value&, const std::string&)> walk = [&](const Value& v,
                                                                   const std::string& name) {
    auto child = [&](const std::string& part) { return name.empty() ? part : name + "." + part; };
    switch (v.kind()) {
      case Value::Kind::kTensor:
        if (!tensors.emplace(name, v.as_tensor()).second)
          throw Error(ErrorCode::kCorruptFile,
                      "PyTorch file " + source + " has two tensors named '" + name + "'");
        break;
      case Value::Kind::kRecord:
        if (v.state()) walk(*v.state(), name);
        break;
      case Value::Kind::kDict:
        for (const auto& [key, value] : v.entries()) {
          if (key->kind() == Value::Kind::kString)
            walk(*value, child(key->as_string()));
          else if (key->kind() == Value::Kind::kInt)
            walk(*value, child(std::to_string(key->as_int())));
        }
        break;
      case Value::Kind::kTuple:
      case Value::Kind::kList:
        for (size_t i = 0; i < v.items().size(); ++i) walk(*v.items()[i], child(std::to_string(i)));
        break;
      default: break;
    }
  };
  walk(root, "");
  return tensors;
}

}  // namespace feu::torch_file
