// The feu daemon wire protocol, version 1 (documented in daemon/PROTOCOL.md).
//
// A message is a list of ZeroMQ frames: frame 0 a JSON header, further frames
// binary payloads (latents as little-endian float32, encoded images). This file
// turns frames into typed requests (rejecting anything malformed with a stable
// error code) and results into reply frames, for both the server and clients.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/json.h"
#include "edit/options.h"
#include "edit/request.h"
#include "service/frames.h"

namespace feu::service {

constexpr int kProtocolVersion = 1;

// Reply statuses.
namespace status {
inline constexpr const char* kAccepted = "accepted";
inline constexpr const char* kDone = "done";
inline constexpr const char* kError = "error";
inline constexpr const char* kBusy = "busy";
}  // namespace status

// Protocol-level error codes, next to feu::error_code_name()'s engine codes.
namespace codes {
inline constexpr const char* kBadRequest = "bad_request";            // malformed frames/JSON, wrong types, missing fields
inline constexpr const char* kUnknownType = "unknown_type";          // "type" is not a request type
inline constexpr const char* kUnknownField = "unknown_field";        // a header key the type does not define
inline constexpr const char* kPayloadTooLarge = "payload_too_large"; // a frame or field over its limit
inline constexpr const char* kUnsupportedVersion = "unsupported_version";
inline constexpr const char* kIdConflict = "id_conflict";            // same id, different request
inline constexpr const char* kShuttingDown = "shutting_down";        // daemon is draining; retry elsewhere/later
inline constexpr const char* kDeadLetter = "dead_letter";            // the job's runs kept killing their workers
}  // namespace codes

// A failure with a stable code string (a protocol code or a feu::ErrorCode name).
class ProtocolError : public std::runtime_error {
 public:
  ProtocolError(std::string code, const std::string& message)
      : std::runtime_error(message), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

// Size limits applied to every request before anything else looks at it.
// Those the engine also enforces start at the engine's own limits
// (edit::EditLimits), so nothing the protocol accepts and journals fails the
// engine's size checks later; a config may lower them, never raise them.
struct Limits {
  size_t max_frames = 8;                   // header + payloads
  size_t max_header_bytes = 64 * 1024;     // frame 0
  size_t max_payload_bytes = 4u << 20;     // a latent frame (W+ at 1024² is 72 KiB)
  // An encoded photo frame. Below the engine's ceiling: it is also the largest
  // frame ZeroMQ buffers per message (ZMQ_MAXMSGSIZE), so it bounds what a
  // flood of big frames can pin in memory; raise it in the config for
  // photos above 12 MiB (PNG scans, 50 MP cameras).
  size_t max_photo_bytes = 12u << 20;
  size_t max_id_bytes = 128;
  size_t max_text_bytes = edit::EditLimits::kMaxInstructionBytes;  // instruction, neutral, retrieve text
  size_t max_alphas = edit::EditLimits::kMaxAlphas;
  int64_t max_k = 100000;                  // k_pos, k_neg, retrieve k
  int64_t max_deadline_ms = 24LL * 3600 * 1000;
};

enum class RequestType { kEdit, kRetrieve, kResult, kCancel, kStatus, kPing };
const char* request_type_name(RequestType type);

// One parsed, validated request.
struct Request {
  RequestType type = RequestType::kPing;
  std::string id;                          // client-chosen; required for edit/result/cancel
  edit::EditRequest edit;                  // kEdit
  std::optional<int64_t> deadline_ms;      // kEdit: relative to acceptance
  std::string text;                        // kRetrieve
  int64_t k = 10;                          // kRetrieve
  // kEdit: sha256 of the parsed request (see edit_request_digest): the same
  // id with a different digest is an id_conflict, not a duplicate.
  std::string digest;
};

// Parses a request's frames (header first). Throws ProtocolError, whose
// message shows any echoed request text escaped and cut (core/text.h).
Request parse_request(const std::vector<Frame>& frames, const Limits& limits);

// sha256 of a canonical encoding of every EditRequest field (the latent's
// float32 bytes included), so wire spellings of one request share it: [3] and
// [3.0], "method": "feu" and no method, "format": "jpg" and "jpeg". Fields
// left to the engine's config (alphas, beta, psi, k, negatives) stay distinct
// from a value spelled out, since the config may change between the two.
std::string edit_request_digest(const edit::EditRequest& request);

// The id of a request that failed to parse, when its header still names one
// (so the error reply can carry it); "" otherwise.
std::string salvage_id(const Frame& header, const Limits& limits);

// Parses outside JSON text (a request header, an HTTP body, a reply; core/json.h). Throws
// ProtocolError(bad_request) naming `what` when the text is not JSON or nests deeper than
// kMaxJsonDepth.
nlohmann::json parse_json(const std::string& text, const std::string& what);

// A header plus its payload frames.
struct Message {
  nlohmann::json header;
  std::vector<Frame> payloads;
};
std::vector<Frame> to_frames(const Message& message);
// Parses frame 0 as JSON (client side). Throws ProtocolError(bad_request).
Message from_frames(const std::vector<Frame>& frames);
// JSON text that never throws on odd strings (invalid UTF-8 is replaced).
std::string dump_json(const nlohmann::json& value);

// ---- requests (client side) ----
Message make_edit_request(const std::string& id, const edit::EditRequest& request,
                          std::optional<int64_t> deadline_ms = std::nullopt);
Message make_simple_request(RequestType type, const std::string& id);  // result, cancel, status, ping
Message make_retrieve_request(const std::string& id, const std::string& text, int64_t k);

// ---- replies (server side) ----
nlohmann::json reply_header(const std::string& id, const char* status_value);
Message error_reply(const std::string& id, const std::string& code, const std::string& message);
Message busy_reply(const std::string& id, int64_t retry_after_ms, size_t queue_depth);
// `timings_ms`: service-side timings (queue, run, total) added to the header.
Message edit_done_reply(const std::string& id, const edit::EditResult& result, const nlohmann::json& timings_ms);
// Client side: the EditResult carried by a done reply. Throws ProtocolError.
edit::EditResult decode_edit_result(const Message& reply);

}  // namespace feu::service
