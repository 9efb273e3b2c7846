// The model-running indexer steps on tiny random models (the embedded default's
// kind): retrieval, incremental embedding, resume after interruption,
// statistics, Δi rows against a brute-force recomputation.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "clip/model.h"
#include "clip/preprocess.h"
#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "image/codec.h"
#include "image/tensor_image.h"
#include "index/artifacts.h"
#include "index/corpus.h"
#include "index/embed_shard.h"
#include "index/pipeline.h"
#include "index/progress.h"
#include "tensor/tensor_h5.h"
#include "stylegan2/generator.h"
#include "stylegan2/seed.h"
#include "test_support.h"

namespace feu::index {
namespace {
namespace fs = std::filesystem;

class Pipeline : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new test::TempDir();
    stylegan2::GeneratorConfig c;
    c.z_dim = 16;
    c.w_dim = 16;
    c.img_resolution = 16;
    c.mapping_layers = 2;
    c.channel_base = 64;  // 16 channels at 4², 8 at 8², 4 at 16²
    c.channel_max = 16;
    generator_path_ = dir_->file("generator.h5");
    clip_path_ = dir_->file("clip.h5");
    stylegan2::Generator generator = stylegan2::Generator::random(c, 7, at::kCPU);
    // Non-zero noise strengths so constant noise matters in the renders.
    for (const auto& layer : generator.style_space().layers())
      if (layer.kind == stylegan2::StyleKind::kConv) {
        const std::string key = "synthesis." + layer.name + ".noise_strength";
        try {
          generator.set_weight(key, at::full(generator.weight(key).sizes(), 0.3));
        } catch (const Error&) {
        }
      }
    generator.save(generator_path_);
    clip::ClipModel::random(clip::ClipConfig::small(600), 3, at::kCPU).save_h5(clip_path_);
    images_ = dir_->file("images");
    render(generator, images_, 0, 40);
    stats_path_ = dir_->file("stats.h5");
    StatsOptions stats;
    stats.generator_path = generator_path_;
    stats.out_path = stats_path_;
    stats.device = "cpu";
    stats.num_samples = 3000;
    stats.batch_size = 700;
    compute_style_stats(stats);
  }
  static void TearDownTestSuite() { delete dir_; }

  // Renders seeds [first, first+count) as PNGs into dir/<seed/10>/<seed>.png.
  static void render(const stylegan2::Generator& g, const std::string& dir, int64_t first, int64_t count) {
    std::vector<at::Tensor> zs;
    for (int64_t i = first; i < first + count; ++i) zs.push_back(stylegan2::z_from_seed(i, g.config().z_dim));
    auto images = image::images_from_tensor(g.synthesize_ws(g.mapping(at::cat(zs), 0.7)), image::Quantize::kNvlabs);
    for (int64_t i = 0; i < count; ++i) {
      const std::string sub = dir + "/" + std::to_string((first + i) / 10);
      fs::create_directories(sub);
      image::write_image(sub + "/" + std::to_string(first + i) + ".png", images[i]);
    }
  }

  static EmbedOptions embed_options(const std::string& images, const std::string& out) {
    EmbedOptions o;
    o.images_dir = images;
    o.out_dir = out;
    o.clip_path = clip_path_;
    o.device = "cpu";
    o.batch_size = 8;
    o.decode_threads = 2;
    o.progress = false;
    return o;
  }

  static DirectionsOptions directions_options(const std::string& out) {
    DirectionsOptions o;
    o.generator_path = generator_path_;
    o.clip_path = clip_path_;
    o.stats_path = stats_path_;
    o.out_path = out;
    o.device = "cpu";
    o.images = 3;
    o.progress = false;
    return o;
  }

  static std::vector<float> embeddings(const std::string& dir) {
    return h5::File::open_read(dir + "/corpus.h5").read_float("embeddings");
  }

  static test::TempDir* dir_;
  static std::string generator_path_, clip_path_, images_, stats_path_;
};
test::TempDir* Pipeline::dir_ = nullptr;
std::string Pipeline::generator_path_, Pipeline::clip_path_, Pipeline::images_, Pipeline::stats_path_;

