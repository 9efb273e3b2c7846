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

#include "service/backend.h"

namespace feu::test {

// The bytes FakeBackend returns for one edit strength.
inline std::string fake_image_bytes(const edit::EditRequest& r, double alpha, const std::string& version) {
  return "FAKEIMG|" + r.instruction + "|" + std::to_string(r.seed) + "|" + std::to_string(alpha) + "|" + version;
}

class FakeBackend : public service::Backend {
 public:
  struct Options {
    int batch_ms = 0;             // simulated synthesis time per batch
    int reload_ms = 0;            // simulated load time of a new version
    std::string version = "v1";   // artifact version served at start
    std::string version_dir;      // its directory, when served from one (describe() names it)
    std::string exec_log;         // when set: every executed instruction appended (one line, flushed)
    size_t latent_values = 0;     // when set: the one latent size validate() accepts (as a model's w_dim)
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
        std::string bytes = fake_image_bytes(r, alpha, version_);
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
      outcomes.push_back(service::EditOutcome::success(std::move(result)));
    }
    return outcomes;
  }

  void validate(const edit::EditRequest& r) const override {
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
  Options options_;
  std::mutex serving_mutex_;
  mutable std::mutex mutex_;
  std::string version_;
  std::string version_dir_;
  std::map<std::string, int> executions_;
  size_t max_batch_seen_ = 0;
};

inline FakeBackend::Options fake_options(int batch_ms, int reload_ms = 0) {
  FakeBackend::Options options;
  options.batch_ms = batch_ms;
  options.reload_ms = reload_ms;
  return options;
}

}  // namespace feu::test
