// Shared by the artifact tests (test_artifacts.cpp) and the fleet test that
// publishes a version mid-run (test_fleet_follow.cpp): the inputs of a
// publish, and tests/index/artifact_server.py serving a publisher root.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/files.h"
#include "index/artifacts.h"
#include "index/corpus.h"
#include "index/directions.h"
#include "test_support.h"

namespace feu::index {

// Inputs of a publish: fake model files, a corpus and directions made "with" them.
struct Inputs {
  test::TempDir dir;
  std::string generator, clip, corpus_dir, directions;

  explicit Inputs(const std::string& directions_clip = "") {
    generator = dir.file("generator.h5");
    clip = dir.file("clip.h5");
    write_file_atomic(generator, std::string("generator weights"));
    write_file_atomic(clip, std::string("clip weights"));
    const int64_t n = 40, dim = 8;
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    std::vector<float> emb(n * dim);
    for (float& v : emb) v = normal(rng);
    std::vector<CorpusEntry> entries;
    for (int64_t i = 0; i < n; ++i) entries.push_back({i, std::to_string(i) + ".png", 10, 20});
    CorpusProvenance provenance;
    provenance.clip_sha256 = sha256_file(clip);
    corpus_dir = dir.file("corpus");
    std::filesystem::create_directories(corpus_dir);
    CorpusIndex::build(entries, emb, dim, {}, provenance).save(corpus_dir);
    auto layers = stylegan2_layout(8, 64, 16);
    Directions d;
    d.set_layout(layers, coverage_mask(layers, "all-conv"), dim);
    for (int64_t r = 0; r < d.covered(); ++r) d.fs3[r * dim + r % dim] = 1.0f;
    const int64_t total = layers.back().offset + layers.back().channels;
    d.s_mean.assign(total, 0.0f);
    d.s_std.assign(total, 1.0f);
    d.info.generator_sha256 = sha256_file(generator);
    d.info.clip_sha256 = directions_clip.empty() ? sha256_file(clip) : directions_clip;
    directions = dir.file("directions.h5");
    d.save(directions);
  }

  PublishOptions options(const std::string& root, const std::string& version) const {
    PublishOptions o;
    o.root = root;
    o.version = version;
    o.corpus_dir = corpus_dir;
    o.directions_path = directions;
    o.generator_path = generator;
    o.clip_path = clip;
    o.model_paths = {generator, clip};
    o.config = {{"test", true}};
    return o;
  }
};

// tests/index/artifact_server.py serving a publisher root on a free loopback port.
class ArtifactServer {
 public:
  explicit ArtifactServer(const std::string& root, const std::vector<std::string>& flags = {}) {
    const std::string script = std::string(FEU_SOURCE_DIR) + "/tests/index/artifact_server.py";
    const std::string port_file = dir_.file("port");
    log_ = dir_.file("requests.log");
    std::vector<std::string> argv = {"python3", script, "--root", root, "--port-file", port_file, "--log", log_};
    argv.insert(argv.end(), flags.begin(), flags.end());
    pid_ = test::spawn(std::move(argv), "", SIGTERM);  // a crashed test leaves no server behind
    // Bounded wait for the listening socket (python3 start-up).
    for (int i = 0; i < 600 && !std::filesystem::exists(port_file); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const std::vector<uint8_t> port = read_file(port_file);
    url_ = "http://127.0.0.1:" + std::string(port.begin(), port.end());
  }
  ~ArtifactServer() { test::stop(pid_, SIGTERM); }
  const std::string& url() const { return url_; }
  std::string requests() const {
    if (!std::filesystem::exists(log_)) return "";
    const std::vector<uint8_t> bytes = read_file(log_);
    return std::string(bytes.begin(), bytes.end());
  }

 private:
  test::TempDir dir_;
  std::string log_, url_;
  pid_t pid_ = -1;
};

}  // namespace feu::index