TEST_F(Pipeline, KnownImageIsItsOwnTopHit) {
  test::TempDir out;
  EmbedReport report = embed_corpus(embed_options(images_, out.path()));
  EXPECT_EQ(report.files, 40);
  EXPECT_EQ(report.embedded, 40);
  EXPECT_TRUE(report.skipped.empty());
  CorpusIndex corpus = CorpusIndex::load(out.path());
  ASSERT_EQ(corpus.size(), 40);
  EXPECT_EQ(corpus.provenance().clip_sha256, sha256_file(clip_path_));
  clip::ClipModel clip = clip::ClipModel::load(clip_path_, at::kCPU);
  for (const char* rel : {"0/3.png", "2/27.png", "3/39.png"}) {
    // Encode the file independently of the indexer and search with it.
    at::Tensor pixels = clip::preprocess_image(image::decode_file(images_ + "/" + rel), 32).unsqueeze(0);
    at::Tensor q = clip.encode_image(pixels).contiguous();
    auto hits = corpus.top_k(q.data_ptr<float>(), 3);
    ASSERT_FALSE(hits.empty());
    EXPECT_EQ(corpus.path_of(hits[0].id), rel);
    EXPECT_NEAR(hits[0].score, 1.0, 1e-4);
  }
}

TEST_F(Pipeline, IncrementalAfterAddingAndRemovingEqualsFullRebuild) {
  test::TempDir work;
  const std::string images = work.file("images");
  fs::copy(images_, images, fs::copy_options::recursive);
  const std::string out = work.file("incremental");
  fs::create_directories(out);
  embed_corpus(embed_options(images, out));
  CorpusIndex before = CorpusIndex::load(out);

  // Remove two, add three, change one.
  fs::remove(images + "/0/1.png");
  fs::remove(images + "/3/35.png");
  stylegan2::Generator g = stylegan2::Generator::load(generator_path_, at::kCPU);
  render(g, images, 100, 3);
  fs::copy_file(images + "/10/100.png", images + "/2/22.png", fs::copy_options::overwrite_existing);

  EmbedOptions inc = embed_options(images, out);
  inc.incremental = true;
  EmbedReport report = embed_corpus(inc);
  EXPECT_EQ(report.files, 41);
  EXPECT_EQ(report.reused, 37);
  EXPECT_EQ(report.embedded, 4);
  EXPECT_EQ(report.dropped, 2);

  const std::string full = work.file("full");
  fs::create_directories(full);
  embed_corpus(embed_options(images, full));
  CorpusIndex a = CorpusIndex::load(out), b = CorpusIndex::load(full);
  ASSERT_EQ(a.size(), b.size());
  std::vector<float> ea = a.embeddings(), eb = b.embeddings();
  for (int64_t r = 0; r < a.size(); ++r) {
    EXPECT_EQ(a.entries()[r].path, b.entries()[r].path);
    EXPECT_EQ(a.entries()[r].size, b.entries()[r].size);
    for (int64_t i = 0; i < a.dim(); ++i) ASSERT_NEAR(ea[r * a.dim() + i], eb[r * a.dim() + i], 2e-6) << r;
  }
  // Unchanged files keep their ids; new ones get fresh ids, never reused.
  int64_t max_before = 0;
  for (const auto& e : before.entries()) max_before = std::max(max_before, e.id);
  int64_t id_before = -1;
  for (const auto& e : before.entries())
    if (e.path == "0/5.png") id_before = e.id;
  for (const auto& e : a.entries()) {
    if (e.path == "0/5.png") {
      EXPECT_EQ(e.id, id_before);
    }
    if (e.path == "10/101.png" || e.path == "2/22.png") {
      EXPECT_GT(e.id, max_before) << e.path;
    }
  }
  std::vector<float> q(a.embedding(3), a.embedding(3) + a.dim());
  auto ha = a.top_k(q.data(), 5), hb = b.top_k(q.data(), 5);
  for (size_t i = 0; i < ha.size(); ++i) EXPECT_EQ(a.path_of(ha[i].id), b.path_of(hb[i].id));
}

