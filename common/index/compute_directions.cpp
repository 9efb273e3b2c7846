// `feu-indexer directions`: Δi_c (StyleCLIP's fs3) for every covered conv
// channel, exactly as SingleChannel.py + GetFs compute it, but batched: the
// activations below a perturbed layer are computed once per layer and shared
// by all of its channels and both signs (Generator::run_until/run_from).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "clip/model.h"
#include "clip/preprocess.h"
#include "core/error.h"
#include "index/checkpoint.h"
#include "core/files.h"
#include "core/h5.h"
#include "index/artifacts.h"
#include "index/pipeline.h"
#include "index/progress.h"
#include "index/style_layers.h"
#include "stylegan2/generator.h"
#include "stylegan2/seed.h"
#include "tensor/tensor_h5.h"

namespace feu::index {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Everything a run needs, loaded once.
struct Setup {
  at::Device device = at::kCPU;
  std::unique_ptr<stylegan2::Generator> generator;  // in the run's precision
  std::unique_ptr<stylegan2::Generator> fp32;       // the same weights in fp32 (the agreement check)
  std::unique_ptr<clip::ClipModel> clip;
  StyleStats stats;
  std::vector<at::Tensor> base;  // per style layer [M, C_l] on device: the M image codes
  int64_t images = 0;
};

Setup load_setup(const DirectionsOptions& o) {
  check(o.images > 0, ErrorCode::kInvalidArgument, "--images must be positive");
  check(o.step_sigmas > 0, ErrorCode::kInvalidArgument, "--step must be positive");
  Setup s;
  check(o.agreement_channels >= 0, ErrorCode::kInvalidArgument, "--agreement-channels must be >= 0");
  check(o.agreement_channels == 0 || o.precision != "fp32", ErrorCode::kInvalidArgument,
        "--agreement-channels compares a reduced-precision run with fp32: give --precision bf16 or fp16");
  check(o.agreement_channels == 0 || !o.cumulative, ErrorCode::kInvalidArgument,
        "--agreement-channels checks independent rows; --cumulative rows depend on the channels before them");
  const stylegan2::Precision precision = stylegan2::parse_precision(o.precision);
  s.device = resolve_device(o.device);
  check(precision != stylegan2::Precision::kFp16 || s.device.is_cuda(), ErrorCode::kInvalidArgument,
        "--precision fp16 needs a CUDA device (libtorch has no fp16 convolutions on the CPU); use bf16 or fp32");
  s.fp32 = std::make_unique<stylegan2::Generator>(stylegan2::Generator::load(o.generator_path, s.device));
  s.generator = std::make_unique<stylegan2::Generator>(s.fp32->with_precision(precision, o.num_fp16_res));
  s.clip = std::make_unique<clip::ClipModel>(clip::ClipModel::load(o.clip_path, s.device));
  s.stats = StyleStats::load(o.stats_path);
  const std::string generator_sha = s.generator->fingerprint();
  check(s.stats.generator_sha256 == generator_sha, ErrorCode::kArtifactMismatch,
        o.stats_path + " was computed for generator " + s.stats.generator_sha256.substr(0, 12) + "…, not for " +
            o.generator_path + " (" + generator_sha.substr(0, 12) + "…)");
  const std::vector<LayerSpec> layers = layer_specs_of(s.generator->style_space());
  check(layers.size() == s.stats.layers.size() &&
            int64_t(s.stats.s_mean.size()) == s.generator->style_space().total_channels(),
        ErrorCode::kArtifactMismatch, o.stats_path + " has another S layout than the generator");
  // StyleCLIP renders the first M codes of the statistics' z stream.
  s.images = o.images;
  const int64_t z_dim = s.generator->config().z_dim;
  std::vector<double> z_values = stylegan2::numpy_randn(static_cast<uint32_t>(s.stats.seed), o.images * z_dim);
  at::Tensor z = at::from_blob(z_values.data(), {o.images, z_dim}, at::kDouble).to(at::kFloat).to(s.device);
  at::Tensor ws = s.generator->mapping(z, s.stats.psi, s.stats.truncation_cutoff);
  s.base = s.generator->styles_from_ws(ws);
  return s;
}

// GetFs for one channel: rows of `minus`/`plus` are the M embeddings [M,E] (double).
// Returns false (dead) when the mean direction has zero norm.
bool aggregate(const at::Tensor& minus, const at::Tensor& plus, float* out, int64_t dim) {
  auto unit_rows = [](const at::Tensor& x) {
    at::Tensor norm = x.norm(2, 1, true);
    return at::where(norm > 0, x / norm.clamp_min(1e-300), at::zeros_like(x));
  };
  at::Tensor d = unit_rows(unit_rows(plus) - unit_rows(minus));  // zero-norm differences contribute nothing
  at::Tensor m = d.mean(0);
  const double norm = m.norm().item<double>();
  if (!(norm > 0) || !std::isfinite(norm)) {
    std::fill(out, out + dim, 0.0f);
    return false;
  }
  at::Tensor row = (m / norm).to(at::kFloat).contiguous();
  std::copy(row.data_ptr<float>(), row.data_ptr<float>() + dim, out);
  return true;
}

// What the shards of one run must share, readable so a merge can name the
// difference ("key=value" lines; see merge_direction_shards).
std::string settings_text(const DirectionsOptions& o, const Setup& s, int64_t micro, int64_t clip_batch) {
  std::ostringstream text;
  text << "generator_sha256=" << s.generator->fingerprint() << "\nclip_sha256=" << s.clip->fingerprint()
       << "\nstats_sha256=" << sha256_file(o.stats_path) << "\nimages=" << o.images << "\nstep=" << o.step_sigmas
       << "\ncoverage=" << o.coverage << "\ncumulative=" << o.cumulative << "\nblock=" << o.channels_per_block
       << "\nsynth_batch=" << micro << "\nclip_batch=" << clip_batch << "\nlayer=" << o.only_layer
       << "\nmax_channels=" << o.max_channels << "\ndevice=" << (s.device.is_cuda() ? "cuda" : "cpu")
       << "\nprecision=" << o.precision;
  if (o.precision != "fp32") text << "\nnum_fp16_res=" << o.num_fp16_res;
  text << "\n";
  return text.str();
}

std::string job_fingerprint(const std::string& settings, const Shard& shard) {
  const std::string t = settings + "shard=" + (shard.active() ? shard.text() : std::string("all")) + "\n";
  return sha256_bytes(t.data(), t.size());
}

struct Checkpoint {
  std::vector<uint8_t> done;  // [covered]
  std::vector<float> fs3;     // [covered, E]
  std::vector<uint8_t> dead;  // [covered]
};

// What a resume takes from the checkpoint (index/checkpoint.h).
std::string digest(const Checkpoint& cp) {
  return checkpoint_digest({{cp.done.data(), cp.done.size()},
                            {cp.dead.data(), cp.dead.size()},
                            {cp.fs3.data(), cp.fs3.size() * sizeof(float)}});
}

void write_checkpoint(const std::string& path, const std::string& job, const Checkpoint& cp, int64_t dim) {
  AtomicFile out(path);
  {
    h5::File file = h5::File::create(out.temp_path());
    file.set_attr("/", "job", job);
    file.set_attr("/", "sha256", digest(cp));
    const int64_t n = static_cast<int64_t>(cp.done.size());
    file.write_uint8("done", cp.done.data(), {n});
    file.write_uint8("dead", cp.dead.data(), {n});
    file.write_float("fs3", cp.fs3.data(), {n, dim});
    file.close();
  }
  out.commit();
}

bool read_checkpoint(const std::string& path, const std::string& job, int64_t rows, int64_t dim, Checkpoint* cp) {
  if (!fs::exists(path)) return false;
  try {
    h5::File file = h5::File::open_read(path);
    if (file.attr_string("/", "job") != job) return false;
    cp->done = file.read_uint8("done");
    cp->dead = file.read_uint8("dead");
    cp->fs3 = file.read_float("fs3");
    if (int64_t(cp->done.size()) != rows || int64_t(cp->dead.size()) != rows || int64_t(cp->fs3.size()) != rows * dim ||
        !file.has_attr("/", "sha256") || file.attr_string("/", "sha256") != digest(*cp))
      return discard_checkpoint("directions", path, "it fails its checksum: damaged");
    return true;
  } catch (const Error& e) {
    return discard_checkpoint("directions", path, e.what());
  }
}

// Δi of one channel the slow way, on `generator`: for each of the M images separately, s_c at
// μ ∓ step·σ, a batch-1 full synthesis each (the row compute_directions gives on the CPU).
std::vector<float> direction_of_channel(const DirectionsOptions& o, const Setup& s,
                                        const stylegan2::Generator& generator, int64_t flat_channel) {
  const std::vector<LayerSpec> layers = layer_specs_of(generator.style_space());
  int64_t layer = -1;
  for (size_t l = 0; l < layers.size(); ++l)
    if (flat_channel >= layers[l].offset && flat_channel < layers[l].offset + layers[l].channels) layer = int64_t(l);
  check(layer >= 0, ErrorCode::kInvalidArgument, "flat channel out of range");
  const int64_t c = flat_channel - layers[layer].offset;
  const int64_t dim = s.clip->config().embed_dim;
  const int clip_res = static_cast<int>(s.clip->config().image_resolution);
  const double mu = s.stats.s_mean[flat_channel], sigma = s.stats.s_std[flat_channel];
  std::vector<float> out(dim, 0.0f);
  if (!(sigma > 0)) return out;
  at::Tensor minus = at::empty({s.images, dim}, at::kDouble), plus = at::empty({s.images, dim}, at::kDouble);
  for (int64_t m = 0; m < s.images; ++m) {
    for (int sign = 0; sign < 2; ++sign) {
      std::vector<at::Tensor> styles;
      for (const at::Tensor& t : s.base) styles.push_back(t.narrow(0, m, 1).clone());
      styles[layer][0][c].fill_(mu + (sign ? 1.0 : -1.0) * o.step_sigmas * sigma);
      at::Tensor img = generator.synthesize(styles, stylegan2::NoiseMode::kConst);
      at::Tensor f = s.clip->encode_image(clip::preprocess_generated(img, clip_res)).to(at::kCPU).to(at::kDouble);
      (sign ? plus : minus)[m].copy_(f[0]);
    }
  }
  aggregate(minus, plus, out.data(), dim);
  return out;
}

// The reduced-precision run's check: o.agreement_channels live rows computed by this run, evenly
// spread, again in fp32; their cosines go to the report.
void check_agreement(const DirectionsOptions& o, const Setup& s, const Directions& d,
                     const std::vector<uint8_t>& computed_now, DirectionsReport* report) {
  std::vector<int64_t> candidates;  // rows computed now and alive
  for (int64_t r = 0; r < int64_t(computed_now.size()); ++r)
    if (computed_now[r] && !d.dead[r]) candidates.push_back(r);
  const int64_t count = std::min<int64_t>(o.agreement_channels, int64_t(candidates.size()));
  const int64_t dim = d.embed_dim;
  const std::vector<int64_t>& flat = d.covered_channels;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t row = candidates[(i * int64_t(candidates.size())) / count];
    const std::vector<float> reference = direction_of_channel(o, s, *s.fp32, flat[row]);
    // Both rows are unit vectors (aggregate), or the fp32 one is dead (zero): the cosine is the dot.
    double cosine = 0;
    for (int64_t k = 0; k < dim; ++k) cosine += double(d.fs3[row * dim + k]) * reference[k];
    report->agreement_checked += 1;
    report->agreement_at_least_099 += cosine >= 0.99;
    report->agreement_min_cosine = std::min(report->agreement_min_cosine, cosine);
  }
}

}  // namespace

