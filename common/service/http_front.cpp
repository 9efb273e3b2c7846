#include "service/http_front.h"

#include <httplib.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <system_error>
#include <thread>

#include "core/files.h"
#include "core/h5.h"
#include "core/text.h"
#include "edit/lru_cache.h"
#include "image/codec.h"
#include "image/pillow_resample.h"
#include "service/client.h"
#include "service/metrics.h"
#include "service/protocol.h"

namespace feu::service {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Concurrent HTTP requests; `?wait` holds one for up to max_wait_s.
constexpr size_t kHttpThreads = 32;
// Each call to the daemon: the reply to a request comes at once (`accepted`,
// `busy`, an error) except for retrieval, which runs on the worker. Lookups
// (result, cancel, status) are answered by the I/O thread alone: a short
// timeout keeps a stopping daemon from holding HTTP threads (and the exit).
constexpr int kDaemonReplyTimeoutMs = 30000;
constexpr int kDaemonLookupTimeoutMs = 3000;
// Fields of a POST /v1/edits body that belong to HTTP, not to the protocol header.
const std::set<std::string> kHttpOnlyFields = {"id", "latent_values"};

json error_body(const std::string& code, const std::string& message) {
  return {{"error", {{"code", code}, {"message", message}}}};
}

// Answered before the daemon is reached: a request the front itself refuses.
struct HttpError {
  int status;
  std::string code;
  std::string message;
};

[[noreturn]] void refuse(int status, const std::string& code, const std::string& message) {
  throw HttpError{status, code, message};
}

std::string content_type_of(const std::string& format) { return format == "jpeg" ? "image/jpeg" : "image/png"; }

std::string edit_path(const std::string& id) { return "/v1/edits/" + id; }

std::string thumbnail_path(int64_t id) { return "/v1/corpus/" + std::to_string(id) + "/thumbnail"; }

json hits_with_thumbnails(const json& hits) {
  json out = json::array();
  if (!hits.is_array()) return out;
  for (json hit : hits) {
    if (hit.is_object() && hit.contains("id") && hit["id"].is_number_integer())
      hit["thumbnail"] = thumbnail_path(hit["id"].get<int64_t>());
    out.push_back(std::move(hit));
  }
  return out;
}

// Ids of corpus entries and where their images are, read from the corpus of
// the artifact version being served (corpus/corpus.h5: ids, paths relative to
// the `corpus_root` attribute). Kept per version directory.
class CorpusFiles {
 public:
  std::string image_path(const std::string& version_dir, int64_t id) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (version_dir != version_dir_) load(version_dir);
    auto it = paths_.find(id);
    if (it == paths_.end())
      refuse(404, error_code_name(ErrorCode::kNotFound),
             "corpus id " + std::to_string(id) + " is not in the corpus of " + version_dir);
    return it->second;
  }

 private:
  void load(const std::string& version_dir) {
    paths_.clear();
    version_dir_.clear();
    const std::string file = (fs::path(version_dir) / "corpus" / "corpus.h5").string();
    h5::File h5 = h5::File::open_read(file);
    std::vector<int64_t> ids = h5.read_int64("ids");
    std::vector<std::string> paths = h5.read_strings("paths");
    std::string root = h5.has_attr("/", "corpus_root") ? h5.attr_string("/", "corpus_root") : "";
    check(ids.size() == paths.size(), ErrorCode::kCorruptFile, file + ": ids and paths differ in length");
    for (size_t i = 0; i < ids.size(); ++i) {
      // Paths are relative to the root by construction; one that climbs out
      // of it is not served.
      if (paths[i].find("..") != std::string::npos || (!paths[i].empty() && paths[i][0] == '/')) continue;
      paths_[ids[i]] = (fs::path(root) / paths[i]).string();
    }
    version_dir_ = version_dir;
  }

  std::mutex mutex_;
  std::string version_dir_;
  std::map<int64_t, std::string> paths_;
};

// A corpus image shrunk for the page, encoded once and kept in the cache.
struct Thumbnail {
  std::string bytes;
  std::string content_type;
  std::string etag;  // quoted, from the bytes: a reload that changes an id's image changes it
};
using ThumbnailCache = edit::LruCache<std::shared_ptr<const Thumbnail>>;

// Thumbnails are encoded once and then served from the cache, so they get
// zlib's default level rather than the fast one generated images use.
constexpr int kThumbnailPngLevel = 6;

// If-None-Match holds `etag` (or is "*"): the client's copy is current.
bool etag_matches(const std::string& if_none_match, const std::string& etag) {
  if (if_none_match.empty()) return false;
  std::istringstream tags(if_none_match);
  for (std::string tag; std::getline(tags, tag, ',');) {
    const size_t first = tag.find_first_not_of(" \t"), last = tag.find_last_not_of(" \t");
    if (first == std::string::npos) continue;
    tag = tag.substr(first, last - first + 1);
    if (tag.rfind("W/", 0) == 0) tag = tag.substr(2);  // weak comparison, as RFC 9110 asks for GET
    if (tag == "*" || tag == etag) return true;
  }
  return false;
}

}  // namespace

