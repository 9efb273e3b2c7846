// Validated YAML configuration.
//
// A ConfigMap wraps one YAML mapping. Readers take the keys they know with
// get()/require()/child(); finish() then rejects every key nobody took, so a
// typo ("alpah: 3") is an error naming the key and the file, never ignored.
#pragma once

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/error.h"

namespace feu {

class ConfigMap {
 public:
  // Loads a YAML file whose root is a mapping. Errors: not_found, config_error.
  static ConfigMap load_file(const std::string& path);
  // Parses YAML text; `origin` names it in errors.
  static ConfigMap parse(const std::string& text, const std::string& origin);

  // `node` must be a mapping (or null: an empty mapping). `file` and `prefix`
  // ("edit.") are used in error messages; `base_dir` resolves relative paths.
  ConfigMap(YAML::Node node, std::string file, std::string prefix, std::string base_dir);

  bool has(const std::string& key) const;
  // Typed value with a default; a wrong type is a config_error naming the key.
  template <typename T>
  T get(const std::string& key, const T& fallback) const {
    if (!has(key)) return fallback;
    return require<T>(key);
  }
  template <typename T>
  T require(const std::string& key) const {
    YAML::Node value = lookup(key);
    try {
      return value.as<T>();
    } catch (const YAML::Exception&) {
      if constexpr (std::is_integral_v<T> && std::is_unsigned_v<T> && !std::is_same_v<T, bool>) {
        // yaml-cpp refuses "-1" for an unsigned type: a range error, not a type error.
        int64_t signed_value = 0;
        if (YAML::convert<int64_t>::decode(value, signed_value) && signed_value < 0)
          fail(key, "must be a non-negative integer, got " + std::to_string(signed_value));
      }
      throw Error(ErrorCode::kConfigError, file_ + ": key '" + prefix_ + key + "' has the wrong type (expected " +
                                               type_name<T>() + ")");
    }
  }
  // A path value resolved against the config file's directory.
  std::string path(const std::string& key, const std::string& fallback = "") const;
  std::string require_path(const std::string& key) const;
  // A nested mapping (empty when absent).
  ConfigMap child(const std::string& key) const;
  // Rejects keys that were never read, naming them and the accepted ones.
  void finish() const;

  const std::string& file() const { return file_; }
  // "file: key 'prefix.key' <message>" as a config_error.
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

 private:
  YAML::Node lookup(const std::string& key) const;
  template <typename T>
  static const char* type_name() {
    if constexpr (std::is_same_v<T, bool>) return "true or false";
    else if constexpr (std::is_integral_v<T>) return "an integer";
    else if constexpr (std::is_floating_point_v<T>) return "a number";
    else if constexpr (std::is_same_v<T, std::string>) return "a string";
    else return "a list";
  }

  YAML::Node node_;
  std::string file_;
  std::string prefix_;
  std::string base_dir_;
  std::shared_ptr<std::set<std::string>> used_;
};

}  // namespace feu
