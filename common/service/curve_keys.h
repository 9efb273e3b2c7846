// CURVE key files: what `feu keygen` writes and what the daemon and the
// clients read. Keys are Z85 text, 40 characters. A public key cannot be told
// from a secret key by its bytes, so keygen marks each file with a comment
// line naming its kind, and a secret key is checked against the public key
// file written beside it.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace feu::service {

inline constexpr const char* kSecretKeyMarker = "# feu CURVE secret key";
inline constexpr const char* kPublicKeyMarker = "# feu CURVE public key";

// Z85 keys for CURVE: {public, secret}, 40 characters each. Errors: unsupported.
std::pair<std::string, std::string> curve_keypair();
// The Z85 public key of a Z85 secret key. Errors: invalid_argument.
std::string curve_public_key(const std::string& secret_z85);
// Reads a key file: the first non-empty, non-comment line (trimmed).
// Errors: not_found, invalid_argument (no key in it).
std::string read_key_file(const std::string& path);

// Z85 text of binary bytes (a multiple of 4).
std::string z85_encode(const uint8_t* data, size_t size);
// The 32 bytes of a 40-character Z85 key; `what` names it in the error.
// Errors: invalid_argument.
std::string z85_decode_key(const std::string& text, const std::string& what);

// The Z85 secret key in `path`, refused (invalid_argument naming `what`, e.g.
// "daemon.curve.secret_key_file") when the file is marked public, is not a
// Z85 key, or does not derive the key in the public file beside it (NAME.pub
// for NAME.key, when that file exists). Errors: not_found, invalid_argument.
std::string read_secret_key_file(const std::string& path, const std::string& what);
// The Z85 public key in `path`, refused when the file is marked secret.
// Errors: not_found, invalid_argument.
std::string read_public_key_file(const std::string& path, const std::string& what);
// The client public keys of an allow-list (one Z85 key a line, '#'
// comments) as 32-byte binary keys. An empty list, a bad line and a file
// marked secret are invalid_argument errors. Errors: not_found.
std::vector<std::string> read_allowed_clients(const std::string& path);
// A warning when the secret key file is readable by group or others; "" when
// it is private (or absent: reading it reports that).
std::string secret_key_mode_warning(const std::string& path, const std::string& what);

// Writes a new keypair to PREFIX.key (the secret, mode 0600 from its
// creation) and PREFIX.pub, each marked with its kind; returns the public
// key. An existing PREFIX.key or PREFIX.pub is an invalid_argument error
// unless `overwrite`: replacing a key locks out everyone who holds the old one.
std::string write_curve_keypair(const std::string& prefix, bool overwrite);

}  // namespace feu::service