TEST_F(Pipeline, InterruptedEmbedResumesToIdenticalArtifacts) {
  test::TempDir work;
  embed_corpus(embed_options(images_, work.path()));
  const std::string reference = work.path();
  test::TempDir out;
  EmbedOptions o = embed_options(images_, out.path());
  o.checkpoint_every = 8;
  o.stop_after = 13;
  EmbedReport first = embed_corpus(o);
  EXPECT_TRUE(first.interrupted);
  EXPECT_FALSE(fs::exists(out.file("corpus.faiss")));
  EXPECT_TRUE(fs::exists(out.file("embed.checkpoint.h5")));
  o.stop_after = -1;
  EmbedReport second = embed_corpus(o);
  EXPECT_FALSE(second.interrupted);
  EXPECT_EQ(second.resumed, 16);
  EXPECT_EQ(second.embedded, 24);
  EXPECT_FALSE(fs::exists(out.file("embed.checkpoint.h5")));
  EXPECT_EQ(embeddings(out.path()), embeddings(reference));
  EXPECT_EQ(sha256_file(out.file("corpus.faiss")), sha256_file(work.file("corpus.faiss")));
}

TEST_F(Pipeline, ADamagedCheckpointIsDiscardedAndItsWorkRedone) {
  test::TempDir work;
  embed_corpus(embed_options(images_, work.path()));
  test::TempDir out;
  EmbedOptions o = embed_options(images_, out.path());
  o.checkpoint_every = 8;
  o.stop_after = 13;
  embed_corpus(o);
  const std::string checkpoint = out.file("embed.checkpoint.h5");
  ASSERT_TRUE(fs::exists(checkpoint));
  {
    // One embedding value changed in place, the HDF5 structure intact.
    h5::File f = h5::File::open_rw(checkpoint);
    h5::Shape shape;
    std::vector<float> values = f.read_float("embeddings", &shape);
    values[5] += 0.78f;
    f.write_float("embeddings", values.data(), shape);
  }
  o.stop_after = -1;
  EmbedReport resumed = embed_corpus(o);
  EXPECT_EQ(resumed.resumed, 0) << "a damaged checkpoint was resumed";
  EXPECT_EQ(resumed.embedded, resumed.files);  // everything redone
  EXPECT_EQ(embeddings(out.path()), embeddings(work.path()));
}

TEST_F(Pipeline, EmbedKilledWithSigkillResumes) {
  const std::string indexer = test::program("feu-indexer");
  if (!fs::exists(indexer)) GTEST_SKIP() << "feu-indexer not built";
  test::TempDir work;
  EmbedOptions reference = embed_options(images_, work.path());
  reference.batch_size = 4;  // the batch size of the command below (CLIP numerics depend on it)
  use_compute_threads();     // and its thread count (feu-indexer uses every core)
  embed_corpus(reference);
  test::TempDir out;
  const std::string cmd = indexer + " embed --quiet --device cpu --batch 4 --threads 1 --checkpoint-every 4 --images " +
                          images_ + " --clip " + clip_path_ + " --out " + out.path();
  // Start it, SIGKILL it as soon as a checkpoint exists, then resume.
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " > /dev/null 2>&1").c_str(), (char*)nullptr);
    _exit(127);
  }
  for (int i = 0; i < 3000 && !fs::exists(out.file("embed.checkpoint.h5")); ++i) usleep(2000);
  kill(child, SIGKILL);
  int status = 0;
  waitpid(child, &status, 0);
  std::string output;
  ASSERT_EQ(test::run_command(cmd, &output), 0) << output;
  EXPECT_EQ(embeddings(out.path()), embeddings(work.path()));
  EXPECT_EQ(sha256_file(out.file("corpus.faiss")), sha256_file(work.file("corpus.faiss")));
}

