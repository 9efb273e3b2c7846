// TEST DOUBLE — not a product feature. A deterministic stand-in for
// edit::Engine so that the service layer (queue, journal, batching, reload,
// protocol) can be tested in seconds without models. Its "images" are bytes
// that spell out the request they answer, so a test can tell that every reply
// belongs to its own job.
#pragma once

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <zlib.h>

#include "image/codec.h"
#include "service/backend.h"

namespace feu::test {

// A size x size RGB PNG of one colour: what a browser can show (the page
// tests), unlike fake_image_bytes.
inline std::string solid_png(int size, uint8_t r, uint8_t g, uint8_t b) {
  auto chunk = [](std::string* out, const char* type, const std::string& data) {
    auto be32 = [out](uint32_t v) {
      for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<char>((v >> shift) & 0xff));
    };
    be32(static_cast<uint32_t>(data.size()));
    std::string body = std::string(type, 4) + data;
    out->append(body);
    be32(static_cast<uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(body.data()), body.size())));
  };
  std::string ihdr;
  for (uint32_t v : {static_cast<uint32_t>(size), static_cast<uint32_t>(size)})
    for (int shift = 24; shift >= 0; shift -= 8) ihdr.push_back(static_cast<char>((v >> shift) & 0xff));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8-bit RGB, no interlace
  std::string raw;
  for (int y = 0; y < size; ++y) {
    raw.push_back(0);  // filter: none
    for (int x = 0; x < size; ++x) raw += {static_cast<char>(r), static_cast<char>(g), static_cast<char>(b)};
  }
  uLongf packed_size = compressBound(raw.size());
  std::string packed(packed_size, '\0');
  compress(reinterpret_cast<Bytef*>(packed.data()), &packed_size, reinterpret_cast<const Bytef*>(raw.data()),
           raw.size());
  packed.resize(packed_size);
  std::string png = "\x89PNG\r\n\x1a\n";
  chunk(&png, "IHDR", ihdr);
  chunk(&png, "IDAT", packed);
  chunk(&png, "IEND", "");
  return png;
}

// The bytes FakeBackend returns for one edit strength.
inline std::string fake_image_bytes(const edit::EditRequest& r, double alpha, const std::string& version) {
  return "FAKEIMG|" + r.instruction + "|" + std::to_string(r.seed) + "|" + std::to_string(alpha) + "|" + version;
}

class FakeBackend : public service::Backend {
 public:
  struct Options {
    int batch_ms = 0;             // simulated synthesis time per batch
    int encode_ms = 0;            // when set: start_edit_batch's second step (encoding) takes this long
    int reload_ms = 0;            // simulated load time of a new version
    std::string version = "v1";   // artifact version served at start
    std::string version_dir;      // its directory, when served from one (describe() names it)
    std::string exec_log;         // when set: every executed instruction appended (one line, flushed)
    size_t latent_values = 0;     // when set: the one latent size validate() accepts (as a model's w_dim)
    // Real PNGs (a colour per alpha) and an engine's diagnostics (retrieval
    // of corpus ids 5 and 6, SVM, channels, timings), for the web page test.
    bool page_like = false;
  };
  explicit FakeBackend(Options options)
      : options_(std::move(options)), version_(options_.version), version_dir_(options_.version_dir) {}

  std::vector<service::EditOutcome> edit_batch(const std::vector<edit::EditRequest>& requests) override {
    std::lock_guard<std::mutex> serving(serving_mutex_);  // a reload swaps between batches
    if (options_.batch_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(options_.batch_ms));
    std::vector<service::EditOutcome> outcomes;
    std::lock_guard<std::mutex> lock(mutex_);
    max_batch_seen_ = std::max(max_batch_seen_, requests.size());
    for (const auto& r : requests) {
      executions_[r.instruction]++;
      if (!options_.exec_log.empty()) {
        std::ofstream log(options_.exec_log, std::ios::app);
        log << r.instruction << "\n";
      }
      if (r.instruction.rfind("fail:", 0) == 0) {
        outcomes.push_back(service::EditOutcome::failure(r.instruction.substr(5), "fake failure requested"));
        continue;
      }
      edit::EditResult result;
      std::vector<double> alphas = r.alphas.empty() ? std::vector<double>{4.1} : r.alphas;
      for (double alpha : alphas) {
        edit::EncodedImage image;
        image.format = r.format;
        std::string bytes = options_.page_like
                                ? solid_png(64, static_cast<uint8_t>(128 + 10 * alpha), 90, 160)
                                : fake_image_bytes(r, alpha, version_);
        image.bytes.assign(bytes.begin(), bytes.end());
        image.width = image.height = 4;
        image.alpha = alpha;
        result.images.push_back(std::move(image));
      }
      if (r.latent_kind != edit::LatentKind::kSeed) {
        result.edited_styles = r.latent;  // echoes the latent: lets tests check payload transport
        result.total_channels = static_cast<int64_t>(r.latent.size());
      }
      result.diagnostics = {{"artifact_version", version_}, {"timings_ms", {{"synthesis", options_.batch_ms}}}};
      if (options_.page_like) {
        edit::EncodedImage original;
        std::string bytes = solid_png(64, 128, 90, 160);
        original.bytes.assign(bytes.begin(), bytes.end());
        original.width = original.height = 64;
        if (r.return_original) result.original = std::move(original);
        result.diagnostics["retrieval"] = {{"positives", {{{"id", 5}, {"score", 0.31}}}},
                                           {"negatives", {{{"id", 6}, {"score", 0.02}}}}};
        result.diagnostics["svm"] = {{"accuracy", 0.97}, {"margin", 0.42}};
        result.diagnostics["beta"] = 0.12;
        result.diagnostics["channels_changed"] = 37;
        result.diagnostics["top_channels"] = {{{"channel", 700}, {"layer", 6}, {"layer_channel", 188}, {"delta", 0.5}},
                                              {{"channel", 12}, {"layer", 0}, {"layer_channel", 12}, {"delta", -0.3}}};
        result.diagnostics["timings_ms"] = {{"text", 1.5}, {"retrieval", 3.0}, {"svm", 8.0}, {"mapping", 0.7},
                                            {"synthesis", options_.batch_ms}, {"encoding", 0.4}};
      }
      outcomes.push_back(service::EditOutcome::success(std::move(result)));
    }
    return outcomes;
  }

