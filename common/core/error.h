// Typed errors shared by every feu component.
//
// Every failure a user can cause is reported as a feu::Error carrying a stable
// machine-readable code (used verbatim by the daemon protocol) and a one-line
// message that names what was wrong and what was expected.
#pragma once

#include <stdexcept>
#include <string>

namespace feu {

enum class ErrorCode {
  kInvalidArgument,   // a value is out of range or malformed
  kNotFound,          // a file, key, layer or id does not exist
  kIoError,           // the OS refused a read/write
  kCorruptFile,       // a file exists but cannot be decoded
  kShapeMismatch,     // a tensor or dataset has the wrong shape
  kConfigError,       // a YAML config is invalid (unknown key, wrong type)
  kUnsupported,       // a valid request this build cannot serve
  kNoChannels,        // an edit threshold leaves no style channel
  kArtifactMismatch,  // artifacts disagree with each other or with the models
  kChecksumMismatch,  // a published file does not match its manifest
  kDeadlineExceeded,  // a job ran past its deadline
  kCancelled,         // a job was cancelled or interrupted
  kBusy,              // the queue is full
  kNoFace,            // a photo holds no face the detector can find
  kInternal,          // a bug: should never reach a user
};

// Stable snake_case name of a code, e.g. "shape_mismatch".
const char* error_code_name(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }
  const char* code_name() const { return error_code_name(code_); }

 private:
  ErrorCode code_;
};

// Throws Error(code, message) unless `condition` holds.
inline void check(bool condition, ErrorCode code, const std::string& message) {
  if (!condition) throw Error(code, message);
}

}  // namespace feu