TEST_F(Pipeline, UnreadableImagesAreSkippedAndReported) {
  test::TempDir work;
  const std::string images = work.file("images");
  fs::create_directories(images + "/0");
  fs::copy(images_ + "/0", images + "/0", fs::copy_options::recursive);
  std::ofstream(images + "/0/broken.png") << "not a png";
  std::vector<uint8_t> bytes = read_file(images + "/0/4.png");
  write_file_atomic(images + "/0/truncated.PNG", bytes.data(), bytes.size() / 2);
  // An image over the pixel limit is skipped before it is decoded (a bomb).
  image::Image big{300, 300, std::vector<uint8_t>(300 * 300 * 3, 128)};
  image::write_image(images + "/0/huge.png", big);
  const std::string out = work.file("out");
  EmbedOptions options = embed_options(images, out);
  options.max_image_pixels = 200 * 200;
  EmbedReport report = embed_corpus(options);
  EXPECT_EQ(report.files, 13);
  ASSERT_EQ(report.skipped.size(), 3u);
  EXPECT_EQ(report.skipped[0].first, "0/broken.png");
  EXPECT_EQ(report.skipped[1].first, "0/huge.png");
  EXPECT_NE(report.skipped[1].second.find("over the limit of 40000"), std::string::npos) << report.skipped[1].second;
  EXPECT_EQ(report.skipped[2].first, "0/truncated.PNG");
  EXPECT_NE(report.text().find("unreadable: 0/broken.png"), std::string::npos);
  EXPECT_EQ(CorpusIndex::load(out).size(), 10);

  // Nothing readable, or nothing at all: an error, not an empty index.
  const std::string bad = work.file("bad");
  fs::create_directories(bad);
  EXPECT_THROW(embed_corpus(embed_options(bad, work.file("o1"))), Error);
  std::ofstream(bad + "/x.jpg") << "junk";
  try {
    embed_corpus(embed_options(bad, work.file("o2")));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("empty corpus"), std::string::npos);
  }
}

TEST_F(Pipeline, StatsAreThePopulationMomentsOfS) {
  StyleStats stats = StyleStats::load(stats_path_);
  EXPECT_EQ(stats.num_samples, 3000);
  EXPECT_EQ(stats.seed, 5);
  EXPECT_NE(stats.truncation_rule.find("every w"), std::string::npos);
  // Recompute in one batch, independently of the chunked merge.
  stylegan2::Generator g = stylegan2::Generator::load(generator_path_, at::kCPU);
  std::vector<double> z = stylegan2::numpy_randn(5, 3000 * 16);
  at::Tensor zt = at::from_blob(z.data(), {3000, 16}, at::kDouble).to(at::kFloat);
  at::Tensor s = g.style_space().flatten(g.styles_from_ws(g.mapping(zt, 0.7))).to(at::kDouble);
  at::Tensor mean = s.mean(0), std = (s - mean).pow(2).mean(0).sqrt();
  ASSERT_EQ(int64_t(stats.s_mean.size()), g.style_space().total_channels());
  for (int64_t c = 0; c < mean.size(0); ++c) {
    EXPECT_NEAR(stats.s_mean[c], mean[c].item<double>(), 1e-5);
    EXPECT_NEAR(stats.s_std[c], std[c].item<double>(), 1e-5);
  }
}

TEST_F(Pipeline, DirectionRowsEqualBruteForce) {
  test::TempDir work;
  stylegan2::Generator g = stylegan2::Generator::load(generator_path_, at::kCPU);
  const auto& layers = g.style_space().layers();
  for (int layer : {0, 2, 6}) {  // b4.conv1, b8.conv0, b16.conv1
    ASSERT_EQ(layers[layer].kind, stylegan2::StyleKind::kConv);
    DirectionsOptions o = directions_options(work.file("d" + std::to_string(layer) + ".h5"));
    o.only_layer = layer;
    o.max_channels = 3;
    o.channels_per_block = 2;
    o.clip_batch = 5;  // CLIP batches that cut across channels and signs
    DirectionsReport report = compute_directions(o);
    EXPECT_EQ(report.computed, 3);
    Directions d = Directions::load(o.out_path);
    for (int64_t c = 0; c < 3; ++c) {
      const int64_t flat = layers[layer].offset + c;
      const auto row_it = std::find(d.covered_channels.begin(), d.covered_channels.end(), flat);
      ASSERT_NE(row_it, d.covered_channels.end());
      const int64_t row = row_it - d.covered_channels.begin();
      ASSERT_EQ(d.dead[row], 0);
      std::vector<float> expected = brute_force_direction(o, flat);
      double norm = 0;
      for (int64_t i = 0; i < d.embed_dim; ++i) {
        EXPECT_NEAR(d.fs3[row * d.embed_dim + i], expected[i], 1e-5) << layers[layer].name << " channel " << c;
        norm += double(expected[i]) * expected[i];
      }
      EXPECT_NEAR(norm, 1.0, 1e-5);
    }
    // Batched synthesis (the CUDA default) is the same computation up to float
    // reassociation, which the uint8 quantization can amplify to ~1e-4.
    DirectionsOptions batched = o;
    batched.out_path = work.file("batched" + std::to_string(layer) + ".h5");
    batched.synth_batch = 4;
    compute_directions(batched);
    Directions b = Directions::load(batched.out_path);
    for (size_t i = 0; i < b.fs3.size(); ++i) EXPECT_NEAR(b.fs3[i], d.fs3[i], 2e-3);
  }
}

