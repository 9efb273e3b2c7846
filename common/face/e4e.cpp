// e4e (Encoder4Editing over IR-SE50), same math as encoder4editing's
// models/encoders/psp_encoders.py and helpers.py in eval mode (BatchNorm with
// running statistics); see shared/parity/README.md for the reference's traps.
//
// Formulation choices (exact reformulations of the reference, up to float
// rounding):
// - A BatchNorm right after a convolution is folded into that convolution's
//   weights and bias (input layer, a unit's second conv, projection shortcut).
//   The BatchNorm that opens each residual branch stays a separate affine: it
//   precedes a zero-padded conv, where folding would be wrong at the borders.
// - The GradualStyleBlocks that read the same feature map (3 on c3, 4 on p2,
//   11 on p1 for 18 styles) run together: their first convolutions as one
//   convolution with all their output channels, the later ones as one grouped
//   convolution (a group per block), the EqualLinears as one batched matmul.
//   One large GEMM instead of eleven small ones.
// - On CPU every convolution's weights are laid out once in oneDNN's blocked
//   format (FixedConv2d): reordering 267 M plain weights on every call cost
//   more than the style blocks' convolutions at their few output pixels.
// - MaxPool2d(1, stride), the identity shortcut of a strided unit, is a
//   strided pick: x[:, :, ::s, ::s].
// - On CPU the body's stride-1 3×3 convolutions of stages 2–4 run as Winograd
//   F(2×2, 3×3), and the fine style blocks' shared first convolution as a
//   strided Winograd by input phases (FixedConv2d chooses; tensor/winograd.h):
//   the same sums with fewer multiplications. Both are checked against the
//   reference modules at such widths (tests/face/test_e4e_reference.py).
#include "face/e4e.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "tensor/conv.h"
#include "tensor/tensor_h5.h"
#include "tensor/torch_file.h"

