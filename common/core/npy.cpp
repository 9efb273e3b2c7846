#include "core/npy.h"

#include <cctype>
#include <cstring>
#include <map>

#include "core/error.h"
#include "core/files.h"
#include "core/text.h"

namespace feu::npy {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;

// The header is a Python dict literal, e.g.
// {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
// with string, bool and tuple-of-int values only.
class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& path) : text_(text), path_(path) {}

  struct Value {
    std::string text;              // a string value, or "True"/"False"
    std::vector<int64_t> numbers;  // a tuple value
    bool is_tuple = false;
  };

  std::map<std::string, Value> parse() {
    std::map<std::string, Value> out;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = quoted();
      expect(':');
      out[key] = value();
      skip_space();
      if (peek() == ',') {
        ++at_;
        continue;
      }
      expect('}');
      return out;
    }
    return out;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(ErrorCode::kCorruptFile,
                path_ + ": malformed .npy header (" + what + ") in " + quote_text(text_));
  }
  char peek() const { return at_ < text_.size() ? text_[at_] : '\0'; }
  void skip_space() {
    while (at_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[at_]))) ++at_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++at_;
  }
  std::string quoted() {
    skip_space();
    const char quote = peek();
    if (quote != '\'' && quote != '"') fail("expected a quoted key or string");
    const size_t end = text_.find(quote, at_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = text_.substr(at_ + 1, end - at_ - 1);
    at_ = end + 1;
    return out;
  }
  Value value() {
    skip_space();
    Value v;
    if (peek() == '\'' || peek() == '"') {
      v.text = quoted();
    } else if (peek() == '(') {
      v.is_tuple = true;
      ++at_;
      while (true) {
        skip_space();
        if (peek() == ')') break;
        const size_t start = at_;
        while (std::isdigit(static_cast<unsigned char>(peek()))) ++at_;
        if (at_ == start || at_ - start > 18) fail("expected a dimension");
        v.numbers.push_back(std::stoll(text_.substr(start, at_ - start)));
        if (peek() == 'L') ++at_;  // Python 2 longs
        skip_space();
        if (peek() == ',')
          ++at_;
        else if (peek() != ')')
          fail("expected ',' or ')' in the shape");
      }
      ++at_;
    } else {
      const size_t start = at_;
      while (std::isalpha(static_cast<unsigned char>(peek()))) ++at_;
      v.text = text_.substr(start, at_ - start);
      if (v.text != "True" && v.text != "False") fail("expected a string, True, False or a tuple");
    }
    return v;
  }

  const std::string& text_;
  const std::string& path_;
  size_t at_ = 0;
};

uint32_t little_endian(const uint8_t* bytes, int count) {
  uint32_t out = 0;
  for (int i = count - 1; i >= 0; --i) out = (out << 8) | bytes[i];
  return out;
}

}  // namespace

FloatArray read_float(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  check(bytes.size() >= kMagicSize + 4 && std::memcmp(bytes.data(), kMagic, kMagicSize) == 0,
        ErrorCode::kCorruptFile,
        path + ": not a NumPy .npy file (expected the signature \\x93NUMPY)");
  const int major = bytes[6];
  check(major >= 1 && major <= 3, ErrorCode::kUnsupported,
        path + ": .npy format version " + std::to_string(major) + " (expected 1, 2 or 3)");
  const int length_bytes = major == 1 ? 2 : 4;
  const size_t header_start = 8 + length_bytes;
  check(bytes.size() >= header_start, ErrorCode::kCorruptFile, path + ": truncated .npy header");
  const size_t header_size = little_endian(bytes.data() + 8, length_bytes);
  check(bytes.size() >= header_start + header_size, ErrorCode::kCorruptFile,
        path + ": truncated .npy header (" + std::to_string(header_size) + " bytes announced, " +
            std::to_string(bytes.size() - header_start) + " present)");
  const std::string header(reinterpret_cast<const char*>(bytes.data()) + header_start, header_size);
  const auto fields = HeaderParser(header, path).parse();
  for (const char* key : {"descr", "fortran_order", "shape"})
    check(fields.count(key) > 0, ErrorCode::kCorruptFile,
          path + ": .npy header lacks '" + key + "' (" + quote_text(header) + ")");

  FloatArray out;
  const std::string& descr = fields.at("descr").text;
  size_t item_size = 0;
  if (descr == "<f4" || descr == "=f4") {
    out.dtype = "float32";
    item_size = 4;
  } else if (descr == "<f8" || descr == "=f8") {
    out.dtype = "float64";
    item_size = 8;
  } else {
    throw Error(ErrorCode::kUnsupported,
                path + ": .npy dtype " + quote_text(descr) +
                    " (expected little-endian float32 '<f4' or float64 '<f8')");
  }
  check(fields.at("fortran_order").text == "False", ErrorCode::kUnsupported,
        path + ": .npy array in Fortran order (expected C order; save numpy.ascontiguousarray(x))");
  const HeaderParser::Value& shape = fields.at("shape");
  check(shape.is_tuple, ErrorCode::kCorruptFile, path + ": .npy 'shape' is not a tuple");
  out.shape = shape.numbers;
  uint64_t count = 1;
  for (int64_t dim : out.shape) {
    check(dim >= 0 && (dim == 0 || count <= (uint64_t{1} << 40) / static_cast<uint64_t>(dim)),
          ErrorCode::kCorruptFile, path + ": .npy shape " + quote_text(header) + " is too large");
    count *= static_cast<uint64_t>(dim);
  }
  const size_t data_size = bytes.size() - header_start - header_size;
  check(data_size >= count * item_size, ErrorCode::kCorruptFile,
        path + ": truncated .npy data (" + std::to_string(data_size) + " bytes, the shape needs " +
            std::to_string(count * item_size) + ")");
  const uint8_t* data = bytes.data() + header_start + header_size;
  out.values.resize(count);
  if (count == 0) return out;  // an empty array's data() may be null, which memcpy must not get
  if (item_size == 4) {
    std::memcpy(out.values.data(), data, count * 4);
  } else {
    for (uint64_t i = 0; i < count; ++i) {
      double value;
      std::memcpy(&value, data + i * 8, 8);
      out.values[i] = static_cast<float>(value);
    }
  }
  return out;
}

void write_float(const std::string& path, const float* values, const std::vector<int64_t>& shape) {
  std::string dims;  // Python's tuple syntax: "(2, 3)", "(3,)", "()"
  int64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    dims += (i ? ", " : "") + std::to_string(shape[i]);
    count *= shape[i];
  }
  if (shape.size() == 1) dims += ",";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // numpy pads the header with spaces and a newline to a multiple of 64 bytes.
  const size_t unpadded = kMagicSize + 4 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::string file(kMagic, kMagicSize);
  file += '\x01';
  file += '\x00';
  file += static_cast<char>(header.size() & 0xff);
  file += static_cast<char>(header.size() >> 8);
  file += header;
  file.append(reinterpret_cast<const char*>(values), static_cast<size_t>(count) * sizeof(float));
  write_file_atomic(path, file);
}

}  // namespace feu::npy