TEST_F(Pipeline, ReducedPrecisionDirectionsReportTheirAgreementWithFp32) {
  test::TempDir work;
  DirectionsOptions o = directions_options(work.file("fp32.h5"));
  o.only_layer = 6;  // b16.conv1: its renders run through the bf16 blocks above it
  o.max_channels = 4;
  compute_directions(o);
  const Directions fp32 = Directions::load(o.out_path);

  DirectionsOptions reduced = o;
  reduced.out_path = work.file("bf16.h5");
  reduced.precision = "bf16";
  reduced.num_fp16_res = 2;
  reduced.agreement_channels = 10;  // more than there are: every live computed row
  const DirectionsReport report = compute_directions(reduced);
  const Directions bf16 = Directions::load(reduced.out_path);
  EXPECT_NE(bf16.fs3, fp32.fs3);  // the renders did change precision

  // The report's figures are the cosines between these rows and the fp32 run's.
  int64_t live = 0, at_least = 0;
  double lowest = 1.0;
  for (int64_t row = 0; row < fp32.covered(); ++row) {
    if (fp32.dead[row] || bf16.dead[row]) continue;
    double dot = 0, a = 0, b = 0;
    for (int64_t k = 0; k < fp32.embed_dim; ++k) {
      const double x = bf16.fs3[row * fp32.embed_dim + k], y = fp32.fs3[row * fp32.embed_dim + k];
      dot += x * y;
      a += x * x;
      b += y * y;
    }
    const double cosine = dot / std::sqrt(a * b);
    live += 1;
    at_least += cosine >= 0.99;
    lowest = std::min(lowest, cosine);
  }
  ASSERT_EQ(live, 4);
  EXPECT_EQ(report.agreement_checked, live);
  EXPECT_EQ(report.agreement_at_least_099, at_least);
  EXPECT_NEAR(report.agreement_min_cosine, lowest, 1e-6);
  EXPECT_NE(report.text().find("agreement with fp32"), std::string::npos) << report.text();
  EXPECT_NE(bf16.info.render.find("bf16"), std::string::npos) << bf16.info.render;
  EXPECT_NE(bf16.info.render.find("against fp32"), std::string::npos) << bf16.info.render;

  // A bf16 run's checkpoint never resumes into an fp32 run of the same output (the precision is
  // part of the job): the fp32 run recomputes everything and gives the fp32 rows.
  DirectionsOptions interrupted = reduced;
  interrupted.out_path = work.file("mixed.h5");
  interrupted.agreement_channels = 0;
  interrupted.channels_per_block = 2;
  interrupted.stop_after = 2;
  EXPECT_TRUE(compute_directions(interrupted).interrupted);
  DirectionsOptions fp32_rerun = o;
  fp32_rerun.out_path = interrupted.out_path;
  fp32_rerun.channels_per_block = 2;
  const DirectionsReport rerun = compute_directions(fp32_rerun);
  EXPECT_EQ(rerun.resumed, 0);
  EXPECT_EQ(Directions::load(fp32_rerun.out_path).fs3, fp32.fs3);

  // What cannot be checked or run is refused by name.
  auto refused = [&](DirectionsOptions bad, const std::string& named) {
    bad.out_path = work.file("refused.h5");
    try {
      compute_directions(bad);
      ADD_FAILURE() << "accepted: " << named;
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
      EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
    }
  };
  DirectionsOptions fp32_check = o;
  fp32_check.agreement_channels = 2;
  refused(fp32_check, "--precision");
  DirectionsOptions cumulative = reduced;
  cumulative.cumulative = true;
  refused(cumulative, "--cumulative");
  DirectionsOptions fp16 = o;
  fp16.precision = "fp16";
  refused(fp16, "CUDA");
}