namespace feu::face {
namespace {

constexpr std::array<int, 4> kUnitsPerStage = {3, 4, 14, 3};
constexpr int kUnits = 24;
// Body units after which the FPN taps its inputs c1, c2, c3.
constexpr int kTapC1 = 6, kTapC2 = 20, kTapC3 = 23;
// Styles [0, 3) read c3, [3, 7) read p2, the rest p1 (e4e's coarse_ind, middle_ind).
constexpr int kCoarseEnd = 3, kMiddleEnd = 7;
constexpr double kBatchNormEps = 1e-5;      // PyTorch's BatchNorm2d default
constexpr double kStyleLeakySlope = 0.01;   // nn.LeakyReLU() default, not StyleGAN's 0.2
constexpr int64_t kInputSize = 256;

// The spatial size a GradualStyleBlock is built for: its conv count is log2 of it.
int style_spatial(int style) { return style < kCoarseEnd ? 16 : style < kMiddleEnd ? 32 : 64; }
int style_convs(int style) { return static_cast<int>(std::lround(std::log2(style_spatial(style)))); }

struct UnitShape {
  int64_t in_channels, depth, stride;
};

std::vector<UnitShape> unit_shapes(const E4eConfig& config) {
  std::vector<UnitShape> units;
  int64_t in = config.stage_widths[0];
  for (int stage = 0; stage < 4; ++stage) {
    const int64_t depth = config.stage_widths[stage];
    for (int u = 0; u < kUnitsPerStage[stage]; ++u) {
      units.push_back({in, depth, u == 0 ? 2 : 1});
      in = depth;
    }
  }
  return units;
}

std::string unit_prefix(int unit) { return "encoder.body." + std::to_string(unit) + "."; }
std::string style_prefix(int style) { return "encoder.styles." + std::to_string(style) + "."; }

void add_batch_norm(std::vector<std::pair<std::string, std::vector<int64_t>>>* shapes, const std::string& prefix,
                    int64_t channels) {
  for (const char* name : {"weight", "bias", "running_mean", "running_var"}) shapes->push_back({prefix + name, {channels}});
}

// A convolution followed by an eval-mode BatchNorm, as one convolution.
struct FoldedConv {
  at::Tensor weight, bias;
};

FoldedConv fold_batch_norm(const at::Tensor& conv_weight, const at::Tensor& gamma, const at::Tensor& beta,
                           const at::Tensor& mean, const at::Tensor& var) {
  at::Tensor scale = gamma / at::sqrt(var + kBatchNormEps);
  return {(conv_weight * scale.view({-1, 1, 1, 1})).contiguous(), (beta - mean * scale).contiguous()};
}

}  // namespace

E4eConfig E4eConfig::ffhq() { return E4eConfig{}; }

void E4eConfig::validate() const {
  for (int s = 0; s < 4; ++s)
    check(stage_widths[s] > 0 && stage_widths[s] % se_reduction == 0, ErrorCode::kInvalidArgument,
          "e4e stage " + std::to_string(s) + " width " + std::to_string(stage_widths[s]) +
              " must be a positive multiple of the SE reduction " + std::to_string(se_reduction));
  check(w_dim > 0, ErrorCode::kInvalidArgument, "e4e w_dim must be positive");
  // _upsample_add(c3, latlayer1(c2)) adds c3 to a w_dim-channel map.
  check(stage_widths[3] == w_dim, ErrorCode::kInvalidArgument,
        "e4e's last stage width (" + std::to_string(stage_widths[3]) + ") must equal w_dim (" +
            std::to_string(w_dim) + "): the FPN adds them");
  check(n_styles >= 1 && n_styles <= 18 && n_styles % 2 == 0, ErrorCode::kInvalidArgument,
        "e4e style count " + std::to_string(n_styles) + " is not 2·log2(stylegan_size) − 2 for a size of 4..1024");
}

std::vector<std::pair<std::string, std::vector<int64_t>>> E4eConfig::expected_shapes() const {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  const int64_t c0 = stage_widths[0];
  shapes.push_back({"encoder.input_layer.0.weight", {c0, 3, 3, 3}});
  add_batch_norm(&shapes, "encoder.input_layer.1.", c0);
  shapes.push_back({"encoder.input_layer.2.weight", {c0}});
  const std::vector<UnitShape> units = unit_shapes(*this);
  for (int u = 0; u < kUnits; ++u) {
    const std::string p = unit_prefix(u);
    const UnitShape& unit = units[u];
    if (unit.in_channels != unit.depth) {
      shapes.push_back({p + "shortcut_layer.0.weight", {unit.depth, unit.in_channels, 1, 1}});
      add_batch_norm(&shapes, p + "shortcut_layer.1.", unit.depth);
    }
    add_batch_norm(&shapes, p + "res_layer.0.", unit.in_channels);
    shapes.push_back({p + "res_layer.1.weight", {unit.depth, unit.in_channels, 3, 3}});
    shapes.push_back({p + "res_layer.2.weight", {unit.depth}});
    shapes.push_back({p + "res_layer.3.weight", {unit.depth, unit.depth, 3, 3}});
    add_batch_norm(&shapes, p + "res_layer.4.", unit.depth);
    const int64_t hidden = unit.depth / se_reduction;
    shapes.push_back({p + "res_layer.5.fc1.weight", {hidden, unit.depth, 1, 1}});
    shapes.push_back({p + "res_layer.5.fc2.weight", {unit.depth, hidden, 1, 1}});
  }
  for (int s = 0; s < n_styles; ++s) {
    const std::string p = style_prefix(s);
    for (int c = 0; c < style_convs(s); ++c) {
      const int64_t in = c == 0 && s < kCoarseEnd ? stage_widths[3] : w_dim;
      shapes.push_back({p + "convs." + std::to_string(2 * c) + ".weight", {w_dim, in, 3, 3}});
      shapes.push_back({p + "convs." + std::to_string(2 * c) + ".bias", {w_dim}});
    }
    shapes.push_back({p + "linear.weight", {w_dim, w_dim}});
    shapes.push_back({p + "linear.bias", {w_dim}});
  }
  shapes.push_back({"encoder.latlayer1.weight", {w_dim, stage_widths[2], 1, 1}});
  shapes.push_back({"encoder.latlayer1.bias", {w_dim}});
  shapes.push_back({"encoder.latlayer2.weight", {w_dim, stage_widths[1], 1, 1}});
  shapes.push_back({"encoder.latlayer2.bias", {w_dim}});
  return shapes;
}

// ---------------------------------------------------------------- the network

struct E4eEncoder::Impl {
  E4eConfig config;
  at::Device device = at::kCPU;
  int64_t parameter_count = 0;