int http_status_for(const std::string& code) {
  static const std::map<std::string, int> statuses = {
      {codes::kBadRequest, 400},
      {codes::kUnknownType, 400},
      {codes::kUnknownField, 400},
      {codes::kUnsupportedVersion, 400},
      {codes::kPayloadTooLarge, 413},
      {codes::kIdConflict, 409},
      {codes::kShuttingDown, 503},
      {"unauthorized", 401},
      {error_code_name(ErrorCode::kNotFound), 404},
      {error_code_name(ErrorCode::kCancelled), 409},
      {error_code_name(ErrorCode::kBusy), 429},
      {error_code_name(ErrorCode::kIoError), 503},
      {error_code_name(ErrorCode::kDeadlineExceeded), 504},
      {error_code_name(ErrorCode::kUnsupported), 501},
      {error_code_name(ErrorCode::kInternal), 500},
      {error_code_name(ErrorCode::kCorruptFile), 500},
      {error_code_name(ErrorCode::kConfigError), 500},
      {error_code_name(ErrorCode::kArtifactMismatch), 500},
      {error_code_name(ErrorCode::kChecksumMismatch), 500},
  };
  auto it = statuses.find(code);
  // Everything else is about the request's own content (invalid_argument,
  // shape_mismatch, no_channels, no_face, ...).
  return it == statuses.end() ? 400 : it->second;
}

struct HttpFront::Impl {
  HttpConfig config;
  HttpAssets assets;
  std::set<std::string> token_hashes;

  std::mutex mutex;
  std::optional<ClientOptions> daemon;        // how to reach the daemon, once attached
  // Connected clients of the daemon, kept between calls: a Client per call
  // would make a ZeroMQ context (an I/O thread), a connection and, under
  // CURVE, a handshake each time. All are for `daemon` as of `generation`.
  std::vector<std::unique_ptr<Client>> idle_clients;
  uint64_t generation = 0;                    // counts attach() and detach()
  std::map<int, int64_t> responses;           // by HTTP status, for /metrics
  CorpusFiles corpus;
  std::unique_ptr<ThumbnailCache> thumbnails;  // by file path, size and modification time

  // A client of the daemon for one handler: an idle one or a new one, given
  // back when the handler is done with it if its last request was answered.
  // One left waiting (the daemon did not answer in time) is dropped, so a
  // reply owed to an abandoned request never meets a later call.
  class DaemonClient {
   public:
    DaemonClient(Impl& impl, std::unique_ptr<Client> client, uint64_t generation)
        : impl_(impl), client_(std::move(client)), generation_(generation) {}
    DaemonClient(DaemonClient&&) = default;
    ~DaemonClient() {
      if (client_ && client_->answered()) impl_.give_back(std::move(client_), generation_);
    }
    Client& operator*() { return *client_; }
    Client* operator->() { return client_.get(); }

   private:
    Impl& impl_;
    std::unique_ptr<Client> client_;
    uint64_t generation_;
  };

  void give_back(std::unique_ptr<Client> client, uint64_t of_generation) {
    std::lock_guard<std::mutex> lock(mutex);
    if (of_generation == generation && idle_clients.size() < kHttpThreads) idle_clients.push_back(std::move(client));
  }

  // The daemon's `status`, asked like any client (its I/O thread owns the state).
  json daemon_status() {
    Message reply = client()->status();
    Client::throw_if_error(reply);
    return reply.header;
  }

  bool attached() {
    std::lock_guard<std::mutex> lock(mutex);
    return daemon.has_value();
  }