TEST_F(Pipeline, InterruptedDirectionsResumeToIdenticalRows) {
  test::TempDir work;
  DirectionsOptions o = directions_options(work.file("full.h5"));
  o.coverage = "8";
  o.channels_per_block = 4;
  compute_directions(o);
  Directions full = Directions::load(o.out_path);
  EXPECT_EQ(full.covered(), 16 + 16 + 8);  // b4.conv1, b8.conv0, b8.conv1

  DirectionsOptions r = directions_options(work.file("resumed.h5"));
  r.coverage = "8";
  r.channels_per_block = 4;
  r.stop_after = 9;
  DirectionsReport first = compute_directions(r);
  EXPECT_TRUE(first.interrupted);
  EXPECT_FALSE(fs::exists(r.out_path));
  r.stop_after = -1;
  DirectionsReport second = compute_directions(r);
  EXPECT_FALSE(second.interrupted);
  EXPECT_EQ(second.resumed, 12);
  Directions resumed = Directions::load(r.out_path);
  EXPECT_EQ(resumed.fs3, full.fs3);
  EXPECT_EQ(resumed.dead, full.dead);
}

TEST_F(Pipeline, ADamagedDirectionsCheckpointIsDiscardedAndItsWorkRedone) {
  test::TempDir work;
  DirectionsOptions o = directions_options(work.file("full.h5"));
  o.coverage = "8";
  o.channels_per_block = 4;
  compute_directions(o);
  Directions full = Directions::load(o.out_path);
  DirectionsOptions r = directions_options(work.file("resumed.h5"));
  r.coverage = "8";
  r.channels_per_block = 4;
  r.stop_after = 9;
  compute_directions(r);
  const std::string checkpoint = r.out_path + ".checkpoint.h5";
  ASSERT_TRUE(fs::exists(checkpoint));
  {
    h5::File f = h5::File::open_rw(checkpoint);
    h5::Shape shape;
    std::vector<float> values = f.read_float("fs3", &shape);
    values[3] += 0.5f;
    f.write_float("fs3", values.data(), shape);
  }
  r.stop_after = -1;
  DirectionsReport second = compute_directions(r);
  EXPECT_EQ(second.resumed, 0) << "a damaged checkpoint was resumed";
  EXPECT_EQ(Directions::load(r.out_path).fs3, full.fs3);
}

// Every dataset of two HDF5 files, compared value for value (numbers as
// doubles: exact for float32 and int64 data; strings as strings).
void expect_same_datasets(const std::string& a_path, const std::string& b_path, const std::string& group = "/") {
  h5::File a = h5::File::open_read(a_path), b = h5::File::open_read(b_path);
  ASSERT_EQ(a.list(group), b.list(group)) << group;
  for (const std::string& name : a.list(group)) {
    const std::string path = group == "/" ? name : group + "/" + name;
    if (a.is_group(path)) {
      expect_same_datasets(a_path, b_path, path);
      continue;
    }
    EXPECT_EQ(a.shape(path), b.shape(path)) << path;
    try {
      EXPECT_EQ(a.read_double(path), b.read_double(path)) << path;
    } catch (const Error&) {
      EXPECT_EQ(a.read_strings(path), b.read_strings(path)) << path;
    }
  }
}

TEST_F(Pipeline, DirectionShardsMergeIntoTheSingleRunsDatasets) {
  for (bool cumulative : {false, true}) {
    SCOPED_TRACE(cumulative ? "cumulative" : "independent");
    test::TempDir work;
    auto options = [&](const std::string& out) {
      DirectionsOptions o = directions_options(work.file(out));
      o.coverage = "8";
      o.channels_per_block = 4;
      o.cumulative = cumulative;
      if (!cumulative) o.max_channels = 6;  // blocks of 4 and 2 channels, rows past 6 dead
      return o;
    };
    DirectionsOptions single = options("single.h5");
    compute_directions(single);
    std::vector<std::string> shards;
    for (int k = 3; k >= 1; --k) {
      DirectionsOptions o = options("shard" + std::to_string(k) + ".h5");
      o.shard = parse_shard(std::to_string(k) + "/3");
      DirectionsReport report = compute_directions(o);
      EXPECT_GT(report.computed, 0);
      EXPECT_LT(report.computed, cumulative ? 40 : 18);
      shards.push_back(o.out_path);
    }
    Directions merged = merge_direction_shards(shards);
    EXPECT_FALSE(merged.info.shard.active());
    merged.save(work.file("merged.h5"));
    expect_same_datasets(single.out_path, work.file("merged.h5"));
  }
}

