#include "service/protocol.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <set>

#include "core/files.h"
#include "core/text.h"

namespace feu::service {
namespace {

using nlohmann::json;

[[noreturn]] void bad(const std::string& message) { throw ProtocolError(codes::kBadRequest, message); }

const char* json_type(const json& value) { return value.type_name(); }

// Typed access to one request header: each getter checks the type and range
// and names the field; finish() rejects fields the request type does not define.
class HeaderReader {
 public:
  HeaderReader(const json& header, const Limits& limits, std::string type)
      : header_(header), limits_(limits), type_(std::move(type)) {}

  bool has(const std::string& key) {
    used_.insert(key);
    auto it = header_.find(key);
    return it != header_.end() && !it->is_null();
  }

  std::string string(const std::string& key, size_t max_bytes, bool required) {
    std::string text = word(key, required);
    if (text.size() > max_bytes)
      throw ProtocolError(codes::kPayloadTooLarge, "field '" + key + "' is " + std::to_string(text.size()) +
                                                       " bytes (limit " + std::to_string(max_bytes) + ")");
    return text;
  }

  // A string naming one of a few choices (method, latent, negatives,
  // format): the caller refuses any other value, however long, as a
  // bad_request naming the choices, so no length limit of its own applies
  // (the header's does).
  std::string word(const std::string& key, bool required) {
    if (!has(key)) {
      if (required) bad("'" + type_ + "' request needs a string field '" + key + "'");
      return "";
    }
    const json& value = header_.at(key);
    if (!value.is_string())
      bad("field '" + key + "' must be a string, got " + json_type(value));
    return value.get<std::string>();
  }

