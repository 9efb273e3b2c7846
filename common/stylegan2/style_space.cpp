// GeneratorConfig, the expected state-dict layout and StyleSpace: plain
// bookkeeping shared by the generator, the indexer and the edit engine.
#include <ATen/ATen.h>

#include <cmath>

#include "core/error.h"
#include "stylegan2/generator.h"

namespace feu::stylegan2 {

namespace {

int log2_exact(int value) {
  int log = 0;
  while ((1 << log) < value) ++log;
  return (1 << log) == value ? log : -1;
}

}  // namespace

int GeneratorConfig::num_ws() const { return 2 * log2_exact(img_resolution) - 2; }

int64_t GeneratorConfig::channels_at(int res) const {
  return std::min<int64_t>(channel_base / res, channel_max);
}

void GeneratorConfig::validate() const {
  auto bad = [](const std::string& what) {
    throw Error(ErrorCode::kInvalidArgument, "invalid generator config: " + what);
  };
  if (z_dim <= 0) bad("z_dim must be positive (got " + std::to_string(z_dim) + ")");
  if (w_dim <= 0) bad("w_dim must be positive (got " + std::to_string(w_dim) + ")");
  if (c_dim != 0)
    throw Error(ErrorCode::kUnsupported,
                "conditional generators (c_dim = " + std::to_string(c_dim) +
                    ") are not supported; expected c_dim = 0");
  if (img_resolution < 4 || log2_exact(img_resolution) < 0)
    bad("img_resolution must be a power of two >= 4 (got " + std::to_string(img_resolution) + ")");
  if (img_channels <= 0) bad("img_channels must be positive");
  if (mapping_layers <= 0) bad("mapping_layers must be positive");
  if (!(mapping_lr_multiplier > 0)) bad("mapping_lr_multiplier must be positive");
  if (channel_base <= 0 || channel_max <= 0) bad("channel_base and channel_max must be positive");
  for (int res = 4; res <= img_resolution; res *= 2)
    if (channels_at(res) <= 0)
      bad("channel_base " + std::to_string(channel_base) + " leaves no channels at resolution " +
          std::to_string(res));
}

GeneratorConfig GeneratorConfig::config_f() { return GeneratorConfig{}; }

std::vector<std::pair<std::string, std::vector<int64_t>>> expected_weight_shapes(
    const GeneratorConfig& c) {
  c.validate();
  std::vector<std::pair<std::string, std::vector<int64_t>>> out;
  auto add = [&](const std::string& key, std::vector<int64_t> shape) {
    out.emplace_back(key, std::move(shape));
  };
  // Module order of NVlabs' state_dict: own parameters, own buffers, children.
  auto synthesis_layer = [&](const std::string& p, int64_t cin, int64_t cout, int res) {
    add(p + ".weight", {cout, cin, 3, 3});
    add(p + ".noise_strength", {});
    add(p + ".bias", {cout});
    add(p + ".resample_filter", {4, 4});
    add(p + ".noise_const", {res, res});
    add(p + ".affine.weight", {cin, c.w_dim});
    add(p + ".affine.bias", {cin});
  };
  auto torgb = [&](const std::string& p, int64_t cin) {
    add(p + ".weight", {c.img_channels, cin, 1, 1});
    add(p + ".bias", {c.img_channels});
    add(p + ".affine.weight", {cin, c.w_dim});
    add(p + ".affine.bias", {cin});
  };
  for (int res = 4; res <= c.img_resolution; res *= 2) {
    const std::string b = "synthesis.b" + std::to_string(res);
    const int64_t ch = c.channels_at(res);
    if (res == 4) add(b + ".const", {ch, 4, 4});
    add(b + ".resample_filter", {4, 4});
    if (res > 4) synthesis_layer(b + ".conv0", c.channels_at(res / 2), ch, res);
    synthesis_layer(b + ".conv1", ch, ch, res);
    torgb(b + ".torgb", ch);
  }
  add("mapping.w_avg", {c.w_dim});
  for (int i = 0; i < c.mapping_layers; ++i) {
    const std::string p = "mapping.fc" + std::to_string(i);
    const int64_t in = i == 0 ? c.z_dim : c.w_dim;
    add(p + ".weight", {c.w_dim, in});
    add(p + ".bias", {c.w_dim});
  }
  return out;
}

StyleSpace::StyleSpace(const GeneratorConfig& c) {
  c.validate();
  auto add = [&](const std::string& name, int64_t channels, int w_index, StyleKind kind, int res) {
    layers_.push_back(StyleLayer{name, channels, w_index, kind, res, total_channels_});
    total_channels_ += channels;
    if (kind == StyleKind::kConv) conv_channels_ += channels;
  };
  // Each block reads num_conv + 1 consecutive w's but advances by num_conv,
  // so a block's toRGB shares its w with the next block's conv0.
  int w_index = 0;
  for (int res = 4; res <= c.img_resolution; res *= 2) {
    const std::string b = "b" + std::to_string(res);
    if (res == 4) {
      add(b + ".conv1", c.channels_at(4), w_index, StyleKind::kConv, res);
      add(b + ".torgb", c.channels_at(4), w_index + 1, StyleKind::kToRgb, res);
      w_index += 1;
    } else {
      add(b + ".conv0", c.channels_at(res / 2), w_index, StyleKind::kConv, res);
      add(b + ".conv1", c.channels_at(res), w_index + 1, StyleKind::kConv, res);
      add(b + ".torgb", c.channels_at(res), w_index + 2, StyleKind::kToRgb, res);
      w_index += 2;
    }
  }
}

int StyleSpace::index_of(const std::string& name) const {
  for (size_t i = 0; i < layers_.size(); ++i)
    if (layers_[i].name == name) return static_cast<int>(i);
  std::string names;
  for (const auto& layer : layers_) names += (names.empty() ? "" : ", ") + layer.name;
  throw Error(ErrorCode::kNotFound,
              "unknown style layer '" + name + "' (expected one of " + names + ")");
}

int64_t StyleSpace::check_styles(const std::vector<at::Tensor>& styles) const {
  check(styles.size() == layers_.size(), ErrorCode::kShapeMismatch,
        "expected styles for " + std::to_string(layers_.size()) + " layers, got " +
            std::to_string(styles.size()));
  int64_t batch = -1;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const at::Tensor& s = styles[i];
    const StyleLayer& layer = layers_[i];
    check(s.defined(), ErrorCode::kInvalidArgument, "style of layer " + layer.name + " is missing");
    check(s.dim() == 2 && s.size(1) == layer.channels, ErrorCode::kShapeMismatch,
          "style of layer " + layer.name + " has shape " + c10::str(s.sizes()) + ", expected [N, " +
              std::to_string(layer.channels) + "]");
    if (batch < 0) batch = s.size(0);
    check(s.size(0) == batch, ErrorCode::kShapeMismatch,
          "style of layer " + layer.name + " has batch " + std::to_string(s.size(0)) +
              ", expected " + std::to_string(batch) + " like " + layers_[0].name);
  }
  return batch;
}

at::Tensor StyleSpace::flatten(const std::vector<at::Tensor>& styles) const {
  check_styles(styles);
  return at::cat(styles, 1);
}

std::vector<at::Tensor> StyleSpace::split(const at::Tensor& flat) const {
  check(flat.dim() == 2 && flat.size(1) == total_channels_, ErrorCode::kShapeMismatch,
        "flat styles have shape " + c10::str(flat.sizes()) + ", expected [N, " +
            std::to_string(total_channels_) + "]");
  std::vector<at::Tensor> out;
  out.reserve(layers_.size());
  for (const auto& layer : layers_) out.push_back(flat.narrow(1, layer.offset, layer.channels));
  return out;
}

}  // namespace feu::stylegan2