TEST_F(Pipeline, DirectionShardMergeRefusesMismatchedOverlappingOrMissingShards) {
  test::TempDir work;
  auto shard = [&](const std::string& name, const std::string& k_of_n, double step = 5.0) {
    DirectionsOptions o = directions_options(work.file(name));
    o.coverage = "4";
    o.channels_per_block = 1;
    o.max_channels = 2;
    o.step_sigmas = step;
    if (!k_of_n.empty()) o.shard = parse_shard(k_of_n);
    compute_directions(o);
    return o.out_path;
  };
  const std::string one = shard("one.h5", "1/2"), two = shard("two.h5", "2/2");
  EXPECT_EQ(merge_direction_shards({two, one}).covered(), 16);
  test::expect_error([&] { merge_direction_shards({one}); }, ErrorCode::kInvalidArgument, {"missing shard(s) 2/2"});
  test::expect_error([&] { merge_direction_shards({one, one, two}); }, ErrorCode::kInvalidArgument,
                     {"shard 1/2 is given twice"});
  test::expect_error([&] { merge_direction_shards({one, shard("third.h5", "2/3")}); }, ErrorCode::kInvalidArgument,
                     {"third.h5", "2/3", "1/2"});
  test::expect_error([&] { merge_direction_shards({one, shard("whole.h5", "")}); }, ErrorCode::kInvalidArgument,
                     {"whole.h5", "is not a directions shard"});
  test::expect_error([&] { merge_direction_shards({one, shard("step4.h5", "2/2", 4.0)}); },
                     ErrorCode::kArtifactMismatch, {"different settings", "step=5", "step=4", "step4.h5"});
  const std::string other_model = work.file("other_model.h5");
  fs::copy_file(two, other_model);
  {
    h5::File f = h5::File::open_rw(other_model);
    std::string settings = f.attr_string("/", "shard_settings");
    settings.replace(settings.find("generator_sha256=") + 17, 4, "ffff");
    f.set_attr("/", "shard_settings", settings);
  }
  test::expect_error([&] { merge_direction_shards({one, other_model}); }, ErrorCode::kArtifactMismatch,
                     {"different models", "generator_sha256", "other_model.h5"});
  const std::string overlapping = work.file("overlapping.h5");
  fs::copy_file(two, overlapping);
  {
    h5::File f = h5::File::open_rw(overlapping);
    f.set_attr("/", "shard_row_begin", int64_t{0});
  }
  test::expect_error([&] { merge_direction_shards({one, overlapping}); }, ErrorCode::kInvalidArgument,
                     {"overlapping.h5", "overlaps"});
  test::expect_error([] { parse_shard("3/2"); }, ErrorCode::kInvalidArgument, {"3/2", "1 <= K <= N"});
}

TEST_F(Pipeline, EmbedShardsMergeIntoTheSingleRunsCorpus) {
  test::TempDir work;
  const std::string images = work.file("images");
  fs::copy(images_, images, fs::copy_options::recursive);
  write_file_atomic(images + "/2/unreadable.png", std::string("not a png"));  // skipped: ids move on
  EmbedOptions single = embed_options(images, work.file("single"));
  embed_corpus(single);
  std::vector<std::string> shards;
  for (int k : {2, 3, 1}) {
    EmbedOptions o = embed_options(images, work.file("shard" + std::to_string(k)));
    o.shard = parse_shard(std::to_string(k) + "/3");
    EmbedReport report = embed_corpus(o);
    EXPECT_GT(report.embedded, 0);
    EXPECT_LT(report.embedded, 40);
    EXPECT_FALSE(fs::exists(o.out_dir + "/corpus.h5"));
    shards.push_back(o.out_dir);
  }
  CorpusIndex merged = merge_embed_shards(shards, {});
  fs::create_directories(work.file("merged"));
  merged.save(work.file("merged"));
  expect_same_datasets(single.out_dir + "/corpus.h5", work.file("merged/corpus.h5"));
  EXPECT_EQ(read_file(single.out_dir + "/corpus.faiss"), read_file(work.file("merged/corpus.faiss")));
  EXPECT_EQ(merged.size(), 40);

  test::expect_error([&] { merge_embed_shards({shards[0], shards[2]}, {}); }, ErrorCode::kInvalidArgument,
                     {"missing shard(s) 3/3"});
  EmbedOptions other = embed_options(images, work.file("other"));
  other.batch_size = 4;
  other.shard = parse_shard("3/3");
  embed_corpus(other);
  test::expect_error([&] { merge_embed_shards({shards[1], shards[2], other.out_dir}, {}); },
                     ErrorCode::kArtifactMismatch, {"different settings", "batch=8", "batch=4"});
}