  std::optional<int64_t> integer(const std::string& key, int64_t lo, int64_t hi) {
    if (!has(key)) return std::nullopt;
    const json& value = header_.at(key);
    if (!value.is_number_integer())
      bad("field '" + key + "' must be an integer, got " + json_type(value));
    if (value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
      bad("field '" + key + "' is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    int64_t number = value.get<int64_t>();
    if (number < lo || number > hi)
      bad("field '" + key + "' = " + std::to_string(number) + " is out of range [" + std::to_string(lo) + ", " +
          std::to_string(hi) + "]");
    return number;
  }

  std::optional<double> number(const std::string& key, const json& value) {
    if (!value.is_number()) bad("field '" + key + "' must be a number, got " + json_type(value));
    double x = value.get<double>();
    if (!std::isfinite(x)) bad("field '" + key + "' must be finite");
    return x;
  }

  std::optional<double> number(const std::string& key) {
    if (!has(key)) return std::nullopt;
    return number(key, header_.at(key));
  }

  bool boolean(const std::string& key) {
    if (!has(key)) return false;
    const json& value = header_.at(key);
    if (!value.is_boolean()) bad("field '" + key + "' must be true or false, got " + json_type(value));
    return value.get<bool>();
  }

  const json& raw(const std::string& key) {
    used_.insert(key);
    return header_.at(key);
  }

  void finish() const {
    for (auto it = header_.begin(); it != header_.end(); ++it) {
      if (used_.count(it.key())) continue;
      std::string accepted;
      for (const auto& k : used_) accepted += (accepted.empty() ? "" : ", ") + k;
      throw ProtocolError(codes::kUnknownField, "'" + type_ + "' request has unknown field " +
                                                    quote_text(it.key()) + " (accepted: " + accepted + ")");
    }
  }

  const Limits& limits() const { return limits_; }

 private:
  const json& header_;
  const Limits& limits_;
  std::string type_;
  std::set<std::string> used_;
};

std::optional<RequestType> type_from_name(const std::string& name) {
  if (name == "edit") return RequestType::kEdit;
  if (name == "retrieve") return RequestType::kRetrieve;
  if (name == "result") return RequestType::kResult;
  if (name == "cancel") return RequestType::kCancel;
  if (name == "status") return RequestType::kStatus;
  if (name == "ping") return RequestType::kPing;
  return std::nullopt;
}

const char* latent_wire_name(edit::LatentKind kind) {
  switch (kind) {
    case edit::LatentKind::kSeed: return "seed";
    case edit::LatentKind::kW: return "w";
    case edit::LatentKind::kWPlus: return "wplus";
    case edit::LatentKind::kS: return "s";
    case edit::LatentKind::kPhoto: return "photo";
  }
  return "seed";
}

const char* format_wire_name(edit::ImageFormat format) {
  return format == edit::ImageFormat::kJpeg ? "jpeg" : "png";
}

edit::ImageFormat format_from_wire(const std::string& name, const std::string& field) {
  if (name == "png") return edit::ImageFormat::kPng;
  if (name == "jpeg" || name == "jpg") return edit::ImageFormat::kJpeg;
  bad("field '" + field + "' = " + quote_text(name) + " is not an image format (expected png or jpeg)");
}

void check_id(const std::string& id, const Limits& limits) {
  if (id.empty()) bad("field 'id' must be a non-empty string");
  for (unsigned char c : id)
    if (c < 0x20 || c == 0x7f) bad("field 'id' contains a control character");
}

std::vector<float> floats_from_frame(const Frame& frame, const std::string& what) {
  if (frame.empty()) bad(what + " payload frame is empty");
  if (frame.size() % 4 != 0)
    bad(what + " payload frame is " + std::to_string(frame.size()) +
        " bytes, not a whole number of little-endian float32 values");
  std::vector<float> values(frame.size() / 4);
  std::memcpy(values.data(), frame.data(), frame.size());
  for (size_t i = 0; i < values.size(); ++i)
    if (!std::isfinite(values[i]))
      throw ProtocolError(error_code_name(ErrorCode::kInvalidArgument),
                          what + " value " + std::to_string(i) + " is not finite (NaN or inf)");
  return values;
}

void parse_edit(HeaderReader& reader, const std::vector<Frame>& frames, Request* out) {
  const Limits& limits = reader.limits();
  edit::EditRequest& e = out->edit;
  e.instruction = reader.string("instruction", limits.max_text_bytes, true);
  if (e.instruction.empty()) bad("field 'instruction' must not be empty");
  std::string method = reader.word("method", false);
  if (method.empty() || method == "feu") e.method = edit::Method::kFeu;
  else if (method == "global") e.method = edit::Method::kGlobal;
  else bad("field 'method' = " + quote_text(method) + " is not a method (expected feu or global)");
  e.neutral = reader.string("neutral", limits.max_text_bytes, false);

  std::string latent = reader.word("latent", false);
  size_t expected_payloads = 0;
  if (latent.empty() || latent == "seed") {
    e.latent_kind = edit::LatentKind::kSeed;
  } else if (latent == "w" || latent == "wplus" || latent == "s") {
    e.latent_kind = latent == "w" ? edit::LatentKind::kW
                    : latent == "wplus" ? edit::LatentKind::kWPlus
                                        : edit::LatentKind::kS;
    expected_payloads = 1;
  } else if (latent == "photo") {
    e.latent_kind = edit::LatentKind::kPhoto;
    expected_payloads = 1;
  } else {
    bad("field 'latent' = " + quote_text(latent) + " is not a latent kind (expected seed, w, wplus, s or photo)");
  }
  if (auto seed = reader.integer("seed", INT64_MIN, INT64_MAX)) {
    if (e.latent_kind != edit::LatentKind::kSeed) bad("field 'seed' is only valid with latent 'seed'");
    e.seed = *seed;
  }
  if (auto psi = reader.number("psi")) e.psi = *psi;
  if (frames.size() - 1 != expected_payloads)
    bad("edit with latent '" + std::string(latent_wire_name(e.latent_kind)) + "' takes " +
        std::to_string(expected_payloads) + " payload frame(s), got " + std::to_string(frames.size() - 1));
  if (e.latent_kind == edit::LatentKind::kPhoto) {
    const Frame& photo = frames[1];
    if (photo.size() > limits.max_photo_bytes)
      throw ProtocolError(codes::kPayloadTooLarge, "photo frame is " + std::to_string(photo.size()) +
                                                       " bytes (limit " + std::to_string(limits.max_photo_bytes) + ")");
    if (photo.empty()) bad("photo payload frame is empty (expected a PNG or JPEG file)");
    e.photo.assign(photo.begin(), photo.end());
  } else if (expected_payloads == 1) {
    if (frames[1].size() > limits.max_payload_bytes)
      throw ProtocolError(codes::kPayloadTooLarge, "latent frame is " + std::to_string(frames[1].size()) +
                                                       " bytes (limit " + std::to_string(limits.max_payload_bytes) +
                                                       ")");
    e.latent = floats_from_frame(frames[1], "latent");
  }
  if (auto face = reader.integer("face", 0, edit::EditLimits::kMaxFaceIndex)) {
    if (e.latent_kind != edit::LatentKind::kPhoto) bad("field 'face' is only valid with latent 'photo'");
    e.face = *face;
  }
  e.paste = reader.boolean("paste");
  if (e.paste && e.latent_kind != edit::LatentKind::kPhoto) bad("field 'paste' is only valid with latent 'photo'");

  if (reader.has("alphas")) {
    const json& alphas = reader.raw("alphas");
    if (!alphas.is_array()) bad("field 'alphas' must be an array of numbers, got " + std::string(json_type(alphas)));
    if (alphas.empty()) bad("field 'alphas' must not be empty");
    if (alphas.size() > limits.max_alphas)
      throw ProtocolError(codes::kPayloadTooLarge, "field 'alphas' has " + std::to_string(alphas.size()) +
                                                       " values (limit " + std::to_string(limits.max_alphas) + ")");
    for (const auto& a : alphas) e.alphas.push_back(*reader.number("alphas[]", a));
  }
  if (reader.has("beta")) {
    const json& beta = reader.raw("beta");
    if (beta.is_string() && beta.get<std::string>() == "auto") e.beta_auto = true;
    else if (beta.is_number()) e.beta = *reader.number("beta", beta);
    else bad("field 'beta' must be a number or \"auto\", got " + std::string(json_type(beta)));
  }
  if (auto k = reader.integer("k_pos", 1, limits.max_k)) e.k_pos = *k;
  if (auto k = reader.integer("k_neg", 1, limits.max_k)) e.k_neg = *k;
  if (reader.has("negatives")) {
    std::string negatives = reader.word("negatives", true);
    if (negatives != "farthest" && negatives != "random")
      bad("field 'negatives' = " + quote_text(negatives) +
          " is not a negative sampling (expected farthest or random)");
    e.negatives = negatives;
  }
  if (reader.has("format")) e.format = format_from_wire(reader.word("format", true), "format");
  e.return_original = reader.boolean("return_original");
  e.return_styles = reader.boolean("return_styles");
  e.grid = reader.boolean("grid");
  if (auto size = reader.integer("size", 1, 1 << 16)) e.size = *size;
  out->deadline_ms = reader.integer("deadline_ms", 1, limits.max_deadline_ms);
}

}  // namespace

const char* request_type_name(RequestType type) {
  switch (type) {
    case RequestType::kEdit: return "edit";
    case RequestType::kRetrieve: return "retrieve";
    case RequestType::kResult: return "result";
    case RequestType::kCancel: return "cancel";
    case RequestType::kStatus: return "status";
    case RequestType::kPing: return "ping";
  }
  return "ping";
}

std::string edit_request_digest(const edit::EditRequest& e) {
  auto optional = [](const auto& value) { return value ? json(*value) : json(); };
  // Field names and value spellings are part of every stored digest: a change
  // here turns retries of already finished jobs into id_conflicts.
  json canonical = {{"instruction", e.instruction},
                    {"method", edit::Method::kGlobal == e.method ? "global" : "feu"},
                    {"neutral", e.neutral},
                    {"latent", latent_wire_name(e.latent_kind)},
                    {"seed", e.seed},
                    {"psi", optional(e.psi)},
                    {"alphas", e.alphas},
                    {"beta", optional(e.beta)},
                    {"beta_auto", e.beta_auto},
                    {"k_pos", optional(e.k_pos)},
                    {"k_neg", optional(e.k_neg)},
                    {"negatives", optional(e.negatives)},
                    {"format", format_wire_name(e.format)},
                    {"return_original", e.return_original},
                    {"return_styles", e.return_styles},
                    {"grid", e.grid}};
  if (e.size) canonical["size"] = *e.size;  // only when set: earlier requests keep their digests
  // Photo fields only for photos, so every earlier request keeps its digest.
  if (e.latent_kind == edit::LatentKind::kPhoto) {
    canonical["face"] = optional(e.face);
    canonical["paste"] = e.paste;
    canonical["photo_sha256"] = sha256_bytes(e.photo.data(), e.photo.size());
  }
  std::string bytes = dump_json(canonical);  // object keys sorted, doubles in shortest round-trip form
  put_u64(&bytes, e.latent.size());
  bytes.append(reinterpret_cast<const char*>(e.latent.data()), e.latent.size() * sizeof(float));
  return sha256_bytes(bytes.data(), bytes.size());
}

std::string dump_json(const nlohmann::json& value) {
  return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Request parse_request(const std::vector<Frame>& frames, const Limits& limits) {
  if (frames.empty()) bad("empty message (expected a JSON header frame)");
  if (frames.size() > limits.max_frames)
    throw ProtocolError(codes::kPayloadTooLarge, "message has " + std::to_string(frames.size()) +
                                                     " frames (limit " + std::to_string(limits.max_frames) + ")");
  if (frames[0].size() > limits.max_header_bytes)
    throw ProtocolError(codes::kPayloadTooLarge, "header frame is " + std::to_string(frames[0].size()) +
                                                     " bytes (limit " + std::to_string(limits.max_header_bytes) + ")");
  // The largest frame any request may carry; edits check each frame against
  // its own limit (a photo's or a latent's) once they know what it is.
  const size_t max_frame = std::max(limits.max_payload_bytes, limits.max_photo_bytes);
  for (size_t i = 1; i < frames.size(); ++i)
    if (frames[i].size() > max_frame)
      throw ProtocolError(codes::kPayloadTooLarge, "payload frame " + std::to_string(i) + " is " +
                                                       std::to_string(frames[i].size()) + " bytes (limit " +
                                                       std::to_string(max_frame) + ")");
  const json header = parse_json(frames[0], "header frame");
  if (!header.is_object()) bad("header must be a JSON object, got " + std::string(json_type(header)));

  auto type_it = header.find("type");
  if (type_it == header.end() || !type_it->is_string()) bad("header needs a string field 'type'");
  std::string type_name = type_it->get<std::string>();
  auto type = type_from_name(type_name);
  if (!type)
    throw ProtocolError(codes::kUnknownType, "unknown request type " + quote_text(type_name) +
                                                 " (expected edit, retrieve, result, cancel, status or ping)");

  HeaderReader reader(header, limits, type_name);
  reader.has("type");
  if (auto version = reader.integer("v", 0, INT32_MAX); version && *version != kProtocolVersion)
    throw ProtocolError(codes::kUnsupportedVersion, "protocol version " + std::to_string(*version) +
                                                        " is not supported (this daemon speaks " +
                                                        std::to_string(kProtocolVersion) + ")");
  Request request;
  request.type = *type;
  bool needs_id = *type == RequestType::kEdit || *type == RequestType::kResult || *type == RequestType::kCancel;
  request.id = reader.string("id", limits.max_id_bytes, needs_id);
  if (needs_id || !request.id.empty()) check_id(request.id, limits);

  if (*type == RequestType::kEdit) {
    parse_edit(reader, frames, &request);
    request.digest = edit_request_digest(request.edit);
  } else {
    if (frames.size() > 1)
      bad("'" + type_name + "' request takes no payload frames, got " + std::to_string(frames.size() - 1));
    if (*type == RequestType::kRetrieve) {
      request.text = reader.string("text", limits.max_text_bytes, true);
      if (request.text.empty()) bad("field 'text' must not be empty");
      request.k = reader.integer("k", 1, limits.max_k).value_or(10);
    }
  }
  reader.finish();
  return request;
}

json parse_json(const std::string& text, const std::string& what) {
  std::string why;
  std::optional<json> value = parse_outside_json(text, &why);
  if (!value) bad(what + " " + why);
  return std::move(*value);
}

std::string salvage_id(const Frame& header, const Limits& limits) {
  if (header.size() > limits.max_header_bytes) return "";
  json parsed;
  try {
    parsed = parse_json(header, "header frame");
  } catch (const ProtocolError&) {
    return "";
  }
  if (!parsed.is_object()) return "";
  auto it = parsed.find("id");
  if (it == parsed.end() || !it->is_string()) return "";
  std::string id = it->get<std::string>();
  return id.size() <= limits.max_id_bytes ? id : "";
}

std::vector<Frame> to_frames(const Message& message) {
  std::vector<Frame> frames;
  frames.reserve(1 + message.payloads.size());
  frames.push_back(dump_json(message.header));
  frames.insert(frames.end(), message.payloads.begin(), message.payloads.end());
  return frames;
}

Message from_frames(const std::vector<Frame>& frames) {
  if (frames.empty()) bad("empty reply");
  Message message;
  message.header = parse_json(frames[0], "reply header");
  if (!message.header.is_object()) bad("reply header is not a JSON object");
  message.payloads.assign(frames.begin() + 1, frames.end());
  return message;
}

Message make_edit_request(const std::string& id, const edit::EditRequest& e, std::optional<int64_t> deadline_ms) {
  Message m;
  json& h = m.header;
  h["v"] = kProtocolVersion;
  h["type"] = "edit";
  h["id"] = id;
  h["instruction"] = e.instruction;
  h["method"] = edit::Method::kGlobal == e.method ? "global" : "feu";
  if (!e.neutral.empty()) h["neutral"] = e.neutral;
  h["latent"] = latent_wire_name(e.latent_kind);
  if (e.latent_kind == edit::LatentKind::kSeed) {
    h["seed"] = e.seed;
  } else if (e.latent_kind == edit::LatentKind::kPhoto) {
    m.payloads.emplace_back(reinterpret_cast<const char*>(e.photo.data()), e.photo.size());
    if (e.face) h["face"] = *e.face;
    if (e.paste) h["paste"] = true;
  } else {
    m.payloads.emplace_back(reinterpret_cast<const char*>(e.latent.data()), e.latent.size() * sizeof(float));
  }
  if (e.psi) h["psi"] = *e.psi;
  if (!e.alphas.empty()) h["alphas"] = e.alphas;
  if (e.beta_auto) h["beta"] = "auto";
  else if (e.beta) h["beta"] = *e.beta;
  if (e.k_pos) h["k_pos"] = *e.k_pos;
  if (e.k_neg) h["k_neg"] = *e.k_neg;
  if (e.negatives) h["negatives"] = *e.negatives;
  h["format"] = format_wire_name(e.format);
  if (e.return_original) h["return_original"] = true;
  if (e.return_styles) h["return_styles"] = true;
  if (e.grid) h["grid"] = true;
  if (e.size) h["size"] = *e.size;
  if (deadline_ms) h["deadline_ms"] = *deadline_ms;
  return m;
}

Message make_simple_request(RequestType type, const std::string& id) {
  Message m;
  m.header = {{"v", kProtocolVersion}, {"type", request_type_name(type)}};
  if (!id.empty()) m.header["id"] = id;
  return m;
}

Message make_retrieve_request(const std::string& id, const std::string& text, int64_t k) {
  Message m = make_simple_request(RequestType::kRetrieve, id);
  m.header["text"] = text;
  m.header["k"] = k;
  return m;
}

json reply_header(const std::string& id, const char* status_value) {
  return {{"v", kProtocolVersion}, {"id", id}, {"status", status_value}};
}

Message error_reply(const std::string& id, const std::string& code, const std::string& message) {
  Message m;
  m.header = reply_header(id, status::kError);
  m.header["error"] = {{"code", code}, {"message", message}};
  return m;
}

Message busy_reply(const std::string& id, int64_t retry_after_ms, size_t queue_depth) {
  Message m;
  m.header = reply_header(id, status::kBusy);
  m.header["retry_after_ms"] = retry_after_ms;
  m.header["queue_depth"] = queue_depth;
  m.header["error"] = {{"code", error_code_name(ErrorCode::kBusy)},
                       {"message", "queue is full (" + std::to_string(queue_depth) + " jobs); retry after " +
                                       std::to_string(retry_after_ms) + " ms"}};
  return m;
}

namespace {
json image_entry(const edit::EncodedImage& image, size_t frame) {
  return {{"frame", frame}, {"format", format_wire_name(image.format)}, {"width", image.width},
          {"height", image.height}, {"alpha", image.alpha}};
}

// A done reply's entry of a payload (an image, the styles, the W+ code): the frame it names, read
// with the same typed checks as a request's fields, so that a faulty server's reply is a
// ProtocolError naming the field, never a JSON library exception or a read past the frames.
const Frame& entry_frame(HeaderReader& fields, const Message& reply, const std::string& what) {
  const std::optional<int64_t> frame = fields.integer("frame", 1, static_cast<int64_t>(reply.payloads.size()));
  if (!frame) bad("done reply's " + what + " entry names no frame");
  return reply.payloads[static_cast<size_t>(*frame - 1)];
}

edit::EncodedImage image_from_entry(const json& entry, const Message& reply) {
  if (!entry.is_object()) bad("done reply's image entry is not an object");
  HeaderReader fields(entry, Limits(), "image entry");
  const Frame& bytes = entry_frame(fields, reply, "image");
  edit::EncodedImage image;
  const std::string format = fields.string("format", 16, false);
  image.format = format.empty() ? edit::ImageFormat::kPng : format_from_wire(format, "format");
  image.width = static_cast<int>(fields.integer("width", 0, INT32_MAX).value_or(0));
  image.height = static_cast<int>(fields.integer("height", 0, INT32_MAX).value_or(0));
  image.alpha = fields.number("alpha").value_or(0.0);
  image.bytes.assign(bytes.begin(), bytes.end());
  return image;
}

// The float32 rows of a styles or W+ entry and its shape's dimension `axis` (0 when it has no
// shape): {"frame": n, "shape": [rows, columns]}.
std::vector<float> floats_from_entry(const json& entry, const Message& reply, const std::string& what, int axis,
                                     int64_t* dimension) {
  HeaderReader fields(entry, Limits(), what + " entry");
  const Frame& bytes = entry_frame(fields, reply, what);
  if (bytes.size() % sizeof(float) != 0)
    bad("done reply's " + what + " frame is " + std::to_string(bytes.size()) + " bytes (expected float32 values)");
  std::vector<float> values(bytes.size() / sizeof(float));
  if (!values.empty()) std::memcpy(values.data(), bytes.data(), bytes.size());
  *dimension = 0;
  if (fields.has("shape")) {
    const json& shape = fields.raw("shape");
    if (!shape.is_array() || shape.size() != 2 || !shape[0].is_number_integer() || !shape[1].is_number_integer() ||
        shape[0].get<int64_t>() < 0 || shape[1].get<int64_t>() < 0)
      bad("done reply's " + what + " 'shape' must be [rows, columns] of non-negative integers");
    *dimension = shape[static_cast<size_t>(axis)].get<int64_t>();
  }
  return values;
}
}  // namespace

Message edit_done_reply(const std::string& id, const edit::EditResult& result, const json& timings_ms) {
  Message m;
  m.header = reply_header(id, status::kDone);
  m.header["type"] = "edit";
  auto add_frame = [&m](const void* data, size_t size) {
    m.payloads.emplace_back(static_cast<const char*>(data), size);
    return m.payloads.size();  // frame index: payloads start at frame 1
  };
  json images = json::array();
  for (const auto& image : result.images)
    images.push_back(image_entry(image, add_frame(image.bytes.data(), image.bytes.size())));
  m.header["images"] = images;
  if (result.original)
    m.header["original"] = image_entry(*result.original,
                                       add_frame(result.original->bytes.data(), result.original->bytes.size()));
  if (!result.edited_styles.empty()) {
    size_t frame = add_frame(result.edited_styles.data(), result.edited_styles.size() * sizeof(float));
    int64_t channels = result.total_channels > 0 ? result.total_channels
                                                 : static_cast<int64_t>(result.edited_styles.size());
    m.header["styles"] = {{"frame", frame},
                          {"shape", {static_cast<int64_t>(result.edited_styles.size()) / channels, channels}}};
  }
  if (!result.wplus.empty()) {
    size_t frame = add_frame(result.wplus.data(), result.wplus.size() * sizeof(float));
    const int64_t rows = result.wplus_rows > 0 ? result.wplus_rows : 1;
    m.header["wplus"] = {{"frame", frame}, {"shape", {rows, static_cast<int64_t>(result.wplus.size()) / rows}}};
  }
  m.header["diagnostics"] = result.diagnostics.is_null() ? json::object() : result.diagnostics;
  m.header["timings_ms"] = timings_ms;
  return m;
}

edit::EditResult decode_edit_result(const Message& reply) {
  const json& h = reply.header;
  if (!h.is_object()) bad("reply header is not a JSON object");
  const auto status = h.find("status");
  if (status == h.end() || !status->is_string() || status->get_ref<const std::string&>() != status::kDone)
    bad("reply is not a done reply");
  edit::EditResult result;
  auto images = h.find("images");
  if (images == h.end() || !images->is_array()) bad("done reply has no 'images' array");
  for (const auto& entry : *images) result.images.push_back(image_from_entry(entry, reply));
  if (auto it = h.find("original"); it != h.end() && it->is_object()) result.original = image_from_entry(*it, reply);
  if (auto it = h.find("styles"); it != h.end() && it->is_object())
    result.edited_styles = floats_from_entry(*it, reply, "styles", 1, &result.total_channels);
  if (auto it = h.find("wplus"); it != h.end() && it->is_object())
    result.wplus = floats_from_entry(*it, reply, "wplus", 0, &result.wplus_rows);
  result.diagnostics = h.value("diagnostics", json::object());
  return result;
}

}  // namespace feu::service
