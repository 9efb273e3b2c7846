#include "core/error.h"

namespace feu {

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "invalid_argument";
    case ErrorCode::kNotFound: return "not_found";
    case ErrorCode::kIoError: return "io_error";
    case ErrorCode::kCorruptFile: return "corrupt_file";
    case ErrorCode::kShapeMismatch: return "shape_mismatch";
    case ErrorCode::kConfigError: return "config_error";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kNoChannels: return "no_channels";
    case ErrorCode::kArtifactMismatch: return "artifact_mismatch";
    case ErrorCode::kChecksumMismatch: return "checksum_mismatch";
    case ErrorCode::kDeadlineExceeded: return "deadline_exceeded";
    case ErrorCode::kCancelled: return "cancelled";
    case ErrorCode::kBusy: return "busy";
    case ErrorCode::kNoFace: return "no_face";
    case ErrorCode::kInternal: return "internal";
  }
  return "internal";
}

}  // namespace feu