TEST_F(Pipeline, ZeroSigmaChannelIsDeadNotNan) {
  test::TempDir work;
  StyleStats stats = StyleStats::load(stats_path_);
  stats.s_std[1] = 0.0f;  // b4.conv1 channel 1
  const std::string stats_path = work.file("stats.h5");
  stats.save(stats_path);
  DirectionsOptions o = directions_options(work.file("d.h5"));
  o.stats_path = stats_path;
  o.only_layer = 0;
  o.max_channels = 3;
  compute_directions(o);
  Directions d = Directions::load(o.out_path);
  EXPECT_EQ(d.dead[0], 0);
  EXPECT_EQ(d.dead[1], 1);
  for (int64_t i = 0; i < d.embed_dim; ++i) EXPECT_EQ(d.fs3[d.embed_dim + i], 0.0f);
  // Rows past --max-channels were not computed: dead, zero.
  EXPECT_EQ(d.dead[5], 1);
}

TEST_F(Pipeline, CumulativeVariantDiffersAfterTheFirstChannel) {
  test::TempDir work;
  DirectionsOptions o = directions_options(work.file("ind.h5"));
  o.only_layer = 0;
  o.max_channels = 3;
  compute_directions(o);
  DirectionsOptions c = directions_options(work.file("cum.h5"));
  c.only_layer = 0;
  c.max_channels = 3;
  c.cumulative = true;
  compute_directions(c);
  Directions a = Directions::load(o.out_path), b = Directions::load(c.out_path);
  const int64_t e = a.embed_dim;
  // Channel 0 sees the same images in both variants; channel 2 sees channels 0-1 at their means.
  for (int64_t i = 0; i < e; ++i) EXPECT_NEAR(a.fs3[i], b.fs3[i], 1e-5);
  double diff = 0;
  for (int64_t i = 0; i < e; ++i) diff += std::abs(a.fs3[2 * e + i] - b.fs3[2 * e + i]);
  EXPECT_GT(diff, 1e-4);
  EXPECT_NE(b.info.variant.find("cumulative"), std::string::npos);
}

TEST_F(Pipeline, StatsOfAnotherGeneratorAreRejected) {
  test::TempDir work;
  StyleStats stats = StyleStats::load(stats_path_);
  stats.generator_sha256 = std::string(64, '0');
  stats.save(work.file("stats.h5"));
  DirectionsOptions o = directions_options(work.file("d.h5"));
  o.stats_path = work.file("stats.h5");
  try {
    compute_directions(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kArtifactMismatch);
  }
}

TEST(DemoAssets, BuildsVerifiedArtifactsEndToEnd) {
  const std::string indexer = test::program("feu-indexer");
  if (!fs::exists(indexer)) GTEST_SKIP() << "feu-indexer not built";
  test::TempDir out;
  std::string output;
  ASSERT_EQ(test::run_command(indexer + " demo-assets --quiet --out " + out.path() +
                                  " --images 24 --stats-samples 2000 --direction-images 2",
                              &output),
            0)
      << output;
  const std::string current = ArtifactSet::resolve_current(out.path() + "/artifacts");
  VerifyReport report = verify(current);
  EXPECT_TRUE(report.ok()) << report.text();
  ArtifactSet set = ArtifactSet::open(current);
  EXPECT_EQ(CorpusIndex::load(set.corpus_dir()).size(), 24);
  Directions d = Directions::load(set.directions_path());
  EXPECT_GT(d.covered(), 100);
  EXPECT_FALSE(set.model_path("generator.h5").empty());
  EXPECT_FALSE(set.model_path("vocab.txt.gz").empty());
  EXPECT_EQ(set.manifest().generator_sha256, sha256_file(set.model_path("generator.h5")));
}

}  // namespace
}  // namespace feu::index
