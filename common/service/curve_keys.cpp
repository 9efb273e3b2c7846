#include "service/curve_keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"

namespace feu::service {
namespace fs = std::filesystem;
namespace {

struct KeyFile {
  std::vector<std::string> keys;  // the non-comment lines, trimmed
  bool marked_secret = false;
  bool marked_public = false;
};

KeyFile parse_key_file(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  std::string text(bytes.begin(), bytes.end());
  KeyFile file;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    std::string line = text.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    pos = end == std::string::npos ? text.size() : end + 1;
    line.erase(0, line.find_first_not_of(" \t\r"));
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line.empty()) continue;
    if (line[0] != '#') file.keys.push_back(line);
    else if (line.rfind(kSecretKeyMarker, 0) == 0) file.marked_secret = true;
    else if (line.rfind(kPublicKeyMarker, 0) == 0) file.marked_public = true;
  }
  return file;
}

std::string first_key(const KeyFile& file, const std::string& path) {
  if (file.keys.empty()) throw Error(ErrorCode::kInvalidArgument, "key file " + path + " holds no key");
  return file.keys.front();
}

// The public key file `feu keygen` wrote next to a secret key file.
std::string sibling_public_file(const std::string& secret_path) {
  fs::path path(secret_path);
  if (path.extension() != ".key") return "";
  return path.replace_extension(".pub").string();
}

void write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  AtomicFile file(path);
  // Created with its final mode: a secret key is never readable by others,
  // not even between its creation and a chmod.
  int fd = ::open(file.temp_path().c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) throw Error(ErrorCode::kIoError, "cannot create " + file.temp_path() + ": " + std::strerror(errno));
  ssize_t written = ::write(fd, text.data(), text.size());
  ::close(fd);
  if (written != static_cast<ssize_t>(text.size()))
    throw Error(ErrorCode::kIoError, "cannot write " + file.temp_path());
  file.commit();
}

}  // namespace

std::pair<std::string, std::string> curve_keypair() {
  char public_key[41], secret_key[41];
  if (zmq_curve_keypair(public_key, secret_key) != 0)
    throw Error(ErrorCode::kUnsupported, "this libzmq was built without CURVE support");
  return {public_key, secret_key};
}

std::string curve_public_key(const std::string& secret_z85) {
  z85_decode_key(secret_z85, "CURVE secret key");
  char public_key[41];
  if (zmq_curve_public(public_key, secret_z85.c_str()) != 0)
    throw Error(ErrorCode::kInvalidArgument, "cannot derive a public key from the CURVE secret key");
  return public_key;
}

std::string read_key_file(const std::string& path) { return first_key(parse_key_file(path), path); }

std::string z85_encode(const uint8_t* data, size_t size) {
  std::string out(size * 5 / 4 + 1, '\0');
  if (!zmq_z85_encode(out.data(), data, size)) throw Error(ErrorCode::kInvalidArgument, "cannot Z85-encode key");
  out.resize(size * 5 / 4);
  return out;
}

std::string z85_decode_key(const std::string& text, const std::string& what) {
  if (text.size() != 40)
    throw Error(ErrorCode::kInvalidArgument, what + " must be a 40-character Z85 CURVE key, got " +
                                                 std::to_string(text.size()) + " characters");
  uint8_t key[32];
  if (!zmq_z85_decode(key, text.c_str())) throw Error(ErrorCode::kInvalidArgument, what + " is not valid Z85");
  return std::string(reinterpret_cast<char*>(key), 32);
}

std::string read_secret_key_file(const std::string& path, const std::string& what) {
  KeyFile file = parse_key_file(path);
  check(!file.marked_public, ErrorCode::kInvalidArgument,
        what + " " + path + " is marked as a public key (\"" + kPublicKeyMarker +
            "\"): give the secret key, the .key file of `feu keygen`");
  std::string secret = first_key(file, path);
  z85_decode_key(secret, what + " " + path);
  std::string public_path = sibling_public_file(path);
  if (!public_path.empty() && fs::exists(public_path)) {
    std::string expected = read_key_file(public_path);
    check(secret != expected, ErrorCode::kInvalidArgument,
          what + " " + path + " holds the public key of " + public_path + ", not its secret key");
    check(curve_public_key(secret) == expected, ErrorCode::kInvalidArgument,
          what + " " + path + " is not the secret key of " + public_path +
              " (its public key differs): a public key given as the secret, or files of two keygen runs");
  }
  return secret;
}

std::string read_public_key_file(const std::string& path, const std::string& what) {
  KeyFile file = parse_key_file(path);
  check(!file.marked_secret, ErrorCode::kInvalidArgument,
        what + " " + path + " is marked as a secret key (\"" + kSecretKeyMarker +
            "\"): give the public key, the .pub file of `feu keygen`");
  std::string key = first_key(file, path);
  z85_decode_key(key, what + " " + path);
  return key;
}

std::vector<std::string> read_allowed_clients(const std::string& path) {
  if (!fs::exists(path)) throw Error(ErrorCode::kNotFound, "CURVE allow-list not found: " + path);
  KeyFile file = parse_key_file(path);
  check(!file.marked_secret, ErrorCode::kInvalidArgument,
        "CURVE allow-list " + path + " holds a secret key (\"" + kSecretKeyMarker +
            "\"): list the clients' public keys (.pub files)");
  check(!file.keys.empty(), ErrorCode::kInvalidArgument,
        "CURVE allow-list " + path + " lists no client key, so no client could connect (expected one Z85 "
        "public key a line, e.g. from a client's `feu keygen` .pub file)");
  std::vector<std::string> keys;
  for (const std::string& line : file.keys) keys.push_back(z85_decode_key(line, "client key in " + path));
  return keys;
}

std::string secret_key_mode_warning(const std::string& path, const std::string& what) {
  struct stat info;
  if (::stat(path.c_str(), &info) != 0 || (info.st_mode & 077) == 0) return "";
  char mode[8];
  std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(info.st_mode & 07777));
  return what + " " + path + " is readable by group or others (mode " + mode + "): run chmod 600 " + path;
}

std::string write_curve_keypair(const std::string& prefix, bool overwrite) {
  const std::string secret_path = prefix + ".key", public_path = prefix + ".pub";
  if (!overwrite)
    for (const std::string& path : {secret_path, public_path})
      check(!fs::exists(path), ErrorCode::kInvalidArgument,
            path + " already exists: refusing to replace a key, which locks out whoever holds the old one "
                   "(pass --force to replace it)");
  auto [public_key, secret_key] = curve_keypair();
  write_new_file(secret_path, std::string(kSecretKeyMarker) + ": keep private; its public key is in " +
                                  fs::path(public_path).filename().string() + "\n" + secret_key + "\n",
                 0600);
  write_new_file(public_path, std::string(kPublicKeyMarker) + "\n" + public_key + "\n", 0644);
  return public_key;
}

}  // namespace feu::service
