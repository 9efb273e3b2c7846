// `feu-indexer stats`: per-channel mean and population std of S
// (StyleCLIP GetCode.py s_mean_std).
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <cstdio>

#include "core/error.h"
#include "core/files.h"
#include "index/pipeline.h"
#include "index/progress.h"
#include "index/style_layers.h"
#include "stylegan2/generator.h"
#include "stylegan2/seed.h"
#include "tensor/tensor_h5.h"

namespace feu::index {

std::string truncation_rule_text(double psi, int cutoff) {
  char text[256];
  if (cutoff < 0)
    std::snprintf(text, sizeof text,
                  "w = w_avg + %.3g * (mapping(z) - w_avg) for every w index (StyleCLIP TF GetCode: the truncated "
                  "w[0] is tiled to all layers)",
                  psi);
  else
    std::snprintf(text, sizeof text,
                  "w = w_avg + %.3g * (mapping(z) - w_avg) for w indices < %d only (StyleCLIP torch port, "
                  "G.mapping truncation_cutoff=%d)",
                  psi, cutoff, cutoff);
  return text;
}

std::vector<LayerSpec> layer_specs_of(const stylegan2::StyleSpace& space) {
  std::vector<LayerSpec> out;
  for (const stylegan2::StyleLayer& l : space.layers())
    out.push_back(LayerSpec{l.name, l.offset, l.channels, l.kind == stylegan2::StyleKind::kConv, l.w_index,
                            l.resolution});
  return out;
}

StyleStats compute_style_stats(const StatsOptions& options) {
  c10::InferenceMode inference;  // no autograd bookkeeping
  check(options.num_samples > 0, ErrorCode::kInvalidArgument, "--samples must be positive");
  check(options.batch_size > 0, ErrorCode::kInvalidArgument, "--batch must be positive");
  check(options.seed >= 0 && options.seed <= 0xFFFFFFFFLL, ErrorCode::kInvalidArgument,
        "--seed must lie in [0, 2^32-1] (numpy RandomState)");
  const at::Device device = resolve_device(options.device);
  stylegan2::Generator generator = stylegan2::Generator::load(options.generator_path, device);
  const int64_t z_dim = generator.config().z_dim;
  const int64_t total = generator.style_space().total_channels();

  // StyleCLIP draws all z from one RandomState(seed) stream (chunks of 1000
  // from the same stream equal one big draw). float64 → float32 like np.float32.
  std::vector<double> z_all = stylegan2::numpy_randn(static_cast<uint32_t>(options.seed),
                                                     options.num_samples * z_dim);
  // Chan's parallel merge of (count, mean, M2) in float64: stable for 100k samples.
  at::Tensor mean = at::zeros({total}, at::kDouble);
  at::Tensor m2 = at::zeros({total}, at::kDouble);
  int64_t count = 0;
  Progress progress("stats", options.num_samples, "z", 0, nullptr);
  for (int64_t begin = 0; begin < options.num_samples; begin += options.batch_size) {
    const int64_t n = std::min(options.batch_size, options.num_samples - begin);
    at::Tensor z = at::from_blob(z_all.data() + begin * z_dim, {n, z_dim}, at::kDouble).to(at::kFloat).to(device);
    at::Tensor ws = generator.mapping(z, options.psi, options.truncation_cutoff);
    at::Tensor s = generator.style_space().flatten(generator.styles_from_ws(ws)).to(at::kCPU).to(at::kDouble);
    at::Tensor batch_mean = s.mean(0);
    at::Tensor batch_m2 = (s - batch_mean).pow(2).sum(0);
    const double na = double(count), nb = double(n), nt = na + nb;
    at::Tensor delta = batch_mean - mean;
    mean = mean + delta * (nb / nt);
    m2 = m2 + batch_m2 + delta.pow(2) * (na * nb / nt);
    count += n;
    progress.advance(n);
  }
  StyleStats stats;
  stats.layers = layer_specs_of(generator.style_space());
  at::Tensor mean_f = mean.to(at::kFloat).contiguous();
  at::Tensor std_f = (m2 / double(count)).sqrt().to(at::kFloat).contiguous();  // population std (ddof 0)
  stats.s_mean.assign(mean_f.data_ptr<float>(), mean_f.data_ptr<float>() + total);
  stats.s_std.assign(std_f.data_ptr<float>(), std_f.data_ptr<float>() + total);
  stats.num_samples = count;
  stats.seed = options.seed;
  stats.psi = options.psi;
  stats.truncation_cutoff = options.truncation_cutoff;
  stats.truncation_rule = truncation_rule_text(options.psi, options.truncation_cutoff);
  stats.generator_sha256 = sha256_file(options.generator_path);
  stats.created = utc_timestamp();
  if (!options.out_path.empty()) stats.save(options.out_path);
  return stats;
}

}  // namespace feu::index
