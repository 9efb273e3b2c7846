#include "core/config.h"

#include <filesystem>
#include <sstream>

namespace feu {
namespace fs = std::filesystem;

ConfigMap ConfigMap::load_file(const std::string& path) {
  if (!fs::exists(path)) throw Error(ErrorCode::kNotFound, "config file not found: " + path);
  YAML::Node root;
  try {
    root = YAML::LoadFile(path);
  } catch (const YAML::Exception& e) {
    throw Error(ErrorCode::kConfigError, path + ": invalid YAML: " + e.what());
  }
  std::string base = fs::absolute(path).parent_path().string();
  return ConfigMap(root, path, "", base);
}

ConfigMap ConfigMap::parse(const std::string& text, const std::string& origin) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(ErrorCode::kConfigError, origin + ": invalid YAML: " + e.what());
  }
  return ConfigMap(root, origin, "", fs::current_path().string());
}

ConfigMap::ConfigMap(YAML::Node node, std::string file, std::string prefix, std::string base_dir)
    : node_(std::move(node)),
      file_(std::move(file)),
      prefix_(std::move(prefix)),
      base_dir_(std::move(base_dir)),
      used_(std::make_shared<std::set<std::string>>()) {
  if (node_.IsNull()) node_ = YAML::Node(YAML::NodeType::Map);
  if (!node_.IsMap())
    throw Error(ErrorCode::kConfigError,
                file_ + ": " + (prefix_.empty() ? std::string("the document") : "key '" + prefix_.substr(0, prefix_.size() - 1) + "'") +
                    " must be a mapping of key: value");
}

bool ConfigMap::has(const std::string& key) const {
  used_->insert(key);
  YAML::Node value = node_[key];
  return value.IsDefined() && !value.IsNull();
}

YAML::Node ConfigMap::lookup(const std::string& key) const {
  used_->insert(key);
  YAML::Node value = node_[key];
  if (!value.IsDefined() || value.IsNull())
    throw Error(ErrorCode::kConfigError, file_ + ": missing required key '" + prefix_ + key + "'");
  return value;
}

std::string ConfigMap::path(const std::string& key, const std::string& fallback) const {
  if (!has(key)) return fallback;
  return require_path(key);
}

std::string ConfigMap::require_path(const std::string& key) const {
  std::string value = require<std::string>(key);
  fs::path p(value);
  if (p.is_relative()) p = fs::path(base_dir_) / p;
  return p.lexically_normal().string();
}

ConfigMap ConfigMap::child(const std::string& key) const {
  used_->insert(key);
  // Assigning to the undefined node of an absent key throws: build a new one.
  YAML::Node value = node_[key];
  YAML::Node section = value.IsDefined() ? value : YAML::Node(YAML::NodeType::Map);
  return ConfigMap(section, file_, prefix_ + key + ".", base_dir_);
}

void ConfigMap::finish() const {
  std::vector<std::string> unknown;
  for (const auto& item : node_) {
    std::string key = item.first.as<std::string>();
    if (!used_->count(key)) unknown.push_back(key);
  }
  if (unknown.empty()) return;
  std::ostringstream accepted;
  bool first = true;
  for (const auto& key : *used_) {
    accepted << (first ? "" : ", ") << key;
    first = false;
  }
  throw Error(ErrorCode::kConfigError, file_ + ": unknown key '" + prefix_ + unknown.front() +
                                           "' (accepted here: " + accepted.str() + ")");
}

void ConfigMap::fail(const std::string& key, const std::string& message) const {
  throw Error(ErrorCode::kConfigError, file_ + ": key '" + prefix_ + key + "' " + message);
}

}  // namespace feu