  FixedConv2d input_conv;
  at::Tensor input_prelu;
  struct Unit {
    int64_t stride = 1;
    bool projection = false;  // a 1×1 conv shortcut (else the strided pick)
    FixedConv2d shortcut;
    at::Tensor bn_scale, bn_shift;  // res_layer.0 as x·scale + shift, [1, C, 1, 1]
    FixedConv2d conv1;
    at::Tensor prelu;
    FixedConv2d conv2;
    at::Tensor se_fc1, se_fc2;  // [hidden, C], [C, hidden]
  };
  std::vector<Unit> units;
  // The style blocks that share one input, run together.
  struct StyleGroup {
    int first = 0, count = 0;         // styles [first, first + count)
    std::vector<FixedConv2d> convs;  // per conv step, all blocks concatenated
    at::Tensor linear_weight;         // [count, w_dim, w_dim], EqualLinear scale applied
    at::Tensor linear_bias;           // [count, w_dim]
  };
  std::vector<StyleGroup> groups;
  FixedConv2d latlayer1, latlayer2;
  at::Tensor latent_avg;  // [n_styles, w_dim]

  void prepare(const std::map<std::string, at::Tensor>& w);
  at::Tensor run_unit(const Unit& unit, const at::Tensor& x) const;
  at::Tensor run_group(const StyleGroup& group, const at::Tensor& features) const;
  at::Tensor forward(const at::Tensor& input) const;
};

void E4eEncoder::Impl::prepare(const std::map<std::string, at::Tensor>& w) {
  auto get = [&](const std::string& key) -> at::Tensor { return w.at(key).to(device, at::kFloat); };
  auto folded = [&](const std::string& conv, const std::string& bn, int64_t stride, int64_t padding) {
    const FoldedConv f = fold_batch_norm(get(conv), get(bn + "weight"), get(bn + "bias"), get(bn + "running_mean"),
                                         get(bn + "running_var"));
    return FixedConv2d(f.weight, f.bias, stride, padding);
  };
  input_conv = folded("encoder.input_layer.0.weight", "encoder.input_layer.1.", 1, 1);
  input_prelu = get("encoder.input_layer.2.weight");
  const std::vector<UnitShape> shapes = unit_shapes(config);
  units.clear();
  for (int u = 0; u < kUnits; ++u) {
    const std::string p = unit_prefix(u);
    Unit unit;
    unit.stride = shapes[u].stride;
    unit.projection = shapes[u].in_channels != shapes[u].depth;
    if (unit.projection)
      unit.shortcut = folded(p + "shortcut_layer.0.weight", p + "shortcut_layer.1.", unit.stride, 0);
    at::Tensor scale = get(p + "res_layer.0.weight") / at::sqrt(get(p + "res_layer.0.running_var") + kBatchNormEps);
    unit.bn_scale = scale.view({1, -1, 1, 1}).contiguous();
    unit.bn_shift = (get(p + "res_layer.0.bias") - get(p + "res_layer.0.running_mean") * scale).view({1, -1, 1, 1}).contiguous();
    unit.conv1 = FixedConv2d(get(p + "res_layer.1.weight"), at::Tensor(), 1, 1);
    unit.prelu = get(p + "res_layer.2.weight");
    unit.conv2 = folded(p + "res_layer.3.weight", p + "res_layer.4.", unit.stride, 1);
    unit.se_fc1 = get(p + "res_layer.5.fc1.weight").flatten(1).contiguous();
    unit.se_fc2 = get(p + "res_layer.5.fc2.weight").flatten(1).contiguous();
    units.push_back(std::move(unit));
  }
  groups.clear();
  const double linear_scale = 1.0 / std::sqrt(static_cast<double>(config.w_dim));  // EqualLinear, lr_mul 1
  for (auto [first, end] : {std::pair<int, int>{0, kCoarseEnd}, {kCoarseEnd, kMiddleEnd}, {kMiddleEnd, 18}}) {
    end = std::min(end, config.n_styles);
    if (first >= end) break;
    StyleGroup group;
    group.first = first;
    group.count = end - first;
    for (int c = 0; c < style_convs(first); ++c) {
      std::vector<at::Tensor> weights, biases;
      for (int s = first; s < end; ++s) {
        weights.push_back(get(style_prefix(s) + "convs." + std::to_string(2 * c) + ".weight"));
        biases.push_back(get(style_prefix(s) + "convs." + std::to_string(2 * c) + ".bias"));
      }
      const int64_t conv_groups = c == 0 ? 1 : group.count;  // the first conv reads the shared map
      group.convs.emplace_back(at::cat(weights, 0), at::cat(biases, 0), 2, 1, conv_groups);
    }
    std::vector<at::Tensor> weights, biases;
    for (int s = first; s < end; ++s) {
      weights.push_back(get(style_prefix(s) + "linear.weight") * linear_scale);
      biases.push_back(get(style_prefix(s) + "linear.bias"));
    }
    // Stored transposed, [count, in, out], for x [count, N, in] · W.
    group.linear_weight = at::stack(weights, 0).transpose(1, 2).contiguous();
    group.linear_bias = at::stack(biases, 0).unsqueeze(1).contiguous();  // [count, 1, out]
    groups.push_back(std::move(group));
  }
  latlayer1 = FixedConv2d(get("encoder.latlayer1.weight"), get("encoder.latlayer1.bias"), 1, 0);
  latlayer2 = FixedConv2d(get("encoder.latlayer2.weight"), get("encoder.latlayer2.bias"), 1, 0);
  parameter_count = 0;
  for (const auto& [key, shape] : config.expected_shapes()) {
    if (key.find("running_") != std::string::npos) continue;
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    parameter_count += n;
  }
}

at::Tensor E4eEncoder::Impl::run_unit(const Unit& unit, const at::Tensor& x) const {
  at::Tensor shortcut;
  if (unit.projection) {
    shortcut = unit.shortcut(x);
  } else if (unit.stride > 1) {
    shortcut = x.slice(2, 0, c10::nullopt, unit.stride).slice(3, 0, c10::nullopt, unit.stride);
  } else {
    shortcut = x;
  }
  at::Tensor r = at::addcmul(unit.bn_shift, x, unit.bn_scale);
  r = at::prelu(unit.conv1(r), unit.prelu);
  r = unit.conv2(r);
  // Squeeze-and-excitation: channel gates from the global mean.
  at::Tensor gate = at::relu(at::matmul(r.mean({2, 3}), unit.se_fc1.t()));
  gate = at::sigmoid(at::matmul(gate, unit.se_fc2.t()));
  return at::addcmul(shortcut, r, gate.unsqueeze(-1).unsqueeze(-1));
}

at::Tensor E4eEncoder::Impl::run_group(const StyleGroup& group, const at::Tensor& features) const {
  at::Tensor x = features;
  for (const FixedConv2d& conv : group.convs) {
    x = conv(x);
    at::leaky_relu_(x, kStyleLeakySlope);
  }
  const int64_t n = x.size(0);
  // [N, count·w_dim, 1, 1] -> [count, N, w_dim]: one matmul per block, batched.
  at::Tensor v = x.reshape({n, group.count, config.w_dim}).transpose(0, 1);
  return at::baddbmm(group.linear_bias, v, group.linear_weight).transpose(0, 1);  // [N, count, w_dim]
}

at::Tensor E4eEncoder::Impl::forward(const at::Tensor& input) const {
  at::Tensor x = at::prelu(input_conv(input), input_prelu);
  at::Tensor c1, c2, c3;
  for (int u = 0; u < kUnits; ++u) {
    x = run_unit(units[u], x);
    if (u == kTapC1) c1 = x;
    else if (u == kTapC2) c2 = x;
    else if (u == kTapC3) c3 = x;
  }
  auto upsample_add = [](const at::Tensor& top, const at::Tensor& lateral) {
    return at::upsample_bilinear2d(top, {lateral.size(2), lateral.size(3)}, /*align_corners=*/true) + lateral;
  };
  std::vector<at::Tensor> outputs;
  at::Tensor p2, p1;
  for (const StyleGroup& group : groups) {
    at::Tensor features = c3;
    if (group.first == kCoarseEnd) {
      p2 = upsample_add(c3, latlayer1(c2));
      features = p2;
    } else if (group.first == kMiddleEnd) {
      p1 = upsample_add(p2, latlayer2(c1));
      features = p1;
    }
    outputs.push_back(run_group(group, features));
  }
  at::Tensor styles = at::cat(outputs, 1);  // [N, n_styles, w_dim]: w0, then deltas
  // e4e: w = w0 repeated, w[:, i] += delta_i for i >= 1; pSp then adds latent_avg.
  at::Tensor w0 = styles.select(1, 0).unsqueeze(1);
  at::Tensor w = w0.expand_as(styles).clone();
  w.slice(1, 1) += styles.slice(1, 1);
  return w + latent_avg.unsqueeze(0);
}

// ---------------------------------------------------------------- construction

E4eEncoder E4eEncoder::from_state_dict(const std::map<std::string, at::Tensor>& tensors, const at::Tensor& latent_avg,
                                       const std::string& origin, at::Device device) {
  at::NoGradGuard no_grad;
  auto shape_of = [&](const std::string& key) -> std::vector<int64_t> {
    auto it = tensors.find(key);
    if (it == tensors.end())
      throw Error(ErrorCode::kShapeMismatch, origin + ": not an e4e encoder checkpoint: '" + key + "' is missing");
    return it->second.sizes().vec();
  };
  E4eConfig config;
  config.stage_widths = {shape_of("encoder.body.0.res_layer.1.weight")[0],
                         shape_of("encoder.body.3.res_layer.1.weight")[0],
                         shape_of("encoder.body.7.res_layer.1.weight")[0],
                         shape_of("encoder.body.21.res_layer.1.weight")[0]};
  config.w_dim = shape_of("encoder.styles.0.linear.weight")[0];
  config.n_styles = 0;
  while (tensors.count(style_prefix(config.n_styles) + "linear.weight")) ++config.n_styles;
  try {
    config.validate();
  } catch (const Error& e) {
    throw Error(ErrorCode::kShapeMismatch, origin + ": " + e.what());
  }
  for (const auto& [key, shape] : config.expected_shapes()) {
    const std::vector<int64_t> actual = shape_of(key);
    if (actual != shape) {
      auto text = [](const std::vector<int64_t>& s) {
        std::string out = "[";
        for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
        return out + "]";
      };
      throw Error(ErrorCode::kShapeMismatch,
                  origin + ": '" + key + "' has shape " + text(actual) + ", expected " + text(shape));
    }
    const at::Tensor& t = tensors.at(key);
    check(t.is_floating_point() && at::isfinite(t.to(at::kFloat)).all().item<bool>(), ErrorCode::kCorruptFile,
          origin + ": '" + key + "' is not a finite floating-point tensor");
  }
  check(latent_avg.defined() && latent_avg.dim() == 2 && latent_avg.size(0) == config.n_styles &&
            latent_avg.size(1) == config.w_dim,
        ErrorCode::kShapeMismatch,
        origin + ": latent_avg must be [" + std::to_string(config.n_styles) + ", " + std::to_string(config.w_dim) +
            "] for this encoder");
  auto impl = std::make_shared<Impl>();
  impl->config = config;
  impl->device = device;
  impl->prepare(tensors);
  impl->latent_avg = latent_avg.to(device, at::kFloat).contiguous();
  return E4eEncoder(std::move(impl));
}

namespace {

// feu's own e4e file (write_random): HDF5 with the widths as attributes.
constexpr const char* kH5Format = "feu-e4e-1";

bool is_hdf5_file(const std::string& path) {
  static const char kSignature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  char head[8] = {};
  FILE* file = std::fopen(path.c_str(), "rb");
  if (!file) return false;
  const size_t got = std::fread(head, 1, sizeof head, file);
  std::fclose(file);
  return got == sizeof head && std::equal(head, head + sizeof head, kSignature);
}

E4eEncoder load_h5(const std::string& path, at::Device device) {
  const h5::File file = h5::File::open_read(path);
  check(file.has_attr("/", "format") && file.attr_string("/", "format") == kH5Format, ErrorCode::kCorruptFile,
        path + ": an HDF5 file but not an e4e encoder (expected attribute format = " + kH5Format +
            ", written by feu-indexer demo-assets)");
  E4eConfig config;
  const std::vector<double> widths = file.attr_doubles("/", "stage_widths");
  check(widths.size() == 4, ErrorCode::kCorruptFile, path + ": stage_widths must list 4 widths");
  for (size_t i = 0; i < 4; ++i) config.stage_widths[i] = static_cast<int64_t>(widths[i]);
  config.w_dim = file.attr_int("/", "w_dim");
  config.n_styles = static_cast<int>(file.attr_int("/", "n_styles"));
  std::map<std::string, at::Tensor> tensors;
  for (const auto& entry : config.expected_shapes()) {
    tensors[entry.first] = read_tensor(file, "state_dict/" + entry.first);
  }
  return E4eEncoder::from_state_dict(tensors, read_tensor(file, "latent_avg"), path, device);
}

}  // namespace

E4eEncoder E4eEncoder::load(const std::string& path, at::Device device) {
  if (is_hdf5_file(path)) return load_h5(path, device);
  // The restricted reader: nothing in the file is executed.
  const torch_file::ValuePtr root = torch_file::read(path);
  const torch_file::Value* state_dict = root->find("state_dict");
  const torch_file::Value* latent_avg = root->find("latent_avg");
  check(state_dict != nullptr, ErrorCode::kCorruptFile,
        path + ": not an e4e checkpoint (expected a dict with 'state_dict', 'latent_avg' and 'opts', as "
               "e4e_ffhq_encode.pt)");
  check(latent_avg != nullptr && latent_avg->kind() == torch_file::Value::Kind::kTensor, ErrorCode::kCorruptFile,
        path + ": the e4e checkpoint has no 'latent_avg' tensor (the encoder was trained from the average latent)");
  return from_state_dict(torch_file::named_tensors(*state_dict, path), latent_avg->as_tensor(), path, device);
}

namespace {

std::pair<std::map<std::string, at::Tensor>, at::Tensor> random_e4e_weights(const E4eConfig& config, uint64_t seed) {
  at::NoGradGuard no_grad;
  config.validate();
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const at::TensorOptions opts = at::TensorOptions().dtype(at::kFloat);
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [key, shape] : config.expected_shapes()) {
    at::Tensor t;
    const bool batch_norm = key.find("input_layer.1.") != std::string::npos ||
                            key.find("shortcut_layer.1.") != std::string::npos ||
                            key.find("res_layer.0.") != std::string::npos ||
                            key.find("res_layer.4.") != std::string::npos;
    if (batch_norm) {
      // Near identity, so that activations keep their scale through 24 units.
      if (ends_with(key, "running_var")) t = 1.0 + 0.1 * at::rand(shape, gen, opts);
      else if (ends_with(key, "weight")) t = 1.0 + 0.1 * at::randn(shape, gen, opts);
      else t = 0.1 * at::randn(shape, gen, opts);
    } else if (ends_with(key, "input_layer.2.weight") || ends_with(key, "res_layer.2.weight")) {
      t = at::full(shape, 0.25, opts);  // PReLU's default slope
    } else if (shape.size() == 1) {
      t = 0.01 * at::randn(shape, gen, opts);  // conv / linear biases
    } else {
      int64_t fan_in = 1;
      for (size_t d = 1; d < shape.size(); ++d) fan_in *= shape[d];
      // EqualLinear keeps unit-variance weights (its scale is applied at run time).
      const double std = ends_with(key, "linear.weight") ? 1.0 : std::sqrt(1.0 / static_cast<double>(fan_in));
      t = std * at::randn(shape, gen, opts);
    }
    tensors[key] = t;
  }
  at::Tensor latent_avg = at::randn({config.n_styles, config.w_dim}, gen, opts);
  return {std::move(tensors), std::move(latent_avg)};
}

}  // namespace