  DaemonClient client(int timeout_ms = kDaemonLookupTimeoutMs) {
    std::unique_ptr<Client> client;
    std::optional<ClientOptions> options;
    uint64_t of_generation = 0;
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (!daemon)
        refuse(503, codes::kShuttingDown, "the daemon is not serving (models still loading, or shutting down)");
      of_generation = generation;
      if (idle_clients.empty()) {
        options = daemon;
      } else {
        client = std::move(idle_clients.back());
        idle_clients.pop_back();
      }
    }
    if (!client) {
      options->retries = 1;  // the same id again: the daemon answers a resend idempotently
      client = std::make_unique<Client>(*options);
    }
    client->set_timeout_ms(timeout_ms);
    return DaemonClient(*this, std::move(client), of_generation);
  }

  void count(int status_code) {
    std::lock_guard<std::mutex> lock(mutex);
    responses[status_code]++;
  }

  json http_counters() {
    std::lock_guard<std::mutex> lock(mutex);
    json by_status = json::object();
    for (const auto& [code, n] : responses) by_status[std::to_string(code)] = n;
    return {{"responses", by_status},
            {"thumbnail_cache",
             {{"hits", thumbnails->hits()}, {"misses", thumbnails->misses()}, {"size", thumbnails->size()}}}};
  }

  bool authorized(const httplib::Request& req) const {
    if (token_hashes.empty()) return true;
    const std::string header = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (header.size() <= prefix.size() || header.compare(0, prefix.size(), prefix) != 0) return false;
    const std::string token = header.substr(prefix.size());
    return token_hashes.count(sha256_bytes(token.data(), token.size())) > 0;
  }

  // ---- replies

  void send_json(httplib::Response& res, int status_code, const json& body) {
    res.status = status_code;
    res.set_content(dump_json(body), "application/json");
  }

  void send_error(httplib::Response& res, int status_code, const std::string& code, const std::string& message,
                  int64_t retry_after_ms = 0) {
    if (retry_after_ms > 0) res.set_header("Retry-After", std::to_string((retry_after_ms + 999) / 1000));
    send_json(res, status_code, error_body(code, message));
  }

  // An error or busy reply of the daemon as an HTTP error. `upload`: the
  // request carried the file a corrupt_file error names (a photo), which is
  // the client's fault (400), not a broken file of the server's (500).
  void send_reply_error(httplib::Response& res, const Message& reply, bool upload = false) {
    const json& h = reply.header;
    json error = h.contains("error") && h["error"].is_object() ? h["error"] : json::object();
    std::string code = error.value("code", std::string(error_code_name(ErrorCode::kInternal)));
    const bool bad_upload = upload && code == error_code_name(ErrorCode::kCorruptFile);
    send_error(res, bad_upload ? 400 : http_status_for(code), code,
               error.value("message", std::string("the daemon gave no reason")),
               h.value("retry_after_ms", int64_t(0)));
  }

  // ---- edits

  // The edit as a resource: state, result links and diagnostics.
  static json edit_resource(const std::string& id, const Message& reply) {
    const json& h = reply.header;
    const std::string state = h.value("status", std::string());
    json out = {{"id", id}};
    if (state == status::kAccepted) {
      out["state"] = h.value("state", std::string("queued"));
      return out;
    }
    if (h.contains("timings_ms")) out["timings_ms"] = h["timings_ms"];
    if (state == status::kError) {
      json error = h.value("error", json::object());
      out["state"] = error.value("code", std::string()) == error_code_name(ErrorCode::kCancelled) ? "cancelled"
                                                                                                  : "failed";
      out["error"] = error;
      return out;
    }
    out["state"] = "done";
    const std::string base = edit_path(id);
    json images = json::array();
    if (h.contains("images") && h["images"].is_array()) {
      for (size_t k = 0; k < h["images"].size(); ++k) {
        json image = h["images"][k];
        image.erase("frame");
        image["url"] = base + "/images/" + std::to_string(k);
        images.push_back(image);
      }
    }
    out["images"] = images;
    if (h.contains("original") && h["original"].is_object()) {
      json original = h["original"];
      original.erase("frame");
      original["url"] = base + "/images/original";
      out["original"] = original;
    }
    for (const char* floats : {"wplus", "styles"}) {
      if (!h.contains(floats) || !h[floats].is_object()) continue;
      out[floats] = {{"shape", h[floats].value("shape", json::array())}, {"url", base + "/" + floats}};
    }
    json diagnostics = h.value("diagnostics", json::object());
    if (diagnostics.contains("retrieval") && diagnostics["retrieval"].is_object()) {
      json& retrieval = diagnostics["retrieval"];
      for (const char* side : {"positives", "negatives"})
        if (retrieval.contains(side)) retrieval[side] = hits_with_thumbnails(retrieval[side]);
    }
    out["diagnostics"] = diagnostics;
    if (h.value("duplicate", false)) out["duplicate"] = true;
    return out;
  }

  static bool is_final(const Message& reply) {
    const std::string state = reply.header.value("status", std::string());
    return state == status::kDone || state == status::kError;
  }

  // Polls `result` until the job is final or `wait_ms` passed, backing off
  // from 5 to 100 ms between polls.
  Message wait_final(Client& client, const std::string& id, Message reply, int64_t wait_ms) {
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    int pause_ms = 5;
    while (!is_final(reply) && std::chrono::steady_clock::now() < until && attached()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms));
      pause_ms = std::min(pause_ms * 2, 100);
      reply = client.result(id);
    }
    return reply;
  }

  int64_t wait_ms_of(const httplib::Request& req) const {
    if (!req.has_param("wait")) return 0;
    const std::string text = req.get_param_value("wait");
    // strtod, not stod: a denormal such as 2.2e-313 is a number (stod throws on its underflow).
    char* end = nullptr;
    const double seconds = text.empty() ? NAN : std::strtod(text.c_str(), &end);
    if (text.empty() || end != text.c_str() + text.size() || std::isnan(seconds))
      refuse(400, codes::kBadRequest, "query parameter 'wait' = " + quote_text(text) + " is not a number of seconds");
    if (!(seconds >= 0 && seconds <= static_cast<double>(config.max_wait_s)))
      refuse(400, codes::kBadRequest,
             "query parameter 'wait' = " + text + " is out of range [0, " + std::to_string(config.max_wait_s) + "]");
    return static_cast<int64_t>(seconds * 1000);
  }

  // The protocol header (and payload) of an edit from a JSON body or a
  // multipart form with a `request` JSON part and a `photo` file.
  Message edit_message(const httplib::Request& req, std::string* id) {
    json body;
    Message message;
    auto parse = [](const std::string& text, const char* what) {
      json value = parse_json(text, what);
      if (!value.is_object()) refuse(400, codes::kBadRequest, std::string(what) + " must be a JSON object");
      return value;
    };
    if (req.is_multipart_form_data()) {
      if (req.has_file("request")) body = parse(req.get_file_value("request").content, "the 'request' part");
      else body = json::object();
      for (const auto& [name, part] : req.files)
        if (name != "request" && name != "photo")
          refuse(400, codes::kUnknownField,
                 "multipart part " + quote_text(name) + " is not known (expected 'request' and 'photo')");
      if (req.has_file("photo")) {
        const std::string& photo = req.get_file_value("photo").content;
        if (photo.empty()) refuse(400, codes::kBadRequest, "the 'photo' part is empty (expected a PNG or JPEG file)");
        if (body.contains("latent") && body["latent"] != "photo")
          refuse(400, codes::kBadRequest, "a 'photo' part is given with latent " + quote_text(body["latent"].dump()));
        body["latent"] = "photo";
        message.payloads.push_back(photo);
      }
    } else {
      body = parse(req.body, "the request body");
    }
    if (body.contains("id")) {
      if (!body["id"].is_string()) refuse(400, codes::kBadRequest, "field 'id' must be a string");
      *id = body["id"].get<std::string>();
    } else if (req.has_header("Idempotency-Key")) {
      *id = req.get_header_value("Idempotency-Key");
    } else {
      *id = Client::new_id();
    }
    if (body.contains("latent_values")) {
      const json& latent = body.contains("latent") ? body["latent"] : json();
      if (latent != "w" && latent != "wplus" && latent != "s")
        refuse(400, codes::kBadRequest,
               "field 'latent_values' is only valid with latent w, wplus or s (got latent " +
                   quote_text(latent.is_null() ? "seed" : latent.dump()) + ")");
      const json& values = body["latent_values"];
      if (!values.is_array()) refuse(400, codes::kBadRequest, "field 'latent_values' must be an array of numbers");
      std::vector<float> floats;
      floats.reserve(values.size());
      for (const json& v : values) {
        if (!v.is_number()) refuse(400, codes::kBadRequest, "field 'latent_values' must hold only numbers");
        floats.push_back(v.get<float>());
      }
      message.payloads.emplace_back(reinterpret_cast<const char*>(floats.data()), floats.size() * sizeof(float));
    }
    for (const char* reserved : {"v", "type"})
      if (body.contains(reserved)) refuse(400, codes::kUnknownField, std::string("field '") + reserved +
                                                                          "' is set by the HTTP front, not the body");
    json header = {{"v", kProtocolVersion}, {"type", "edit"}, {"id", *id}};
    for (auto it = body.begin(); it != body.end(); ++it)
      if (!kHttpOnlyFields.count(it.key())) header[it.key()] = it.value();
    message.header = std::move(header);
    return message;
  }

  void post_edit(const httplib::Request& req, httplib::Response& res) {
    const int64_t wait_ms = wait_ms_of(req);
    std::string id;
    Message message = edit_message(req, &id);
    Message reply = client(kDaemonReplyTimeoutMs)->call(message);
    const std::string state = reply.header.value("status", std::string());
    if (state == status::kError || state == status::kBusy)
      return send_reply_error(res, reply, message.header.contains("latent") && message.header["latent"] == "photo");
    if (wait_ms > 0) {
      DaemonClient lookups = client();
      reply = wait_final(*lookups, id, std::move(reply), wait_ms);
    }
    res.set_header("Location", edit_path(id));
    send_json(res, is_final(reply) ? 200 : 202, edit_resource(id, reply));
  }

  // The stored reply of an edit, or a 404/500 when there is none to show.
  Message stored_reply(Client& client, const std::string& id) {
    Message reply = client.result(id);
    if (reply.header.value("status", std::string()) == status::kError) {
      const std::string code = reply.header.value("error", json::object()).value("code", std::string());
      // These say the lookup failed; any other error is the job's own outcome.
      static const std::set<std::string> lookup_errors = {
          codes::kBadRequest, codes::kPayloadTooLarge, codes::kUnknownField, codes::kShuttingDown,
          error_code_name(ErrorCode::kNotFound), error_code_name(ErrorCode::kCorruptFile),
          error_code_name(ErrorCode::kIoError)};
      if (lookup_errors.count(code)) {
        json error = reply.header["error"];
        refuse(http_status_for(code), code, error.value("message", std::string()));
      }
    }
    return reply;
  }

  void get_edit(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    const int64_t wait_ms = wait_ms_of(req);
    DaemonClient client = this->client();
    Message reply = stored_reply(*client, id);
    if (wait_ms > 0) reply = wait_final(*client, id, std::move(reply), wait_ms);
    send_json(res, 200, edit_resource(id, reply));
  }

  Message done_reply(const std::string& id) {
    DaemonClient client = this->client();
    Message reply = stored_reply(*client, id);
    const std::string state = reply.header.value("status", std::string());
    if (state == status::kAccepted)
      refuse(404, error_code_name(ErrorCode::kNotFound),
             "edit '" + escape_text(id, 128) + "' is " + reply.header.value("state", std::string("queued")) +
                 ": its results do not exist yet (GET " + edit_path(id) + "?wait=SECONDS)");
    if (state != status::kDone)
      refuse(404, error_code_name(ErrorCode::kNotFound), "edit '" + escape_text(id, 128) + "' has no results (it " +
                                                             edit_resource(id, reply).value("state", "") + ")");
    return reply;
  }

  void get_image(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    const std::string k = req.matches[2];
    Message reply = done_reply(id);
    const json& h = reply.header;
    json entry;
    if (k == "original") {
      if (h.contains("original")) entry = h["original"];
    } else if (!k.empty() && k.size() < 4 && std::all_of(k.begin(), k.end(), ::isdigit)) {
      size_t index = std::stoul(k);
      if (h.contains("images") && index < h["images"].size()) entry = h["images"][index];
    }
    if (!entry.is_object())
      refuse(404, error_code_name(ErrorCode::kNotFound),
             "edit '" + escape_text(id, 128) + "' has no image " + quote_text(k) + " (expected 0.." +
                 std::to_string(h.value("images", json::array()).size()) + " - 1, or 'original' when returned)");
    size_t frame = entry.value("frame", size_t(0));
    if (frame < 1 || frame > reply.payloads.size())
      refuse(500, error_code_name(ErrorCode::kInternal), "the stored result names a missing frame");
    res.set_header("Cache-Control", "private, max-age=3600");  // a finished edit never changes
    res.set_content(reply.payloads[frame - 1], content_type_of(entry.value("format", std::string("png"))));
  }

  void get_floats(const httplib::Request& req, httplib::Response& res, const char* which) {
    const std::string id = req.matches[1];
    Message reply = done_reply(id);
    const json& h = reply.header;
    if (!h.contains(which) || !h[which].is_object())
      refuse(404, error_code_name(ErrorCode::kNotFound),
             "edit '" + escape_text(id, 128) + "' has no " + which +
                 (std::string(which) == "wplus" ? " (only photo edits return one)" : " (ask return_styles: true)"));
    size_t frame = h[which].value("frame", size_t(0));
    if (frame < 1 || frame > reply.payloads.size())
      refuse(500, error_code_name(ErrorCode::kInternal), "the stored result names a missing frame");
    res.set_header("X-Shape", h[which].value("shape", json::array()).dump());
    res.set_content(reply.payloads[frame - 1], "application/octet-stream");
  }

  void delete_edit(const httplib::Request& req, httplib::Response& res) {
    const std::string id = req.matches[1];
    Message reply = client()->cancel(id);
    if (reply.header.value("status", std::string()) != status::kDone) return send_reply_error(res, reply);
    json out = {{"id", id}, {"cancelled", reply.header.value("cancelled", false)}};
    if (reply.header.contains("state")) out["state"] = reply.header["state"];
    else if (out["cancelled"].get<bool>()) out["state"] = "cancelled";
    send_json(res, 200, out);
  }

  void post_retrieve(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_json(req.body, "the request body");
    if (!body.is_object()) refuse(400, codes::kBadRequest, "the request body must be a JSON object");
    Message message = make_simple_request(RequestType::kRetrieve, Client::new_id());
    for (auto it = body.begin(); it != body.end(); ++it) message.header[it.key()] = it.value();
    message.header["type"] = "retrieve";
    message.header["v"] = kProtocolVersion;
    Message reply = client(kDaemonReplyTimeoutMs)->call(message);
    if (reply.header.value("status", std::string()) != status::kDone) return send_reply_error(res, reply);
    json result = reply.header.value("result", json::object());
    json out = {{"text", result.value("text", body.value("text", std::string()))},
                {"artifact_version", result.contains("artifact_version") ? result["artifact_version"]
                                                                         : result.value("version", json(""))},
                {"hits", hits_with_thumbnails(result.value("hits", json::array()))}};
    send_json(res, 200, out);
  }

  // The corpus image as Pillow's Image.thumbnail((N, N), reducing_gap=None)
  // makes it (N = thumbnail_px; image/pillow_resample.h), JPEG for a JPEG
  // file and PNG otherwise. Cached while the file keeps its size and
  // modification time; `no-cache` with an ETag makes browsers revalidate, so
  // a reload that gives an id another image is never served stale.
  void get_thumbnail(const httplib::Request& req, httplib::Response& res) {
    const std::string text = req.matches[1];
    if (text.empty() || text.size() > 18)
      refuse(400, codes::kBadRequest,
             "corpus id " + quote_text(text) + " is out of range (expected at most 18 digits)");
    const int64_t id = std::stoll(text);
    json status = daemon_status();
    std::string version_dir = status.value("engine", json::object()).value("artifact_dir", std::string());
    if (version_dir.empty())
      refuse(404, error_code_name(ErrorCode::kNotFound),
             "the served artifact version names no directory, so its corpus images cannot be found");
    const std::string path = corpus.image_path(version_dir, id);
    std::error_code error;
    const uintmax_t size = fs::file_size(path, error);
    const auto modified = error ? fs::file_time_type() : fs::last_write_time(path, error);
    if (error)
      refuse(404, error_code_name(ErrorCode::kNotFound),
             "the image of corpus id " + std::to_string(id) + " is missing: " + path + " (" + error.message() + ")");
    const std::string key =
        path + '\n' + std::to_string(size) + '\n' + std::to_string(modified.time_since_epoch().count());
    std::shared_ptr<const Thumbnail> thumbnail;
    if (auto cached = thumbnails->get(key)) {
      thumbnail = *cached;
    } else {
      thumbnail = make_thumbnail(id, path);
      thumbnails->put(key, thumbnail);
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_header("ETag", thumbnail->etag);
    if (etag_matches(req.get_header_value("If-None-Match"), thumbnail->etag)) {
      res.status = 304;
      return;
    }
    res.set_content(thumbnail->bytes, thumbnail->content_type);
  }

  std::shared_ptr<const Thumbnail> make_thumbnail(int64_t id, const std::string& path) {
    try {
      const std::vector<uint8_t> file = read_file(path);
      const char* format = image::sniff_format(file.data(), file.size());
      const bool jpeg = format != nullptr && std::string(format) == "jpeg";
      const image::Image small =
          image::pillow_thumbnail(image::decode_bytes(file.data(), file.size(), path), config.thumbnail_px);
      const std::vector<uint8_t> encoded =
          jpeg ? image::encode_jpeg(small) : image::encode_png(small, kThumbnailPngLevel);
      auto thumbnail = std::make_shared<Thumbnail>();
      thumbnail->bytes.assign(encoded.begin(), encoded.end());
      thumbnail->content_type = content_type_of(jpeg ? "jpeg" : "png");
      thumbnail->etag = "\"" + sha256_bytes(encoded.data(), encoded.size()).substr(0, 32) + "\"";
      return thumbnail;
    } catch (const Error& e) {
      // Gone since the stat: the client's 404. Unreadable or undecodable: the
      // corpus is broken, the daemon's 500, with the reader's own code.
      refuse(e.code() == ErrorCode::kNotFound ? 404 : 500, e.code_name(),
             "the image of corpus id " + std::to_string(id) + " cannot be served: " + e.what());
    }
  }

  // ---- health

  void get_readyz(httplib::Response& res) {
    std::optional<ClientOptions> attached;
    {
      std::lock_guard<std::mutex> lock(mutex);
      attached = daemon;
    }
    if (!attached)
      return send_json(res, 503, {{"ready", false}, {"reason", "models and artifacts are still loading"}});
    ClientOptions options = *attached;
    // Ready = the daemon's own socket answers, not merely that this thread runs.
    options.timeout_ms = 2000;
    options.retries = 0;
    try {
      Client client(options);
      Message pong = client.ping();
      return send_json(res, 200, {{"ready", true}, {"artifact_version", pong.header.value("artifact_version", "")}});
    } catch (const std::exception& e) {
      return send_json(res, 503, {{"ready", false}, {"reason", e.what()}});
    }
  }

  // Runs one handler with the errors of either side turned into JSON.
  template <typename Handler>
  void guarded(httplib::Response& res, const Handler& handler) {
    try {
      handler();
    } catch (const HttpError& e) {
      send_error(res, e.status, e.code, e.message);
    } catch (const ProtocolError& e) {
      send_error(res, http_status_for(e.code()), e.code(), e.what());
    } catch (const Error& e) {
      // The daemon did not answer (io_error) or a file could not be read.
      send_error(res, http_status_for(e.code_name()), e.code_name(), e.what());
    } catch (const std::exception& e) {
      send_error(res, 500, error_code_name(ErrorCode::kInternal), e.what());
    }
  }
};

