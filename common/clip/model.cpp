// OpenAI CLIP forward passes in ATen (specs/clip.md §1-§4).
#include "clip/model.h"
#include "clip/attention.h"
#include "clip/layer_norm.h"
#include "clip/quick_gelu.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/InferenceMode.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "tensor/gemm.h"
#include "tensor/tensor_h5.h"
#include "tensor/torch_file.h"

namespace feu::clip {
namespace {

constexpr int64_t kHeadWidth = 64;  // build_model: heads = width / 64
const char* kWeightsGroup = "weights";

std::string shape_of(const at::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

enum class FileKind { kZip, kHdf5, kUnknown };

FileKind sniff(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[8] = {0};
  in.read(magic, 8);
  if (in.gcount() >= 4 && std::memcmp(magic, "PK\x03\x04", 4) == 0) return FileKind::kZip;
  if (in.gcount() == 8 && std::memcmp(magic, "\x89HDF\r\n\x1a\n", 8) == 0) return FileKind::kHdf5;
  return FileKind::kUnknown;
}

// Expected shape of every tensor of a ViT CLIP of this configuration.
std::map<std::string, std::vector<int64_t>> expected_shapes(const ClipConfig& c) {
  std::map<std::string, std::vector<int64_t>> shapes;
  const int64_t grid = c.image_resolution / c.vision_patch_size;
  shapes["positional_embedding"] = {c.context_length, c.text_width};
  shapes["text_projection"] = {c.text_width, c.embed_dim};
  shapes["logit_scale"] = {};
  shapes["token_embedding.weight"] = {c.vocab_size, c.text_width};
  shapes["ln_final.weight"] = {c.text_width};
  shapes["ln_final.bias"] = {c.text_width};
  shapes["visual.class_embedding"] = {c.vision_width};
  shapes["visual.positional_embedding"] = {grid * grid + 1, c.vision_width};
  shapes["visual.proj"] = {c.vision_width, c.embed_dim};
  shapes["visual.conv1.weight"] = {c.vision_width, 3, c.vision_patch_size, c.vision_patch_size};
  for (const char* ln : {"visual.ln_pre.", "visual.ln_post."}) {
    shapes[std::string(ln) + "weight"] = {c.vision_width};
    shapes[std::string(ln) + "bias"] = {c.vision_width};
  }
  auto add_blocks = [&](const std::string& prefix, int64_t layers, int64_t d) {
    for (int64_t i = 0; i < layers; ++i) {
      std::string p = prefix + std::to_string(i) + ".";
      shapes[p + "attn.in_proj_weight"] = {3 * d, d};
      shapes[p + "attn.in_proj_bias"] = {3 * d};
      shapes[p + "attn.out_proj.weight"] = {d, d};
      shapes[p + "attn.out_proj.bias"] = {d};
      shapes[p + "mlp.c_fc.weight"] = {4 * d, d};
      shapes[p + "mlp.c_fc.bias"] = {4 * d};
      shapes[p + "mlp.c_proj.weight"] = {d, 4 * d};
      shapes[p + "mlp.c_proj.bias"] = {d};
      for (const char* ln : {"ln_1.", "ln_2."}) {
        shapes[p + ln + "weight"] = {d};
        shapes[p + ln + "bias"] = {d};
      }
    }
  };
  add_blocks("visual.transformer.resblocks.", c.vision_layers, c.vision_width);
  add_blocks("transformer.resblocks.", c.text_layers, c.text_width);
  return shapes;
}

const at::Tensor& require(const std::map<std::string, at::Tensor>& params, const std::string& name,
                          const std::string& source) {
  auto it = params.find(name);
  if (it == params.end())
    throw Error(ErrorCode::kNotFound, "CLIP checkpoint " + source + " has no parameter '" + name + "'");
  return it->second;
}

// build_model's inference of the hyper-parameters from the weights.
ClipConfig infer_config(const std::map<std::string, at::Tensor>& params, const std::string& source) {
  if (!params.count("visual.proj"))
    throw Error(params.count("visual.layer1.0.conv1.weight") ? ErrorCode::kUnsupported : ErrorCode::kNotFound,
                "CLIP checkpoint " + source +
                    " has no parameter 'visual.proj' (only ViT CLIP models are supported, not ResNet ones)");
  auto dim = [&](const std::string& name, int64_t axis, int64_t rank) {
    const at::Tensor& t = require(params, name, source);
    if (t.dim() != rank)
      throw Error(ErrorCode::kShapeMismatch, "CLIP checkpoint " + source + ": parameter '" + name + "' has shape " +
                                                 shape_of(t) + ", expected " + std::to_string(rank) + " dimensions");
    return t.size(axis < 0 ? rank + axis : axis);
  };
  ClipConfig c;
  c.vision_width = dim("visual.conv1.weight", 0, 4);
  c.vision_patch_size = dim("visual.conv1.weight", -1, 4);
  c.vision_layers = 0;
  std::set<std::string> text_blocks;
  const std::string vis_suffix = ".attn.in_proj_weight";
  const std::string text_prefix = "transformer.resblocks.";
  for (const auto& [name, tensor] : params) {
    if (name.rfind("visual.", 0) == 0 && name.size() > vis_suffix.size() &&
        name.compare(name.size() - vis_suffix.size(), vis_suffix.size(), vis_suffix) == 0)
      ++c.vision_layers;
    if (name.rfind(text_prefix, 0) == 0)
      text_blocks.insert(name.substr(text_prefix.size(), name.find('.', text_prefix.size()) - text_prefix.size()));
  }
  c.text_layers = static_cast<int64_t>(text_blocks.size());
  const int64_t positions = dim("visual.positional_embedding", 0, 2);
  const int64_t grid = std::llround(std::sqrt(static_cast<double>(positions - 1)));
  c.image_resolution = c.vision_patch_size * grid;
  c.embed_dim = dim("text_projection", 1, 2);
  c.context_length = dim("positional_embedding", 0, 2);
  c.vocab_size = dim("token_embedding.weight", 0, 2);
  c.text_width = dim("ln_final.weight", 0, 1);
  check(c.vision_width % kHeadWidth == 0 && c.text_width % kHeadWidth == 0, ErrorCode::kShapeMismatch,
        "CLIP checkpoint " + source + ": transformer widths must be multiples of 64 (heads = width / 64), got " +
            std::to_string(c.vision_width) + " and " + std::to_string(c.text_width));
  return c;
}

// Checks names and shapes of every tensor the forward passes use.
void validate(const std::map<std::string, at::Tensor>& params, const ClipConfig& config, const std::string& source) {
  for (const auto& [name, shape] : expected_shapes(config)) {
    const at::Tensor& t = require(params, name, source);
    bool ok = t.dim() == static_cast<int64_t>(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i) ok = t.size(i) == shape[i];
    // logit_scale was briefly shape [1] upstream (openai/CLIP#67): accept it.
    if (!ok && name == "logit_scale" && t.numel() == 1) ok = true;
    if (!ok) {
      std::string want = "[";
      for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
      throw Error(ErrorCode::kShapeMismatch, "CLIP checkpoint " + source + ": parameter '" + name + "' has shape " +
                                                 shape_of(t) + ", expected " + want + "]");
    }
  }
}

// What OpenAI's convert_weights turns to fp16 (conv and linear weights and
// biases, attention projections, the two output projections); embeddings,
// LayerNorm parameters and logit_scale stay fp32 as in the reference.
bool converted_to_fp16(const std::string& name) {
  auto ends_with = [&](const std::string& suffix) {
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  if (name == "visual.proj" || name == "text_projection" || name == "visual.conv1.weight") return true;
  return ends_with("in_proj_weight") || ends_with("in_proj_bias") || name.find(".out_proj.") != std::string::npos ||
         name.find(".mlp.c_fc.") != std::string::npos || name.find(".mlp.c_proj.") != std::string::npos;
}

at::Tensor quick_gelu(const at::Tensor& x) { return x * at::sigmoid(1.702 * x); }

// x += h·weightᵀ in place (nn.Linear without its bias added to the residual
// stream): the GEMM accumulates into x, so there is no separate sum or its
// allocation. The caller adds the bias where the stream is read next
// (add_bias_layer_norm_). x: [..., out] contiguous; h: [..., in].
void add_product(at::Tensor& x, const at::Tensor& h, const at::Tensor& weight) {
  at::Tensor rows = x.view({-1, x.size(-1)});
  feu::gemm(rows, h.reshape({-1, h.size(-1)}), weight.t(), 1.0f);
}

// nn.MultiheadAttention's core, per head h: softmax(q_h·k_hᵀ / √64 + mask)·v_h,
// with q, k and v their projection's products before its bias.
// q: [N, Lq, D]; k, v: [N, L, D] (views into packed projections are fine);
// in_bias: [3D]; mask: undefined, or additive [Lq, L] or [N, Lq, L]. Returns [N, Lq, D].
at::Tensor multi_head_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                const at::Tensor& in_bias, const at::Tensor& mask) {
  if (q.is_cpu() && q.scalar_type() == at::kFloat) return multi_head_attention_cpu(q, k, v, heads, in_bias, mask);
  const int64_t n = q.size(0), lq = q.size(1), d = q.size(2), width = d / heads;
  const double scale = 1.0 / std::sqrt(static_cast<double>(width));
  auto split = [&](const at::Tensor& t, int64_t part) {
    return (t + in_bias.narrow(0, part * d, d)).view({n, t.size(1), heads, width}).transpose(1, 2);
  };
  at::Tensor scores = at::matmul(split(q, 0) * scale, split(k, 1).transpose(-2, -1));  // [N, heads, Lq, L]
  if (mask.defined()) scores = scores + (mask.dim() == 3 ? mask.unsqueeze(1) : mask);
  return at::matmul(at::softmax(scores, -1), split(v, 2)).transpose(1, 2).reshape({n, lq, d});
}

// The attention of one query row per image (a tower's pooled row in its last
// block), from the block's normalized input h instead of its keys and
// values. Per head, with w_k and w_v the head's rows of the key and value
// projections: the scores q·(w_k·h_j + b_k) are (w_kᵀ·q)·h_j plus a constant
// of the row, which the softmax ignores; and since the weights p_j sum to 1,
// Σ_j p_j·(w_v·h_j + b_v) = w_v·(Σ_j p_j·h_j) + b_v. An image then costs two
// D×D products where every row's keys and values cost 2·L (CLIP's image
// tower: 1.4% of its arithmetic).
// q: [N, 1, D] with its bias; h: [N, L, D]; in_weight [3D, D], in_bias [3D]
// (q's, k's, v's); mask: undefined or additive [N, 1, L]. Returns [N, 1, D].
at::Tensor pooled_attention(const at::Tensor& q, const at::Tensor& h, const at::Tensor& in_weight,
                            const at::Tensor& in_bias, int64_t heads, const at::Tensor& mask) {
  const int64_t n = h.size(0), d = h.size(2), width = d / heads;
  const at::Tensor key_weight = in_weight.narrow(0, d, d).view({heads, width, d});        // [H, w, D]
  const at::Tensor value_weight = in_weight.narrow(0, 2 * d, d).view({heads, width, d});  // [H, w, D]
  const at::Tensor queries = q.reshape({n, heads, width}).transpose(0, 1);                // [H, N, w]
  const at::Tensor keyed = at::bmm(queries, key_weight).transpose(0, 1);                  // [N, H, D]
  at::Tensor scores = at::bmm(keyed, h.transpose(1, 2)) / std::sqrt(static_cast<double>(width));  // [N, H, L]
  if (mask.defined()) scores = scores + mask;
  const at::Tensor mixed = at::bmm(at::softmax(scores, -1), h).transpose(0, 1);          // [H, N, D]
  const at::Tensor out = at::bmm(mixed, value_weight.transpose(1, 2)).transpose(0, 1);    // [N, H, w]
  return (out.reshape({n, 1, d}) + in_bias.narrow(0, 2 * d, d)).contiguous();
}

}  // namespace

ClipConfig ClipConfig::vit_b_32() { return ClipConfig{}; }

ClipConfig ClipConfig::small(int64_t vocab_size) {
  ClipConfig c;
  c.embed_dim = 32;
  c.image_resolution = 32;
  c.vision_width = 128;
  c.vision_layers = 2;
  c.vision_patch_size = 8;
  c.context_length = 77;
  c.vocab_size = vocab_size;
  c.text_width = 128;
  c.text_layers = 2;
  return c;
}

std::string ClipConfig::to_json() const {
  return nlohmann::json{{"embed_dim", embed_dim},
                        {"image_resolution", image_resolution},
                        {"vision_width", vision_width},
                        {"vision_layers", vision_layers},
                        {"vision_patch_size", vision_patch_size},
                        {"context_length", context_length},
                        {"vocab_size", vocab_size},
                        {"text_width", text_width},
                        {"text_layers", text_layers}}
      .dump();
}

ClipModel ClipModel::from_state_dict(std::map<std::string, at::Tensor> params, at::Device device, bool fp16,
                                     const std::string& source) {
  if (fp16 && !device.is_cuda())
    throw Error(ErrorCode::kUnsupported, "CLIP fp16 inference needs a CUDA device (CPU runs fp32)");
  ClipConfig config = infer_config(params, source);
  validate(params, config, source);
  // The released archive's integer entries, when present, must agree with the weights.
  const std::pair<const char*, int64_t> integers[] = {{"input_resolution", config.image_resolution},
                                                      {"context_length", config.context_length},
                                                      {"vocab_size", config.vocab_size}};
  for (const auto& [name, value] : integers) {
    auto it = params.find(name);
    if (it == params.end()) continue;
    check(it->second.numel() == 1 && it->second.item<int64_t>() == value, ErrorCode::kShapeMismatch,
          "CLIP checkpoint " + source + ": '" + name + "' disagrees with the weights (expected " +
              std::to_string(value) + ")");
    params.erase(it);
  }
  ClipModel model;
  model.config_ = config;
  model.fp16_ = fp16;
  const std::set<std::string> known = [&] {
    std::set<std::string> names;
    for (const auto& [name, shape] : expected_shapes(config)) names.insert(name);
    return names;
  }();
  for (auto& [name, tensor] : params) {
    if (!known.count(name)) continue;  // e.g. extra entries of other exporters
    at::Tensor t = tensor.to(device, fp16 && converted_to_fp16(name) ? at::kHalf : at::kFloat).contiguous();
    if (name == "logit_scale") t = t.reshape({});
    model.params_[name] = t;
  }
  const int64_t L = config.context_length;
  model.causal_mask_ = at::full({L, L}, -std::numeric_limits<float>::infinity(),
                                at::TensorOptions().dtype(fp16 ? at::kHalf : at::kFloat).device(device))
                           .triu_(1);
  return model;
}

ClipModel ClipModel::load(const std::string& path, at::Device device, bool fp16) {
  std::ifstream probe(path);
  if (!probe) throw Error(ErrorCode::kNotFound, "CLIP checkpoint not found: " + path);
  probe.close();
  std::map<std::string, at::Tensor> params;
  switch (sniff(path)) {
    case FileKind::kZip:
      // Tensors only: the archive's TorchScript code is never read, let alone run.
      params = torch_file::named_tensors(*torch_file::read(path), path);
      break;
    case FileKind::kHdf5: {
      h5::File file = h5::File::open_read(path);
      check(file.has(kWeightsGroup) && file.is_group(kWeightsGroup), ErrorCode::kCorruptFile,
            "CLIP checkpoint " + path + " is an HDF5 file without a '" + kWeightsGroup + "' group");
      for (const std::string& name : file.list(kWeightsGroup))
        params[name] = read_tensor(file, std::string(kWeightsGroup) + "/" + name);
      break;
    }
    case FileKind::kUnknown:
      throw Error(ErrorCode::kCorruptFile, "CLIP checkpoint " + path +
                                               " is neither a TorchScript archive (.pt) nor an feu HDF5 file (.h5)");
  }
  ClipModel model = from_state_dict(std::move(params), device, fp16, path);
  model.fingerprint_ = sha256_file(path);
  return model;
}

ClipModel ClipModel::random(const ClipConfig& c, uint64_t seed, at::Device device) {
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::map<std::string, at::Tensor> params;
  auto normal = [&](std::vector<int64_t> shape, double std) { return at::normal(0.0, std, shape, gen); };
  // As clip/model.py initialize_parameters (the vision tower's own
  // transformer gets the same scheme as the text one; biases are small
  // random values instead of PyTorch's defaults so every path is exercised).
  for (const auto& [key, shape] : expected_shapes(c)) {
    const std::string& name = key;  // a lambda below reads it (C++17 lambdas cannot capture a binding)
    const bool visual = name.rfind("visual.", 0) == 0;
    const double width = static_cast<double>(visual ? c.vision_width : c.text_width);
    const double layers = static_cast<double>(visual ? c.vision_layers : c.text_layers);
    const double proj_std = std::pow(width, -0.5) * std::pow(2.0 * layers, -0.5);
    auto ends_with = [&](const char* suffix) {
      size_t n = std::strlen(suffix);
      return name.size() >= n && name.compare(name.size() - n, n, suffix) == 0;
    };
    at::Tensor t;
    if (name == "logit_scale") t = at::full({}, std::log(1.0 / 0.07), at::kFloat);
    else if (name == "token_embedding.weight") t = normal(shape, 0.02);
    else if (name == "positional_embedding") t = normal(shape, 0.01);
    else if (name == "text_projection") t = normal(shape, std::pow(width, -0.5));
    else if (name == "visual.class_embedding" || name == "visual.positional_embedding" || name == "visual.proj")
      t = normal(shape, std::pow(width, -0.5));
    else if (name == "visual.conv1.weight")
      t = normal(shape, std::pow(3.0 * c.vision_patch_size * c.vision_patch_size, -0.5));
    else if (name.find("ln_") != std::string::npos)
      t = ends_with(".weight") ? at::ones(shape) + normal(shape, 0.05) : normal(shape, 0.02);
    else if (ends_with("attn.in_proj_weight")) t = normal(shape, std::pow(width, -0.5));
    else if (ends_with("attn.out_proj.weight") || ends_with("mlp.c_proj.weight")) t = normal(shape, proj_std);
    else if (ends_with("mlp.c_fc.weight")) t = normal(shape, std::pow(2.0 * width, -0.5));
    else t = normal(shape, 0.01);  // biases
    params[name] = t.to(at::kFloat);
  }
  return from_state_dict(std::move(params), device, /*fp16=*/false, "(random)");
}

void ClipModel::save_h5(const std::string& path) const {
  {
    AtomicFile out(path);
    {
      h5::File file = h5::File::create(out.temp_path());
      file.set_attr("/", "format", "feu-clip");
      file.set_attr("/", "config", config_.to_json());
      for (const auto& [name, tensor] : params_)
        write_tensor(file, std::string(kWeightsGroup) + "/" + name, tensor.to(at::kFloat));
      file.close();
    }
    out.commit();
  }
  const_cast<ClipModel*>(this)->fingerprint_ = sha256_file(path);
}

at::Device ClipModel::device() const { return params_.begin()->second.device(); }

double ClipModel::logit_scale() const { return std::exp(param("logit_scale").item<double>()); }

const at::Tensor& ClipModel::param(const std::string& name) const {
  auto it = params_.find(name);
  check(it != params_.end(), ErrorCode::kInternal, "CLIP parameter missing after validation: " + name);
  return it->second;
}

// x: [N, L, D]. Pre-LN residual attention blocks (nn.MultiheadAttention math:
// packed q/k/v rows, q scaled by 1/sqrt(64) before q k^T, additive mask).
// With `pooled` ([N] positions) only those rows leave the last block, as [N, D]:
// the towers read nothing else, and there only their queries, the MLP and the
// projections are computed, their attention without forming keys and values
// (pooled_attention).
at::Tensor ClipModel::transformer(at::Tensor x, const std::string& prefix, int64_t layers, int64_t heads,
                                  const at::Tensor& mask, const at::Tensor& pooled) const {
  const int64_t n = x.size(0), d = x.size(2);
  const at::Tensor pooled_index = pooled.defined() ? pooled.view({n, 1, 1}).expand({n, 1, d}) : at::Tensor();
  if (pooled_index.defined() && layers == 0) return x.gather(1, pooled_index).select(1, 0);
  // The residual branches' output biases reach the stream with the LayerNorm that reads it next.
  at::Tensor pending_bias;
  auto layer_norm = [&](const std::string& name) {
    const at::Tensor &weight = param(name + ".weight"), &bias = param(name + ".bias");
    if (!pending_bias.defined()) return clip::layer_norm(x, weight, bias);
    return add_bias_layer_norm_(x, std::exchange(pending_bias, at::Tensor()), weight, bias);
  };
  for (int64_t i = 0; i < layers; ++i) {
    const std::string p = prefix + std::to_string(i) + ".";
    const at::Tensor& in_weight = param(p + "attn.in_proj_weight");
    const at::Tensor& in_bias = param(p + "attn.in_proj_bias");
    at::Tensor h = layer_norm(p + "ln_1");
    at::Tensor attended;  // [N, L or 1, D]
    if (!pooled_index.defined() || i + 1 < layers) {
      // The projection without its bias: the attention adds it as it reads q, k and v.
      at::Tensor qkv = feu::linear(h, in_weight, at::Tensor());  // [N, L, 3D]
      attended = multi_head_attention(qkv.narrow(2, 0, d), qkv.narrow(2, d, d), qkv.narrow(2, 2 * d, d), heads,
                                      in_bias, mask);
    } else {
      const at::Tensor q = feu::linear(h.gather(1, pooled_index), in_weight.narrow(0, 0, d),
                                       in_bias.narrow(0, 0, d));  // [N, 1, D]
      x = x.gather(1, pooled_index);
      const at::Tensor row_mask = mask.defined() ? mask.index_select(0, pooled).unsqueeze(1) : mask;  // [N, 1, L]
      attended = pooled_attention(q, h, in_weight, in_bias, heads, row_mask);
    }
    add_product(x, attended, param(p + "attn.out_proj.weight"));
    pending_bias = param(p + "attn.out_proj.bias");
    h = layer_norm(p + "ln_2");
    const at::Tensor &fc_weight = param(p + "mlp.c_fc.weight"), &fc_bias = param(p + "mlp.c_fc.bias");
    if (h.is_cpu() && h.scalar_type() == at::kFloat) {
      h = feu::gemm(h.reshape({-1, d}), fc_weight.t());  // the bias comes with the activation, in the same pass
      add_bias_quick_gelu_(h, fc_bias);
    } else {
      h = quick_gelu(feu::linear(h, fc_weight, fc_bias));
    }
    add_product(x, h, param(p + "mlp.c_proj.weight"));
    pending_bias = param(p + "mlp.c_proj.bias");
  }
  if (pending_bias.defined()) x.add_(pending_bias);
  return pooled_index.defined() ? x.select(1, 0) : x;
}

at::Tensor ClipModel::encode_image(const at::Tensor& pixels) const {
  const int64_t r = config_.image_resolution;
  check(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == r && pixels.size(3) == r,
        ErrorCode::kShapeMismatch,
        "CLIP encode_image: expected pixels [N, 3, " + std::to_string(r) + ", " + std::to_string(r) + "], got " +
            shape_of(pixels));
  c10::InferenceMode guard;
  const auto dtype = fp16_ ? at::kHalf : at::kFloat;
  const int64_t width = config_.vision_width;
  at::Tensor x = pixels.to(device(), dtype);
  // conv1 (kernel = stride = patch, no bias) as the GEMM it is: patches [N·g², 3·P²] times its weight
  // viewed as [W, 3·P²] (one GEMM instead of a convolution's overhead).
  const int64_t n = x.size(0), patch = config_.vision_patch_size, grid = r / patch;
  at::Tensor patches = x.reshape({n, 3, grid, patch, grid, patch})
                           .permute({0, 2, 4, 1, 3, 5})
                           .reshape({n * grid * grid, 3 * patch * patch});
  x = feu::gemm(patches, param("visual.conv1.weight").reshape({width, 3 * patch * patch}).t())
          .view({n, grid * grid, width});  // [N, g*g, W]
  at::Tensor cls = param("visual.class_embedding").to(dtype).view({1, 1, width}).expand({n, 1, width});
  x = at::cat({cls, x}, 1) + param("visual.positional_embedding").to(dtype);        // [N, 1+g*g, W]
  x = layer_norm(x, param("visual.ln_pre.weight"), param("visual.ln_pre.bias"));
  const at::Tensor class_token = at::zeros({n}, at::TensorOptions(device()).dtype(at::kLong));
  x = transformer(x, "visual.transformer.resblocks.", config_.vision_layers, config_.vision_heads(), at::Tensor(),
                  class_token);  // [N, W]
  const at::Tensor cls_out = layer_norm(x, param("visual.ln_post.weight"), param("visual.ln_post.bias"));
  return feu::gemm(cls_out, param("visual.proj")).to(at::kFloat);  // [N, E]
}

at::Tensor ClipModel::encode_text(const at::Tensor& tokens) const {
  const int64_t context = config_.context_length;
  check(tokens.dim() == 2 && tokens.size(1) == context, ErrorCode::kShapeMismatch,
        "CLIP encode_text: expected tokens [M, " + std::to_string(context) + "], got " + shape_of(tokens));
  check(!at::isFloatingType(tokens.scalar_type()), ErrorCode::kInvalidArgument,
        "CLIP encode_text: tokens must be integer ids");
  c10::InferenceMode guard;
  const auto dtype = fp16_ ? at::kHalf : at::kFloat;
  at::Tensor ids = tokens.to(device(), at::kLong);
  if (ids.size(0) > 0) {
    const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
    check(lo >= 0 && hi < config_.vocab_size, ErrorCode::kInvalidArgument,
          "CLIP encode_text: token ids must be in 0.." + std::to_string(config_.vocab_size - 1) + ", got " +
              std::to_string(lo) + ".." + std::to_string(hi));
  }
  // Pooling reads the first end-of-text position (the largest id); with the
  // causal mask nothing after the last such position in the batch can change
  // the result, so those positions are not computed.
  at::Tensor eot = ids.argmax(1);                                                       // [M]
  const int64_t length = ids.size(0) > 0 ? eot.max().item<int64_t>() + 1 : 1;
  at::Tensor x = at::embedding(param("token_embedding.weight"), ids.narrow(1, 0, length)).to(dtype);
  x = x + param("positional_embedding").narrow(0, 0, length).to(dtype);                 // [M, length, W]
  at::Tensor mask = causal_mask_.narrow(0, 0, length).narrow(1, 0, length);
  x = transformer(x, "transformer.resblocks.", config_.text_layers, config_.text_heads(), mask, eot);  // x[i, eot[i]]
  const at::Tensor pooled = layer_norm(x, param("ln_final.weight"), param("ln_final.bias"));  // [M, W]
  return feu::gemm(pooled, param("text_projection")).to(at::kFloat);  // [M, E]
}

}  // namespace feu::clip