E4eEncoder E4eEncoder::random(const E4eConfig& config, uint64_t seed, at::Device device) {
  auto [tensors, latent_avg] = random_e4e_weights(config, seed);
  return from_state_dict(tensors, latent_avg, "random e4e", device);
}

void E4eEncoder::write_random(const E4eConfig& config, uint64_t seed, const std::string& path) {
  auto [tensors, latent_avg] = random_e4e_weights(config, seed);
  AtomicFile out(path);
  {
    h5::File file = h5::File::create(out.temp_path());
    file.set_attr("/", "format", kH5Format);
    file.set_attr("/", "stage_widths", std::vector<double>(config.stage_widths.begin(), config.stage_widths.end()));
    file.set_attr("/", "w_dim", config.w_dim);
    file.set_attr("/", "n_styles", static_cast<int64_t>(config.n_styles));
    file.create_group("state_dict");
    for (const auto& [key, tensor] : tensors) write_tensor(file, "state_dict/" + key, tensor);
    write_tensor(file, "latent_avg", latent_avg);
  }
  out.commit();
}

const E4eConfig& E4eEncoder::config() const { return impl_->config; }
at::Device E4eEncoder::device() const { return impl_->device; }
int64_t E4eEncoder::parameter_count() const { return impl_->parameter_count; }

at::Tensor E4eEncoder::encode(const at::Tensor& input) const {
  check(input.dim() == 4 && input.size(1) == 3 && input.size(2) == kInputSize && input.size(3) == kInputSize,
        ErrorCode::kShapeMismatch, "e4e reads [N, 3, 256, 256] input");
  at::InferenceMode guard;
  return impl_->forward(input.to(impl_->device, at::kFloat).contiguous());
}

at::Tensor E4eEncoder::encode_aligned(const at::Tensor& faces_u8) const {
  check(faces_u8.dim() == 4 && faces_u8.size(1) == kInputSize && faces_u8.size(2) == kInputSize &&
            faces_u8.size(3) == 3 && faces_u8.scalar_type() == at::kByte,
        ErrorCode::kShapeMismatch, "e4e encodes aligned faces as uint8 [N, 256, 256, 3]");
  at::InferenceMode guard;
  // transform_inference: ToTensor (/255), Normalize(mean 0.5, std 0.5).
  at::Tensor x = faces_u8.to(impl_->device).permute({0, 3, 1, 2}).to(at::kFloat).div(255.0f);
  return impl_->forward(((x - 0.5f) / 0.5f).contiguous());
}

}  // namespace feu::face