HttpFront::HttpFront(HttpConfig config, HttpAssets assets)
    : config_(std::move(config)), impl_(std::make_unique<Impl>()) {
  impl_->config = config_;
  impl_->assets = std::move(assets);
  impl_->thumbnails = std::make_unique<ThumbnailCache>(config_.thumbnail_cache);
  for (std::string hash : config_.token_sha256) {
    std::transform(hash.begin(), hash.end(), hash.begin(), [](unsigned char c) { return std::tolower(c); });
    impl_->token_hashes.insert(hash);
  }
}

HttpFront::~HttpFront() { stop(); }

void HttpFront::start() {
  HostPort where = parse_http_bind(config_.bind);
  server_ = std::make_unique<httplib::Server>();
  httplib::Server& http = *server_;
  Impl& impl = *impl_;
  http.new_task_queue = [] { return new httplib::ThreadPool(kHttpThreads); };
  http.set_payload_max_length(config_.max_body_bytes);  // bodies without a Content-Length (chunked)
  // Headers and body go out in separate writes: without this, Nagle holds the
  // body for the client's delayed ACK (40 ms a response on Linux).
  http.set_tcp_nodelay(true);
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);

  // Before any body is read: size and authentication.
  const size_t max_body = config_.max_body_bytes;
  http.set_pre_routing_handler([&impl, max_body](const httplib::Request& req, httplib::Response& res) {
    const bool open_path = req.path == "/healthz" || req.path == "/readyz";
    if (!open_path && req.path.rfind("/v1/", 0) == 0 && req.path != "/v1/openapi.json" && !impl.authorized(req)) {
      res.set_header("WWW-Authenticate", "Bearer");
      impl.send_error(res, 401, "unauthorized", "this address needs 'Authorization: Bearer TOKEN' with a known token");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.path == "/metrics" && !impl.authorized(req)) {
      res.set_header("WWW-Authenticate", "Bearer");
      impl.send_error(res, 401, "unauthorized", "this address needs 'Authorization: Bearer TOKEN' with a known token");
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.has_header("Content-Length")) {
      const std::string length = req.get_header_value("Content-Length");
      unsigned long long bytes = 0;
      try {
        bytes = std::stoull(length);
      } catch (const std::exception&) {
        bytes = ~0ull;
      }
      if (bytes > max_body) {
        // The body stays unread; the connection closes so its bytes are never parsed.
        res.set_header("Connection", "close");
        impl.send_error(res, 413, codes::kPayloadTooLarge,
                        "the request body is " + length + " bytes (limit " + std::to_string(max_body) + ")");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.set_post_routing_handler([&impl](const httplib::Request&, httplib::Response& res) { impl.count(res.status); });

  // Every route once: registered from this table, which also answers a known
  // path asked with another method (405 with its Allow header).
  using Handle = std::function<void(const httplib::Request&, httplib::Response&)>;
  struct Route {
    std::string method;   // GET (HEAD too), POST or DELETE
    std::string pattern;  // httplib's: the whole path, as a regular expression
    Handle handle;
  };
  auto api = [&impl](Handle call) -> Handle {  // the API's errors as JSON bodies
    return [&impl, call](const httplib::Request& req, httplib::Response& res) {
      impl.guarded(res, [&] { call(req, res); });
    };
  };
  std::vector<Route> routes = {
      {"POST", "/v1/edits", api([&impl](auto& req, auto& res) { impl.post_edit(req, res); })},
      {"GET", R"(/v1/edits/([^/]+))", api([&impl](auto& req, auto& res) { impl.get_edit(req, res); })},
      {"DELETE", R"(/v1/edits/([^/]+))", api([&impl](auto& req, auto& res) { impl.delete_edit(req, res); })},
      {"GET", R"(/v1/edits/([^/]+)/images/([^/]+))",
       api([&impl](auto& req, auto& res) { impl.get_image(req, res); })},
      {"GET", R"(/v1/edits/([^/]+)/(wplus|styles))", api([&impl](auto& req, auto& res) {
         impl.get_floats(req, res, req.matches[2] == "wplus" ? "wplus" : "styles");
       })},
      {"POST", "/v1/retrieve", api([&impl](auto& req, auto& res) { impl.post_retrieve(req, res); })},
      {"GET", R"(/v1/corpus/([0-9]+)/thumbnail)",
       api([&impl](auto& req, auto& res) { impl.get_thumbnail(req, res); })},
      {"GET", "/metrics", api([&impl](auto&, auto& res) {
         json status = impl.daemon_status();
         res.set_content(prometheus_text(status, impl.http_counters()), "text/plain; version=0.0.4; charset=utf-8");
       })},
      {"GET", "/healthz", [&impl](auto&, auto& res) { impl.send_json(res, 200, {{"alive", true}}); }},
      {"GET", "/readyz", [&impl](auto&, auto& res) { impl.get_readyz(res); }},
  };
  for (const auto& [path, asset] : impl.assets) {
    const HttpAsset* served = &asset;
    routes.push_back({"GET", path, [served](auto&, auto& res) {
                        res.set_header("Cache-Control", "no-cache");
                        res.set_content(served->body, served->content_type);
                      }});
  }
  for (const Route& route : routes) {
    if (route.method == "GET") http.Get(route.pattern, route.handle);
    else if (route.method == "POST") http.Post(route.pattern, route.handle);
    else http.Delete(route.pattern, route.handle);
  }
  // Each path pattern with the methods that answer it, for 405's Allow header.
  std::map<std::string, std::set<std::string>> methods_by_pattern;
  for (const Route& route : routes) {
    methods_by_pattern[route.pattern].insert(route.method);
    if (route.method == "GET") methods_by_pattern[route.pattern].insert("HEAD");
  }
  std::set<std::string> routed_methods;  // GET, HEAD, POST, DELETE
  std::vector<std::pair<std::regex, std::set<std::string>>> methods_of;
  for (auto& [pattern, methods] : methods_by_pattern) {
    routed_methods.insert(methods.begin(), methods.end());
    methods_of.emplace_back(std::regex(pattern), std::move(methods));
  }
  std::string routed_list;
  for (const std::string& method : routed_methods) routed_list += (routed_list.empty() ? "" : ", ") + method;
  http.set_error_handler([&impl, methods_of, routed_methods, routed_list](const httplib::Request& req,
                                                                          httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error body
    if (req.path.empty()) {
      // The request line was not understood (a method httplib does not know,
      // such as QUERY): its body, if any, is unread, so the client is told to
      // close the connection rather than send more behind those bytes.
      res.set_header("Connection", "close");
      return impl.send_error(res, 400, codes::kBadRequest,
                             "the request line of method " + quote_text(req.method) +
                                 " could not be read (expected METHOD /path HTTP/1.1; this API takes " +
                                 routed_list + ")");
    }
    for (const auto& [pattern, methods] : methods_of) {
      if (!std::regex_match(req.path, pattern) || methods.count(req.method)) continue;
      std::string allow;
      for (const std::string& method : methods) allow += (allow.empty() ? "" : ", ") + method;
      res.set_header("Allow", allow);
      return impl.send_error(res, 405, "method_not_allowed",
                             escape_text(req.method, 20) + " " + escape_text(req.path, 200) +
                                 " is not allowed (allowed: " + allow + ")");
    }
    // httplib answers a method it routes nothing for (PUT, PATCH, ...) with 400.
    if (res.status == 404 || (res.status == 400 && !routed_methods.count(req.method)))
      impl.send_error(res, 404, error_code_name(ErrorCode::kNotFound),
                      escape_text(req.method, 20) + " " + escape_text(req.path, 200) +
                          " is not part of the API (see /v1/openapi.json)");
    else if (res.status == 413)
      impl.send_error(res, 413, codes::kPayloadTooLarge, "the request body is over the limit");
    else
      impl.send_error(res, res.status, codes::kBadRequest, "the HTTP request could not be handled");
  });

  if (where.port == 0) {
    port_ = http.bind_to_any_port(where.host);
    if (port_ <= 0) throw Error(ErrorCode::kIoError, "cannot bind the HTTP front to " + config_.bind);
  } else {
    if (!http.bind_to_port(where.host, where.port))
      throw Error(ErrorCode::kIoError, "cannot bind the HTTP front to " + config_.bind +
                                           " (address in use, or not an address of this host)");
    port_ = where.port;
  }
  thread_ = std::thread([&http] { http.listen_after_bind(); });
}

std::string HttpFront::url() const {
  HostPort where = parse_http_bind(config_.bind);
  std::string host = where.host.find(':') != std::string::npos ? "[" + where.host + "]" : where.host;
  return "http://" + host + ":" + std::to_string(port_) + "/";
}

void HttpFront::attach(ClientOptions daemon) {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->daemon = std::move(daemon);
  impl_->idle_clients.clear();
  ++impl_->generation;
}

void HttpFront::detach() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->daemon.reset();
  impl_->idle_clients.clear();
  ++impl_->generation;
}

void HttpFront::stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

}  // namespace feu::service