  // With encode_ms: edit_batch now, then a function that "encodes"; each
  // step's time span is recorded (the server's pipeline overlaps them).
  FinishBatch start_edit_batch(const std::vector<edit::EditRequest>& requests) override {
    if (options_.encode_ms == 0) return Backend::start_edit_batch(requests);
    const auto rendering = std::chrono::steady_clock::now();
    auto outcomes = std::make_shared<std::vector<service::EditOutcome>>(edit_batch(requests));
    record_span(&render_spans_, rendering);
    return [this, outcomes] {
      const auto encoding = std::chrono::steady_clock::now();
      std::this_thread::sleep_for(std::chrono::milliseconds(options_.encode_ms));
      record_span(&encode_spans_, encoding);
      return std::move(*outcomes);
    };
  }
  using Span = std::pair<std::chrono::steady_clock::time_point, std::chrono::steady_clock::time_point>;
  std::vector<Span> render_spans() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return render_spans_;
  }
  std::vector<Span> encode_spans() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return encode_spans_;
  }

  void validate(const edit::EditRequest& r) const override {
    // As the engine admits photos (edit::resolve_request): by their signature.
    if (r.latent_kind == edit::LatentKind::kPhoto && !image::sniff_format(r.photo.data(), r.photo.size()))
      throw Error(ErrorCode::kCorruptFile, "fake: the photo is not a PNG or JPEG file");
    if (r.latent_kind != edit::LatentKind::kSeed && options_.latent_values != 0 &&
        r.latent.size() != options_.latent_values)
      throw Error(ErrorCode::kShapeMismatch, "fake: the latent has " + std::to_string(r.latent.size()) +
                                                 " values, the model takes " + std::to_string(options_.latent_values));
  }

  nlohmann::json retrieve(const std::string& text, int64_t k) override {
    if (text == "fail") throw Error(ErrorCode::kNotFound, "fake retrieval failure requested");
    nlohmann::json hits = nlohmann::json::array();
    for (int64_t i = 0; i < k; ++i) hits.push_back({{"id", i}, {"path", "img" + std::to_string(i) + ".png"}, {"score", 1.0 - 0.01 * i}});
    return {{"version", artifact_version()}, {"hits", hits}};
  }

  std::string artifact_version() const override {
    std::lock_guard<std::mutex> lock(mutex_);
    return version_;
  }

  nlohmann::json describe() const override {
    nlohmann::json out = {{"device", "fake"}, {"artifact_version", artifact_version()}};
    std::lock_guard<std::mutex> lock(mutex_);
    if (!version_dir_.empty()) out["artifact_dir"] = version_dir_;
    return out;
  }

  void reload(const std::string& version_dir) override {
    // "Loading" happens outside the serving lock, as a real engine would.
    if (options_.reload_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(options_.reload_ms));
    std::string name = std::filesystem::path(version_dir).filename().string();
    if (name.find("bad") != std::string::npos)
      throw Error(ErrorCode::kChecksumMismatch, "fake: " + version_dir + " fails verification");
    std::lock_guard<std::mutex> serving(serving_mutex_);
    std::lock_guard<std::mutex> lock(mutex_);
    version_ = name;
    version_dir_ = version_dir;
  }

  int executions(const std::string& instruction) const {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = executions_.find(instruction);
    return it == executions_.end() ? 0 : it->second;
  }
  size_t total_executions() const {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t n = 0;
    for (const auto& [k, v] : executions_) n += v;
    return n;
  }
  size_t max_batch_seen() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return max_batch_seen_;
  }

 private:
  void record_span(std::vector<Span>* spans, std::chrono::steady_clock::time_point start) {
    std::lock_guard<std::mutex> lock(mutex_);
    spans->emplace_back(start, std::chrono::steady_clock::now());
  }

  Options options_;
  std::mutex serving_mutex_;
  mutable std::mutex mutex_;
  std::string version_;
  std::string version_dir_;
  std::map<std::string, int> executions_;
  size_t max_batch_seen_ = 0;
  std::vector<Span> render_spans_, encode_spans_;
};

inline FakeBackend::Options fake_options(int batch_ms, int reload_ms = 0) {
  FakeBackend::Options options;
  options.batch_ms = batch_ms;
  options.reload_ms = reload_ms;
  return options;
}

}  // namespace feu::test