std::string DirectionsReport::text() const {
  char buffer[512];
  std::snprintf(buffer, sizeof buffer,
                "directions: %ld channels (%ld computed now, %ld resumed), %ld dead; %.1f s total "
                "(synthesis %.1f s, CLIP %.1f s)%s\n",
                long(channels), long(computed), long(resumed), long(dead), total_seconds, synth_seconds,
                clip_seconds, interrupted ? "; interrupted: rerun the same command to resume" : "");
  std::string out = buffer;
  if (agreement_checked > 0) {
    std::snprintf(buffer, sizeof buffer,
                  "agreement with fp32: %ld of %ld checked channels at cosine >= 0.99 (%.1f%%), lowest %.4f\n",
                  long(agreement_at_least_099), long(agreement_checked),
                  100.0 * double(agreement_at_least_099) / double(agreement_checked), agreement_min_cosine);
    out += buffer;
  }
  return out;
}

DirectionsReport compute_directions(const DirectionsOptions& o) {
  c10::InferenceMode inference;  // no autograd bookkeeping
  const auto start = Clock::now();
  Setup s = load_setup(o);
  const stylegan2::StyleSpace& space = s.generator->style_space();
  const std::vector<LayerSpec> layers = layer_specs_of(space);
  std::vector<bool> covered = coverage_mask(layers, o.coverage);
  if (o.only_layer >= 0) {
    check(o.only_layer < int64_t(layers.size()) && layers[o.only_layer].is_conv, ErrorCode::kInvalidArgument,
          "--layer " + std::to_string(o.only_layer) + " is not a conv style layer");
    for (size_t i = 0; i < covered.size(); ++i) covered[i] = int64_t(i) == o.only_layer;
  }
  const int64_t dim = s.clip->config().embed_dim;
  const int clip_res = static_cast<int>(s.clip->config().image_resolution);
  Directions d;
  d.set_layout(layers, covered, dim);
  d.s_mean = s.stats.s_mean;
  d.s_std = s.stats.s_std;
  const int64_t rows = d.covered();
  check(rows > 0, ErrorCode::kInvalidArgument, "coverage '" + o.coverage + "' selects no conv channel");

  const int64_t block = std::max<int64_t>(1, o.channels_per_block);
  // Batched synthesis differs from batch-1 synthesis by ~1e-6 before the uint8
  // quantization, which then flips the odd pixel and moves a row by ~1e-4. On
  // CPU batching buys little, so the default renders one sample at a time and
  // reproduces the one-image reference exactly; CUDA batches.
  const int64_t micro = o.synth_batch > 0 ? o.synth_batch : (s.device.is_cuda() ? 128 : 1);
  const int64_t clip_batch = std::max<int64_t>(micro, o.clip_batch > 0 ? o.clip_batch : 64);
  auto channels_of = [&](size_t l) {
    return o.max_channels >= 0 ? std::min(o.max_channels, layers[l].channels) : layers[l].channels;
  };

  // A shard is a run of whole render blocks (batching, hence every bit of a
  // row, as in a single run); the rows of the other shards count as done.
  std::vector<uint8_t> skip(rows, 0);
  int64_t shard_begin = 0, shard_end = rows;
  if (o.shard.active()) {
    std::vector<int64_t> block_starts;
    for (size_t l = 0, first_row = 0; l < layers.size(); ++l) {
      if (!covered[l]) continue;
      for (int64_t b0 = 0; b0 < channels_of(l); b0 += block) block_starts.push_back(int64_t(first_row) + b0);
      first_row += layers[l].channels;
    }
    const int64_t blocks = int64_t(block_starts.size());
    const auto [first, last] = shard_part(o.shard, blocks);
    shard_begin = first == blocks ? rows : block_starts[first];
    shard_end = last == blocks ? rows : block_starts[last];
    for (int64_t r = 0; r < rows; ++r) skip[r] = r < shard_begin || r >= shard_end;
  }
  const std::string settings = settings_text(o, s, micro, clip_batch);
  const std::string checkpoint_path = o.out_path + ".checkpoint.h5";
  const std::string job = job_fingerprint(settings, o.shard);
  Checkpoint cp;
  DirectionsReport report;
  report.channels = rows;
  if (read_checkpoint(checkpoint_path, job, rows, dim, &cp)) {
    for (uint8_t v : cp.done) report.resumed += v;
    std::fprintf(stderr, "directions: resuming with %ld of %ld channels done (%s)\n", long(report.resumed),
                 long(rows), checkpoint_path.c_str());
  } else {
    cp.done.assign(rows, 0);
    cp.dead.assign(rows, 0);
    cp.fs3.assign(rows * dim, 0.0f);
  }
  const int64_t M = s.images;
  int64_t todo_total = 0;
  for (size_t l = 0, first_row = 0; l < layers.size(); ++l) {
    if (!covered[l]) continue;
    for (int64_t c = 0; c < channels_of(l); ++c) todo_total += !skip[first_row + c];
    first_row += layers[l].channels;
  }
  Progress progress("directions", todo_total, "ch", report.resumed, o.progress ? stderr : nullptr);

  // The cumulative variant keeps every processed channel at its mean for all
  // later channels (StyleCLIP's in-place side effect); replay it on resume.
  std::vector<at::Tensor> base = s.base;
  auto set_to_mean = [&](int64_t layer, int64_t c) {
    base[layer].select(1, c).fill_(double(d.s_mean[layers[layer].offset + c]));
  };

  int64_t row_offset = 0;
  bool interrupted = false;
  std::vector<uint8_t> computed_now(rows, 0);
  for (size_t l = 0; l < layers.size() && !interrupted; ++l) {
    if (!covered[l]) continue;
    const LayerSpec& layer = layers[l];
    const int64_t first_row = row_offset;
    row_offset += layer.channels;
    const int64_t channels = channels_of(l);
    bool layer_done = true;
    for (int64_t c = 0; c < channels; ++c) layer_done = layer_done && (cp.done[first_row + c] || skip[first_row + c]);
    if (layer_done) {
      if (o.cumulative)
        for (int64_t c = 0; c < channels; ++c) set_to_mean(l, c);
      continue;
    }
    auto t0 = Clock::now();
    // The activations below layer l, shared by all its channels and both signs.
    // With synth_batch 1 they are computed per image (batch 1), so every render
    // is bit-identical to a one-image-at-a-time synthesis (see below).
    stylegan2::SynthesisState prefix;
    std::vector<stylegan2::SynthesisState> prefix_per_image;
    if (micro == 1) {
      for (int64_t m = 0; m < M; ++m) {
        std::vector<at::Tensor> one;
        for (const at::Tensor& t : base) one.push_back(t.narrow(0, m, 1));
        prefix_per_image.push_back(s.generator->run_until(one, static_cast<int>(l)));
      }
    } else {
      prefix = s.generator->run_until(base, static_cast<int>(l));
    }
    report.synth_seconds += seconds_since(t0);

    for (int64_t b0 = 0; b0 < channels && !interrupted; b0 += block) {
      const int64_t b1 = std::min(channels, b0 + block);
      bool block_done = true;
      for (int64_t c = b0; c < b1; ++c) block_done = block_done && (cp.done[first_row + c] || skip[first_row + c]);
      if (block_done) {
        if (o.cumulative)
          for (int64_t c = b0; c < b1; ++c) set_to_mean(l, c);
        continue;
      }
      // Live channels of the block (σ = 0 means both renders are identical: dead).
      std::vector<int64_t> live;
      for (int64_t c = b0; c < b1; ++c) {
        const float sigma = d.s_std[layer.offset + c];
        if (sigma > 0 && std::isfinite(sigma)) {
          live.push_back(c);
        } else {
          cp.dead[first_row + c] = 1;
          std::fill(cp.fs3.begin() + (first_row + c) * dim, cp.fs3.begin() + (first_row + c + 1) * dim, 0.0f);
        }
      }
      // Sample j = (k·2 + sign)·M + m: live channel k, sign 0 = −step·σ, 1 = +step·σ, image m.
      const int64_t K = static_cast<int64_t>(live.size());
      const int64_t samples = 2 * K * M;
      at::Tensor features = at::empty({samples, dim}, at::kDouble);
      std::vector<at::Tensor> pending;  // preprocessed renders waiting for one CLIP batch
      int64_t pending_from = 0;
      for (int64_t j0 = 0; j0 < samples; j0 += micro) {
        const int64_t j1 = std::min(samples, j0 + micro);
        at::Tensor j = at::arange(j0, j1, at::kLong);
        at::Tensor image_index = (j % M).to(s.device);
        at::Tensor pair = j.div(M, "floor");  // k·2 + sign
        t0 = Clock::now();
        stylegan2::SynthesisState sub;
        if (micro == 1) {
          sub = prefix_per_image[j0 % M];
        } else {
          sub.layer_index = prefix.layer_index;
          sub.x = prefix.x.index_select(0, image_index);
          if (prefix.img.defined()) sub.img = prefix.img.index_select(0, image_index);
        }
        std::vector<at::Tensor> styles(layers.size());
        for (size_t m = l; m < layers.size(); ++m) styles[m] = base[m].index_select(0, image_index);
        at::Tensor perturbed = styles[l].clone();
        const auto pair_acc = pair.accessor<int64_t, 1>();
        for (int64_t r = 0; r < j1 - j0; ++r) {
          const int64_t k = pair_acc[r] / 2, sign = pair_acc[r] % 2;
          if (o.cumulative)  // channels processed before this one in the block are at their mean
            for (int64_t q = 0; q < k; ++q)
              perturbed[r][live[q]].fill_(double(d.s_mean[layer.offset + live[q]]));
          const int64_t c = live[k];
          const double mu = d.s_mean[layer.offset + c], sigma = d.s_std[layer.offset + c];
          perturbed[r][c].fill_(mu + (sign ? 1.0 : -1.0) * o.step_sigmas * sigma);
        }
        styles[l] = perturbed;
        at::Tensor img = s.generator->run_from(sub, styles, static_cast<int>(l));
        report.synth_seconds += seconds_since(t0);
        t0 = Clock::now();
        pending.push_back(clip::preprocess_generated(img, clip_res));
        if (j1 - pending_from >= clip_batch || j1 == samples) {
          at::Tensor f = s.clip->encode_image(at::cat(pending));
          features.narrow(0, pending_from, j1 - pending_from).copy_(f.to(at::kCPU).to(at::kDouble));
          pending.clear();
          pending_from = j1;
        }
        report.clip_seconds += seconds_since(t0);
      }
      for (int64_t k = 0; k < K; ++k) {
        const int64_t row = first_row + live[k];
        const bool alive = aggregate(features.narrow(0, (2 * k) * M, M), features.narrow(0, (2 * k + 1) * M, M),
                                     cp.fs3.data() + row * dim, dim);
        cp.dead[row] = alive ? 0 : 1;
      }
      for (int64_t c = b0; c < b1; ++c) {
        computed_now[first_row + c] = !cp.done[first_row + c];
        cp.done[first_row + c] = 1;
        if (o.cumulative) set_to_mean(l, c);
      }
      report.computed += b1 - b0;
      progress.advance(b1 - b0);
      interrupted = Interrupt::requested() || (o.stop_after >= 0 && report.computed >= o.stop_after);
      write_checkpoint(checkpoint_path, job, cp, dim);
    }
  }
  progress.finish();
  // Rows past --max-channels are not computed: they stay zero and dead.
  for (int64_t r = 0; r < rows; ++r)
    if (!cp.done[r]) cp.dead[r] = 1;
  bool all_done = true;
  {
    int64_t row = 0;
    for (size_t l = 0; l < layers.size(); ++l) {
      if (!covered[l]) continue;
      for (int64_t c = 0; c < channels_of(l); ++c) all_done = all_done && (cp.done[row + c] || skip[row + c]);
      row += layers[l].channels;
    }
  }
  report.total_seconds = seconds_since(start);
  if (interrupted && !all_done) {
    report.interrupted = true;
    return report;
  }
  d.fs3 = cp.fs3;
  d.dead = cp.dead;
  for (uint8_t v : d.dead) report.dead += v;
  if (o.agreement_channels > 0)
    check_agreement(o, s, d, computed_now, &report);
  DirectionsInfo& info = d.info;
  info.generator_sha256 = s.generator->fingerprint();
  info.clip_sha256 = s.clip->fingerprint();
  info.source = "computed";
  info.images_per_channel = M;
  info.seeds = "the first " + std::to_string(M) + " z of numpy RandomState(" + std::to_string(s.stats.seed) +
               ").randn(N, z_dim) (StyleCLIP's first codes of the statistics stream)";
  info.step_sigmas = o.step_sigmas;
  info.psi = s.stats.psi;
  info.truncation_rule = s.stats.truncation_rule;
  info.coverage = o.only_layer >= 0 ? "layer " + layers[o.only_layer].name : o.coverage;
  if (o.max_channels >= 0) info.coverage += " (first " + std::to_string(o.max_channels) + " channels per layer)";
  info.variant = o.cumulative ? "cumulative (StyleCLIP SingleChannel.py side effect: processed channels stay at "
                                "their mean)"
                              : "independent (only channel c changes; others keep each image's value)";
  info.stats_info = std::to_string(s.stats.num_samples) + " samples, seed " + std::to_string(s.stats.seed) +
                    ", population std; " + s.stats.truncation_rule;
  info.render = "full resolution, constant noise, uint8 quantization (x+1)*127.5 truncated, CLIP fp32";
  if (o.precision != "fp32") {
    info.render += "; synthesis in " + o.precision + " over the " + std::to_string(o.num_fp16_res) +
                   " highest-resolution blocks";
    if (report.agreement_checked > 0) {
      char agreement[160];
      std::snprintf(agreement, sizeof agreement,
                    " (against fp32: %ld of %ld checked channels at cosine >= 0.99, lowest %.4f)",
                    long(report.agreement_at_least_099), long(report.agreement_checked),
                    report.agreement_min_cosine);
      info.render += agreement;
    }
  }
  info.tool_version = tool_version();
  info.torch_version = torch_version();
  info.created = utc_timestamp();
  if (o.shard.active()) {
    info.shard = o.shard;
    info.shard_row_begin = shard_begin;
    info.shard_row_end = shard_end;
    info.shard_settings = settings;
  }
  d.save(o.out_path);
  std::error_code ignored;
  fs::remove(checkpoint_path, ignored);
  report.total_seconds = seconds_since(start);
  return report;
}

std::vector<float> brute_force_direction(const DirectionsOptions& o, int64_t flat_channel) {
  c10::InferenceMode inference;  // no autograd bookkeeping
  const Setup s = load_setup(o);
  return direction_of_channel(o, s, *s.generator, flat_channel);
}

}  // namespace feu::index
