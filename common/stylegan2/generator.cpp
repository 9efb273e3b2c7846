// StyleGAN2 generator, same math as NVlabs stylegan2-ada-pytorch
// training/networks.py (fp32, architecture "skip"); see
// shared/specs/stylegan2.md for the traps this code avoids.
//
// Formulation choices (all exact reformulations of the reference):
// - Modulated conv is the non-fused form: activations scaled by the styles,
//   one shared-weight convolution, outputs scaled by the demodulation
//   coefficients d[n,o] = rsqrt(sum_i s[n,i]^2 · sum_k w[o,i,k]^2 + 1e-8).
// - lrelu(v)·√2 == lrelu(v·√2), so √2 is folded into the demodulation scale,
//   the noise and the bias, and bias + noise + lrelu + clamp run as one pass.
// - conv0 (transposed conv, stride 2, then the 4×4 FIR with pad 1, gain 4):
//   on CUDA literally so; on CPU the transposed conv is split into its four
//   polyphase components (2×2, 2×1, 1×2, 1×1 taps of the stored kernel, the
//   same 9 MACs per input pixel) computed as ordinary convolutions, because
//   CPU conv_transpose2d runs through slow im2col + reference BLAS.
// - Reduced precision (Generator::with_precision) runs the chosen blocks through
//   conv_layer_reduced/torgb_layer_reduced, NVlabs' fp16 path in that type; the
//   fp32 layers keep the code below unchanged.
// - The skip upsample (upfirdn2d up 2, pad [2,1,2,1], gain 4) is separable:
//   per axis out[2m] = .25·x[m-1] + .75·x[m], out[2m+1] = .75·x[m] + .25·x[m+1]
//   with zeros outside.
#include "stylegan2/generator.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "tensor/conv.h"
#include "tensor/parallel.h"
#include "tensor/tensor_h5.h"

namespace feu::stylegan2 {

namespace {

constexpr double kSqrt2 = 1.4142135623730951;
constexpr double kLreluSlope = 0.2;

// One style layer's parameters, pre-arranged for inference.
struct LayerParams {
  StyleLayer info;
  std::string prefix;  // "synthesis.b8.conv0"
  bool up = false;     // conv0: up-sampling conv
  int64_t cin = 0, cout = 0;
  at::Tensor affine_weight;          // [C_in, w_dim] × 1/sqrt(w_dim)
  at::Tensor affine_bias;            // [C_in]
  at::Tensor weight;                 // conv [C_out, C_in, 3, 3]; toRGB [C_img, C_in, 1, 1]
  at::Tensor weight_t;               // conv0 on CUDA or grouped: [C_in, C_out, 3, 3] for conv_transpose2d
  at::Tensor phases[4];              // conv0 on CPU: polyphase sub-kernels ee, eo, oe, oo
  at::Tensor weight_sq;              // conv: [C_out, C_in] sum of squares over the 3×3 taps
  at::Tensor bias_scaled;            // conv: bias·√2; toRGB: bias
  at::Tensor noise_scaled;           // conv: noise_const·noise_strength·√2 [r, r]
  double noise_strength_scaled = 0;  // noise_strength·√2 (random noise)
  double style_gain = 1;             // toRGB: 1/sqrt(C_in)

  // Reduced precision (fp16/bf16 blocks): the type and clamp, and the weights in that type,
  // conv weights pre-scaled per output channel by 1/sqrt(fan_in)/max|w| (NVlabs'
  // modulated_conv2d in fp16; demodulation cancels the scale).
  LayerPrecision precision;
  at::Tensor weight_reduced;     // conv [C_out, C_in, 3, 3] scaled; toRGB [C_img, C_in, 1, 1]
  at::Tensor weight_t_reduced;   // conv0 on CUDA: [C_in, C_out, 3, 3] scaled; on CPU: [C_out,
                                 // C_in, 3, 3] scaled and flipped (zero insertion, then conv2d)
  at::Tensor weight_sq_reduced;  // conv: fp32 [C_out, C_in] sum of squares of the scaled taps
  at::Tensor fir_reduced;        // conv0: the FIR as a depthwise [C_out, 1, 4, 4] kernel
  at::Tensor bias_reduced, noise_reduced;
  bool reduced() const { return precision.dtype != at::kFloat; }
};

at::Tensor fir_kernel_1d(const at::TensorOptions& options) {
  // [1,3,3,1] normalized to sum 1 in 2-D (1/8 per axis), gain 4 = 2 per axis.
  return at::tensor({0.25f, 0.75f, 0.75f, 0.25f}, options);
}

}  // namespace

struct Generator::Impl {
  GeneratorConfig config;
  StyleSpace space;
  at::Device device = at::kCPU;
  std::string fingerprint;
  std::map<std::string, at::Tensor> weights;  // state-dict key -> tensor on device

  std::vector<at::Tensor> mapping_weight;  // effective [out, in]
  std::vector<at::Tensor> mapping_bias;    // effective [out]
  at::Tensor w_avg;                        // [w_dim]
  at::Tensor const_input;                  // [C, 4, 4]
  at::Tensor fir2d;                        // conv0 FIR on CUDA: [4, 4] outer product, gain 4
  std::vector<LayerParams> layers;
  Precision precision = Precision::kFp32;
  int num_fp16_res = 0;
  Modulation modulation = Modulation::kNonFused;
  MemoryFormat memory_format = MemoryFormat::kContiguous;

  // The layout activations and convolution weights are kept in.
  at::MemoryFormat layout() const {
    return memory_format == MemoryFormat::kChannelsLast ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  }
  void prepare();
  at::Tensor conv_layer_reduced(const at::Tensor& x, const at::Tensor& s, const LayerParams& L,
                                NoiseMode noise) const;
  at::Tensor torgb_layer_reduced(const at::Tensor& x, const at::Tensor& s,
                                 const LayerParams& L) const;
  at::Tensor conv_layer(const at::Tensor& x, const at::Tensor& s, const LayerParams& L,
                        NoiseMode noise) const;
  at::Tensor grouped_conv(const at::Tensor& x, const at::Tensor& s, const LayerParams& L) const;
  at::Tensor fir_after_transposed_conv(const at::Tensor& t, int64_t channels) const;
  at::Tensor torgb_layer(const at::Tensor& x, const at::Tensor& s, const LayerParams& L) const;
  void run_layers(at::Tensor& x, at::Tensor& img, const std::vector<at::Tensor>& styles, int begin,
                  int end, NoiseMode noise) const;
};

// ---------------------------------------------------------------------------
// Parameter preparation

void Generator::Impl::prepare() {
  const GeneratorConfig& c = config;
  auto W = [&](const std::string& key) -> const at::Tensor& { return weights.at(key); };
  mapping_weight.clear();
  mapping_bias.clear();
  for (int i = 0; i < c.mapping_layers; ++i) {
    const std::string p = "mapping.fc" + std::to_string(i);
    const double in = static_cast<double>(W(p + ".weight").size(1));
    mapping_weight.push_back(W(p + ".weight") * (c.mapping_lr_multiplier / std::sqrt(in)));
    mapping_bias.push_back(W(p + ".bias") * c.mapping_lr_multiplier);
  }
  w_avg = W("mapping.w_avg");
  const_input = W("synthesis.b4.const");
  at::Tensor f = fir_kernel_1d(const_input.options());
  fir2d = at::outer(f, f).contiguous();

  const bool cpu = device.is_cpu();
  const at::ScalarType reduced_type = precision == Precision::kFp16   ? at::kHalf
                                      : precision == Precision::kBf16 ? at::kBFloat16
                                                                      : at::kFloat;
  // NVlabs SynthesisNetwork: fp16_resolution = max(2^(log2(res) + 1 - num_fp16_res), 8).
  const int log2_res = static_cast<int>(std::lround(std::log2(c.img_resolution)));
  const int64_t reduced_from =
      reduced_type == at::kFloat
          ? int64_t{c.img_resolution} + 1
          : std::max<int64_t>(int64_t{1} << std::max(log2_res + 1 - num_fp16_res, 0), 8);
  const double affine_gain = 1.0 / std::sqrt(static_cast<double>(c.w_dim));
  layers.clear();
  for (const StyleLayer& info : space.layers()) {
    LayerParams L;
    L.info = info;
    const std::string kind_name = info.name.substr(info.name.find('.') + 1);
    L.prefix = "synthesis." + info.name;
    L.up = kind_name == "conv0";
    L.affine_weight = W(L.prefix + ".affine.weight") * affine_gain;
    L.affine_bias = W(L.prefix + ".affine.bias");
    L.weight = W(L.prefix + ".weight");
    L.cout = L.weight.size(0);
    L.cin = L.weight.size(1);
    if (info.kind == StyleKind::kConv) {
      L.weight_sq = L.weight.square().sum({2, 3});
      L.bias_scaled = W(L.prefix + ".bias") * kSqrt2;
      const double strength = W(L.prefix + ".noise_strength").item<double>();
      L.noise_strength_scaled = strength * kSqrt2;
      L.noise_scaled = W(L.prefix + ".noise_const") * (strength * kSqrt2);
      if (L.up) {
        if (cpu) {
          // Transposed conv, stride 2: output row 2m takes taps 2 (x[m-1]) and
          // 0 (x[m]); row 2m+1 takes tap 1 (x[m]). Over the input padded by
          // one, those are windows of width 2 (taps {2,0}) and 1 (tap 1, offset
          // 1).
          at::Tensor even = at::tensor({2, 0}, at::kLong).to(device);
          at::Tensor odd = at::tensor({1}, at::kLong).to(device);
          auto sub = [&](const at::Tensor& rows, const at::Tensor& cols) {
            return L.weight.index_select(2, rows).index_select(3, cols).contiguous();
          };
          L.phases[0] = sub(even, even);
          L.phases[1] = sub(even, odd);
          L.phases[2] = sub(odd, even);
          L.phases[3] = sub(odd, odd);
        }
        if (!cpu || modulation == Modulation::kGrouped) L.weight_t = L.weight.transpose(0, 1).contiguous();
      }
    } else {
      L.bias_scaled = W(L.prefix + ".bias");
      L.style_gain = 1.0 / std::sqrt(static_cast<double>(L.cin));
    }
    L.precision.clamp = c.conv_clamp > 0 ? c.conv_clamp : -1;
    if (info.resolution >= reduced_from) {
      L.precision.dtype = reduced_type;
      if (L.precision.clamp < 0) L.precision.clamp = 256;
      if (info.kind == StyleKind::kConv) {
        const double fan_in = static_cast<double>(L.weight[0].numel());
        const at::Tensor scaled =
            L.weight * (1 / std::sqrt(fan_in) / L.weight.abs().amax({1, 2, 3}, true));
        L.weight_sq_reduced = scaled.square().sum({2, 3});
        L.weight_reduced = scaled.to(reduced_type).contiguous();
        if (L.up) {
          L.weight_t_reduced =
              (cpu ? scaled.flip({2, 3}) : scaled.transpose(0, 1)).to(reduced_type).contiguous();
          L.fir_reduced =
              fir2d.view({1, 1, 4, 4}).expand({L.cout, 1, 4, 4}).to(reduced_type).contiguous();
        }
        L.noise_reduced = L.noise_scaled.to(reduced_type);
      } else {
        L.weight_reduced = L.weight.to(reduced_type).contiguous();
      }
      L.bias_reduced = L.bias_scaled.to(reduced_type);
    }
    if (memory_format == MemoryFormat::kChannelsLast) {
      for (at::Tensor* w : {&L.weight, &L.weight_t, &L.weight_reduced, &L.weight_t_reduced, &L.fir_reduced})
        if (w->defined()) *w = w->contiguous(at::MemoryFormat::ChannelsLast);
    }
    layers.push_back(std::move(L));
  }
}

// ---------------------------------------------------------------------------
// Layers

namespace {

// y[n,c,:,:] = clamp(lrelu(y·scale[n,c] + noise[n] + bias[c])) in one pass
// (CPU). `noise` is [H, W] (shared), [N, 1, H, W] (per sample) or undefined.
void scale_bias_lrelu_cpu(at::Tensor& y, const at::Tensor& scale, const at::Tensor& noise,
                          const at::Tensor& bias, float clamp) {
  const int64_t N = y.size(0), C = y.size(1), HW = y.size(2) * y.size(3);
  float* yp = y.data_ptr<float>();
  at::Tensor scale_c = scale.contiguous();
  at::Tensor bias_c = bias.contiguous();
  at::Tensor noise_c = noise.defined() ? noise.contiguous() : noise;
  const float* sp = scale_c.data_ptr<float>();
  const float* bp = bias_c.data_ptr<float>();
  const float* np = noise_c.defined() ? noise_c.data_ptr<float>() : nullptr;
  const int64_t noise_stride = (noise_c.defined() && noise_c.dim() == 4) ? HW : 0;
  const float slope = static_cast<float>(kLreluSlope);
  const bool do_clamp = clamp > 0;
  parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    for (int64_t p = begin; p < end; ++p) {
      const int64_t n = p / C, c = p % C;
      const float a = sp[p], b = bp[c];
      float* row = yp + p * HW;
      if (np) {
        const float* nrow = np + n * noise_stride;
        for (int64_t j = 0; j < HW; ++j) {
          float v = row[j] * a + nrow[j] + b;
          row[j] = v < 0 ? v * slope : v;
        }
      } else {
        for (int64_t j = 0; j < HW; ++j) {
          float v = row[j] * a + b;
          row[j] = v < 0 ? v * slope : v;
        }
      }
      if (do_clamp)
        for (int64_t j = 0; j < HW; ++j) row[j] = std::min(std::max(row[j], -clamp), clamp);
    }
  });
}

// conv0's FIR (upfirdn2d pad 1, gain 4, [1,3,3,1]) applied to the transposed
// conv output given as its four polyphase planes [N, C, H+1, W+1] (ee, eo, oe,
// oo; the odd planes' last row/col are zero). Per axis, with e/o the even/odd
// samples of the 2H+1 transposed-conv output and g = [.25, .75, .75, .25]:
//   z[2p]   = .25 o[p-1] + .75 e[p] + .75 o[p]   + .25 e[p+1]
//   z[2p+1] = .25 e[p]   + .75 o[p] + .75 e[p+1] + .25 o[p+1]
// Separable: rows first (per row class), then columns. Output [N, C, 2H, 2W].
at::Tensor fir_from_phases_cpu(const at::Tensor (&phases)[4]) {
  const int64_t N = phases[0].size(0), C = phases[0].size(1);
  const int64_t H = phases[0].size(2) - 1, W = phases[0].size(3) - 1;
  at::Tensor p[4];
  for (int i = 0; i < 4; ++i) p[i] = phases[i].contiguous();
  at::Tensor out = at::empty({N, C, 2 * H, 2 * W}, p[0].options());
  const int64_t plane_in = (H + 1) * (W + 1), plane_out = 4 * H * W, W2 = 2 * W;
  float* op = out.data_ptr<float>();
  const float* pp[4] = {p[0].data_ptr<float>(), p[1].data_ptr<float>(), p[2].data_ptr<float>(),
                        p[3].data_ptr<float>()};
  parallel_for(0, N * C, 1, [&](int64_t begin, int64_t end) {
    // Row-filtered planes of the even and odd rows: (H+1) x 2W each.
    std::vector<float> rows_e((H + 1) * W2), rows_o((H + 1) * W2);
    for (int64_t plane = begin; plane < end; ++plane) {
      for (int cls = 0; cls < 2; ++cls) {
        const float* e_plane = pp[2 * cls] + plane * plane_in;
        const float* o_plane = pp[2 * cls + 1] + plane * plane_in;
        float* dst = cls == 0 ? rows_e.data() : rows_o.data();
        for (int64_t m = 0; m <= H; ++m) {
          const float* e = e_plane + m * (W + 1);
          const float* o = o_plane + m * (W + 1);
          float* r = dst + m * W2;
          r[0] = 0.75f * e[0] + 0.75f * o[0] + 0.25f * e[1];
          for (int64_t q = 1; q < W; ++q)
            r[2 * q] = 0.25f * o[q - 1] + 0.75f * e[q] + 0.75f * o[q] + 0.25f * e[q + 1];
          for (int64_t q = 0; q < W; ++q)
            r[2 * q + 1] = 0.25f * e[q] + 0.75f * o[q] + 0.75f * e[q + 1] + 0.25f * o[q + 1];
        }
      }
      float* z = op + plane * plane_out;
      for (int64_t pr = 0; pr < H; ++pr) {
        const float* e0 = rows_e.data() + pr * W2;
        const float* e1 = e0 + W2;
        const float* o0 = rows_o.data() + pr * W2;
        const float* o1 = o0 + W2;
        float* even = z + (2 * pr) * W2;
        float* odd = even + W2;
        if (pr > 0) {
          const float* om = o0 - W2;
          for (int64_t t = 0; t < W2; ++t)
            even[t] = 0.25f * om[t] + 0.75f * e0[t] + 0.75f * o0[t] + 0.25f * e1[t];
        } else {
          for (int64_t t = 0; t < W2; ++t) even[t] = 0.75f * e0[t] + 0.75f * o0[t] + 0.25f * e1[t];
        }
        for (int64_t t = 0; t < W2; ++t)
          odd[t] = 0.25f * e0[t] + 0.75f * o0[t] + 0.75f * e1[t] + 0.25f * o1[t];
      }
    }
  });
  return out;
}

// upfirdn2d(x, [1,3,3,1], up=2, pad=[2,1,2,1], gain=4), separably.
at::Tensor upsample_skip(const at::Tensor& x) {
  auto up_last = [](const at::Tensor& t) {  // along the last axis
    const int64_t n = t.size(-1);
    at::Tensor p = at::constant_pad_nd(t, {1, 1});
    at::Tensor left = p.narrow(-1, 0, n), mid = p.narrow(-1, 1, n), right = p.narrow(-1, 2, n);
    at::Tensor even = at::add(mid * 0.75, left, 0.25);
    at::Tensor odd = at::add(mid * 0.75, right, 0.25);
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    shape.back() = 2 * n;
    return at::stack({even, odd}, -1).reshape(shape);
  };
  return up_last(up_last(x).transpose(2, 3)).transpose(2, 3).contiguous();
}

}  // namespace

at::Tensor Generator::Impl::conv_layer(const at::Tensor& x, const at::Tensor& s,
                                       const LayerParams& L, NoiseMode noise_mode) const {
  const int64_t N = x.size(0), H = x.size(2), Wd = x.size(3);
  // On CPU, modulate the weights instead of the activations wherever the
  // weights are the smaller tensor (conv(x·s, w) == conv(x, w·s) since s scales
  // input channels): always at batch 1, and one sample at a time from the
  // resolution where a sample's input outgrows the 3×3 kernels (H·W >= 9·C_out).
  // Batching those layers measured slower per image than batch 1
  // (bench_stylegan2: 1.92 s against 1.22 s at 1024², batch 4).
  const bool grouped = modulation == Modulation::kGrouped;
  if (!grouped && device.is_cpu() && N > 1 && H * Wd >= 9 * L.cout) {
    std::vector<at::Tensor> samples;
    for (int64_t n = 0; n < N; ++n) samples.push_back(conv_layer(x.narrow(0, n, 1), s.narrow(0, n, 1), L, noise_mode));
    return at::cat(samples, 0);
  }
  // Demodulation coefficients [N, C_out], with √2 folded in.
  at::Tensor d = at::rsqrt(at::matmul(s.square(), L.weight_sq.t()) + 1e-8) * kSqrt2;
  const bool fold = device.is_cpu() && N == 1;
  const at::Tensor xs = fold || grouped ? x : x * s.view({N, L.cin, 1, 1});
  auto modulated = [&](const at::Tensor& w) { return fold ? w * s.view({1, L.cin, 1, 1}) : w; };
  at::Tensor y;
  if (grouped) {
    y = grouped_conv(x, s, L);
  } else if (!L.up) {
    y = device.is_cpu()
            ? feu::conv2d(xs, modulated(L.weight), at::Tensor(), 1, 1)
            : at::conv2d(xs, L.weight, {}, at::IntArrayRef{1, 1}, at::IntArrayRef{1, 1});
  } else if (device.is_cpu()) {
    // Polyphase transposed conv: four ordinary convolutions over the input
    // padded by one, each [N, C_out, H+1, W+1] (the odd phases' last row/col
    // read only padding and are exactly zero), then the FIR straight from
    // the phases.
    at::Tensor xp = at::constant_pad_nd(xs, {1, 1, 1, 1});
    at::Tensor phases[4];
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) {
        at::Tensor input = xp.narrow(2, a, H + 2 - a).narrow(3, b, Wd + 2 - b);
        phases[2 * a + b] = feu::conv2d(input, modulated(L.phases[2 * a + b]), at::Tensor(), 1, 0);
      }
    y = fir_from_phases_cpu(phases);
  } else {
    y = fir_after_transposed_conv(at::conv_transpose2d(xs, L.weight_t, {}, at::IntArrayRef{2, 2}), L.cout);
  }
  y = y.contiguous(layout());
  at::Tensor noise;
  if (noise_mode == NoiseMode::kConst) {
    noise = L.noise_scaled;
  } else if (noise_mode == NoiseMode::kRandom) {
    noise = at::randn({N, 1, y.size(2), y.size(3)}, y.options()) * L.noise_strength_scaled;
  }
  const float clamp = config.conv_clamp > 0 ? static_cast<float>(config.conv_clamp) : -1.f;
  if (y.is_cpu() && y.scalar_type() == at::kFloat) {
    scale_bias_lrelu_cpu(y, d, noise, L.bias_scaled, clamp);
  } else {
    y.mul_(d.view({N, L.cout, 1, 1}));
    if (noise.defined()) y.add_(noise);
    y.add_(L.bias_scaled.view({1, L.cout, 1, 1}));
    at::leaky_relu_(y, kLreluSlope);
    if (clamp > 0) y.clamp_(-clamp, clamp);
  }
  return y;
}

// t: the transposed convolution's [N, C, 2H+1, 2W+1]; the 4×4 FIR (pad 1, gain 4) as a
// depthwise convolution -> [N, C, 2H, 2W].
at::Tensor Generator::Impl::fir_after_transposed_conv(const at::Tensor& t, int64_t channels) const {
  const at::Tensor k = fir2d.view({1, 1, 4, 4}).expand({channels, 1, 4, 4}).contiguous();
  return at::conv2d(t, k, {}, at::IntArrayRef{1, 1}, at::IntArrayRef{1, 1}, at::IntArrayRef{1, 1}, channels);
}

// Modulation::kGrouped: every sample's weights scaled by its styles, the batch folded into the
// channels, x [N, C_in, H, W] -> [1, N·C_in, H, W], one convolution of N groups. Returns
// [N, C_out, H', W'] before demodulation, like the non-fused forms.
at::Tensor Generator::Impl::grouped_conv(const at::Tensor& x, const at::Tensor& s, const LayerParams& L) const {
  const int64_t N = x.size(0), H = x.size(2), Wd = x.size(3);
  const at::Tensor folded = x.reshape({1, N * L.cin, H, Wd});
  if (!L.up) {
    const at::Tensor w = (L.weight.unsqueeze(0) * s.view({N, 1, L.cin, 1, 1})).reshape({N * L.cout, L.cin, 3, 3});
    const at::Tensor y = at::conv2d(folded, w, {}, at::IntArrayRef{1, 1}, at::IntArrayRef{1, 1},
                                    at::IntArrayRef{1, 1}, N);
    return y.view({N, L.cout, H, Wd});
  }
  // conv_transpose2d's weight is [C_in, C_out / groups, 3, 3] per group, stacked over the groups.
  const at::Tensor w = (L.weight_t.unsqueeze(0) * s.view({N, L.cin, 1, 1, 1})).reshape({N * L.cin, L.cout, 3, 3});
  const at::Tensor t = at::conv_transpose2d(folded, w, {}, at::IntArrayRef{2, 2}, at::IntArrayRef{0, 0},
                                            at::IntArrayRef{0, 0}, N);  // [1, N·C_out, 2H+1, 2W+1]
  return fir_after_transposed_conv(t.view({N, L.cout, t.size(2), t.size(3)}), L.cout);
}

at::Tensor Generator::Impl::torgb_layer(const at::Tensor& x, const at::Tensor& s,
                                        const LayerParams& L) const {
  const int64_t N = x.size(0);
  if (device.is_cpu() && N > 1) {  // the [3, C_in] weights are always smaller than a sample: as in conv_layer
    std::vector<at::Tensor> samples;
    for (int64_t n = 0; n < N; ++n) samples.push_back(torgb_layer(x.narrow(0, n, 1), s.narrow(0, n, 1), L));
    return at::cat(samples, 0);
  }
  at::Tensor gain = (s * L.style_gain).view({N, L.cin, 1, 1});
  at::Tensor y;
  if (device.is_cpu()) {  // batch 1 here: modulate the weights, as in conv_layer
    y = feu::conv2d(x, L.weight * gain, at::Tensor(), 1, 0).add_(L.bias_scaled.view({1, -1, 1, 1}));
  } else {
    y = at::conv2d(x * gain, L.weight, L.bias_scaled);
  }
  if (config.conv_clamp > 0) y.clamp_(-config.conv_clamp, config.conv_clamp);
  return y;
}

// NVlabs' non-fused modulated_conv2d for fp16 blocks, in the layer's type: the styles over their
// largest magnitude (per sample) and the pre-scaled weights keep the products in fp16's range;
// the demodulation coefficients, computed in fp32 from the same scaled factors, cancel both.
at::Tensor Generator::Impl::conv_layer_reduced(const at::Tensor& x_in, const at::Tensor& s,
                                               const LayerParams& L, NoiseMode noise_mode) const {
  const at::ScalarType type = L.precision.dtype;
  const int64_t N = x_in.size(0);
  const at::Tensor x = x_in.to(type);
  const at::Tensor s_scaled = s / s.abs().amax(1, true);
  const at::Tensor d =
      at::rsqrt(at::matmul(s_scaled.square(), L.weight_sq_reduced.t()) + 1e-8) * kSqrt2;
  const at::Tensor xs = x * s_scaled.to(type).view({N, L.cin, 1, 1});
  at::Tensor y;
  if (!L.up) {
    y = at::conv2d(xs, L.weight_reduced, {}, at::IntArrayRef{1, 1}, at::IntArrayRef{1, 1});
  } else {
    at::Tensor t;  // the transposed conv, stride 2: [N, C_out, 2H+1, 2W+1]
    if (device.is_cpu()) {
      // libtorch's CPU conv_transpose2d has no bf16: the same map as the input spread over every
      // other pixel of a zero plane padded by 2, convolved with the flipped kernel.
      const int64_t H = xs.size(2), W = xs.size(3);
      at::Tensor spread = at::zeros({N, L.cin, 2 * H + 3, 2 * W + 3}, xs.options());
      spread.slice(2, 2, 2 * H + 1, 2).slice(3, 2, 2 * W + 1, 2).copy_(xs);
      t = at::conv2d(spread, L.weight_t_reduced);
    } else {
      t = at::conv_transpose2d(xs, L.weight_t_reduced, {}, at::IntArrayRef{2, 2});
    }
    y = at::conv2d(t, L.fir_reduced, {}, at::IntArrayRef{1, 1}, at::IntArrayRef{1, 1},
                   at::IntArrayRef{1, 1}, L.cout);
  }
  y.mul_(d.to(type).view({N, L.cout, 1, 1}));
  if (noise_mode == NoiseMode::kConst) {
    y.add_(L.noise_reduced);
  } else if (noise_mode == NoiseMode::kRandom) {
    y.add_(at::randn({N, 1, y.size(2), y.size(3)}, y.options()) * L.noise_strength_scaled);
  }
  y.add_(L.bias_reduced.view({1, L.cout, 1, 1}));
  at::leaky_relu_(y, kLreluSlope);
  if (L.precision.clamp > 0) y.clamp_(-L.precision.clamp, L.precision.clamp);
  return y;
}

// NVlabs' ToRGBLayer in an fp16 block: no demodulation (so no pre-scaling), bias and clamp in
// the layer's type, the result added to the fp32 skip image.
at::Tensor Generator::Impl::torgb_layer_reduced(const at::Tensor& x, const at::Tensor& s,
                                                const LayerParams& L) const {
  const at::ScalarType type = L.precision.dtype;
  const at::Tensor gain = (s * L.style_gain).to(type).view({x.size(0), L.cin, 1, 1});
  at::Tensor y = at::conv2d(x.to(type) * gain, L.weight_reduced, L.bias_reduced);
  if (L.precision.clamp > 0) y.clamp_(-L.precision.clamp, L.precision.clamp);
  return y.to(at::kFloat);
}

void Generator::Impl::run_layers(at::Tensor& x, at::Tensor& img,
                                 const std::vector<at::Tensor>& styles, int begin, int end,
                                 NoiseMode noise) const {
  for (int i = begin; i < end; ++i) {
    const LayerParams& L = layers[static_cast<size_t>(i)];
    const at::Tensor s = styles[static_cast<size_t>(i)].to(device, at::kFloat);
    if (L.info.kind == StyleKind::kConv) {
      x = L.reduced() ? conv_layer_reduced(x, s, L, noise) : conv_layer(x, s, L, noise);
    } else {
      at::Tensor y = L.reduced() ? torgb_layer_reduced(x, s, L) : torgb_layer(x, s, L);
      img = img.defined() ? upsample_skip(img).add_(y) : y;
    }
  }
}

// ---------------------------------------------------------------------------
// Loading, random init, saving

namespace {

GeneratorConfig read_config(const h5::File& f) {
  GeneratorConfig c;
  auto int_attr = [&](std::initializer_list<const char*> names, int64_t fallback,
                      bool required) -> int64_t {
    for (const char* n : names)
      if (f.has_attr("/", n)) return f.attr_int("/", n);
    check(!required, ErrorCode::kCorruptFile,
          f.path() + ": missing root attribute '" + *names.begin() +
              "' (not a feu StyleGAN2 weights file; convert with "
              "scripts/convert_stylegan2.py)");
    return fallback;
  };
  c.z_dim = int_attr({"z_dim"}, 0, true);
  c.w_dim = int_attr({"w_dim"}, 0, true);
  c.c_dim = int_attr({"c_dim"}, 0, false);
  c.img_resolution = static_cast<int>(int_attr({"img_resolution"}, 0, true));
  c.img_channels = static_cast<int>(int_attr({"img_channels"}, 3, false));
  c.mapping_layers = static_cast<int>(int_attr({"mapping_num_layers", "mapping_layers"}, 0, true));
  c.channel_base = int_attr({"channel_base"}, 0, true);
  c.channel_max = int_attr({"channel_max"}, 0, true);
  for (const char* n : {"lr_multiplier", "mapping_lr_multiplier"})
    if (f.has_attr("/", n)) {
      c.mapping_lr_multiplier = f.attr_double("/", n);
      break;
    }
  c.conv_clamp = -1;
  if (f.has_attr("/", "conv_clamp")) {
    // A number, or "none"/"null" as the parity fixtures write it.
    try {
      c.conv_clamp = f.attr_double("/", "conv_clamp");
    } catch (const Error&) {
      const std::string text = f.attr_string("/", "conv_clamp");
      check(
          text == "none" || text == "null" || text == "None", ErrorCode::kCorruptFile,
          f.path() + ": root attribute conv_clamp = '" + text + "' (expected a number or 'none')");
    }
    if (!(c.conv_clamp > 0)) c.conv_clamp = -1;
  }
  if (f.has_attr("/", "architecture")) {
    const std::string arch = f.attr_string("/", "architecture");
    check(arch == "skip", ErrorCode::kUnsupported,
          f.path() + ": generator architecture '" + arch + "' is not supported (expected 'skip')");
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(e.code(), f.path() + ": " + e.what());
  }
  return c;
}

void check_filter(const at::Tensor& filter, const std::string& key, const std::string& path) {
  at::Tensor f = fir_kernel_1d(at::TensorOptions().dtype(at::kFloat)) / 2;
  at::Tensor expected = at::outer(f, f);
  const double diff = (filter.to(at::kCPU) - expected).abs().max().item<double>();
  check(diff < 1e-6, ErrorCode::kUnsupported,
        path + ": weights/" + key +
            " is not the [1,3,3,1] resample filter this port implements (max "
            "|diff| " +
            std::to_string(diff) + ")");
}

void set_cuda_precision(at::Device device) {
  // TF32 convolutions/matmuls (default on Ampere+) break 1e-4 parity.
  if (device.is_cuda()) {
    at::globalContext().setAllowTF32CuDNN(false);
    at::globalContext().setAllowTF32CuBLAS(false);
  }
}

}  // namespace

Generator Generator::load(const std::string& h5_path, at::Device device) {
  at::NoGradGuard no_grad;
  set_cuda_precision(device);
  h5::File f = [&] {
    try {
      return h5::File::open_read(h5_path);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kCorruptFile) throw;
      // Most often an NVlabs .pkl or a rosinality .pt given as it was downloaded.
      throw Error(ErrorCode::kCorruptFile,
                  std::string(e.what()) + "; feu reads generators converted to HDF5: scripts/convert_stylegan2.py " +
                      h5_path + " --out G.h5 (NVlabs .pkl, TF-era .pkl or rosinality .pt)");
    }
  }();
  auto impl = std::make_shared<Impl>();
  impl->config = read_config(f);
  impl->space = StyleSpace(impl->config);
  impl->device = device;
  for (const auto& [key, shape] : expected_weight_shapes(impl->config)) {
    const std::string name = "weights/" + key;
    check(f.has(name), ErrorCode::kNotFound,
          h5_path + ": missing weight '" + name + "' (expected shape " + h5::shape_string(shape) +
              " for a " + std::to_string(impl->config.img_resolution) + "x" +
              std::to_string(impl->config.img_resolution) + " generator)");
    const h5::Shape actual = f.shape(name);
    check(actual == shape, ErrorCode::kShapeMismatch,
          h5_path + ": weight '" + name + "' has shape " + h5::shape_string(actual) +
              ", expected " + h5::shape_string(shape));
    at::Tensor t = read_tensor(f, name);
    if (key.size() > 16 && key.compare(key.size() - 16, 16, ".resample_filter") == 0)
      check_filter(t, key, h5_path);
    check(at::isfinite(t).all().item<bool>(), ErrorCode::kCorruptFile,
          h5_path + ": weight '" + name + "' contains NaN or infinite values");
    impl->weights[key] = t.to(device);
  }
  impl->prepare();
  impl->fingerprint = sha256_file(h5_path);
  return Generator(std::move(impl));
}

Generator Generator::random(const GeneratorConfig& config, uint64_t seed, at::Device device) {
  at::NoGradGuard no_grad;
  set_cuda_precision(device);
  config.validate();
  auto impl = std::make_shared<Impl>();
  impl->config = config;
  impl->space = StyleSpace(config);
  impl->device = device;
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::TensorOptions opts = at::TensorOptions().dtype(at::kFloat);
  at::Tensor f = fir_kernel_1d(opts) / 2;
  at::Tensor filter = at::outer(f, f).contiguous();
  auto ends_with = [](const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  // NVlabs initialization: FC weights randn / lr_multiplier, FC biases
  // bias_init / lr_multiplier (affines: bias_init 1), conv weights, const and
  // noise_const randn, conv biases and noise_strength 0, w_avg 0.
  for (const auto& [key, shape] : expected_weight_shapes(config)) {
    at::Tensor t;
    if (ends_with(key, ".resample_filter")) {
      t = filter.clone();
    } else if (key == "mapping.w_avg" || ends_with(key, ".noise_strength")) {
      t = at::zeros(shape, opts);
    } else if (key.rfind("mapping.fc", 0) == 0) {
      t = ends_with(key, ".weight") ? at::randn(shape, gen, opts) / config.mapping_lr_multiplier
                                    : at::zeros(shape, opts);
    } else if (ends_with(key, ".affine.bias")) {
      t = at::ones(shape, opts);
    } else if (ends_with(key, ".bias")) {
      t = at::zeros(shape, opts);
    } else {
      t = at::randn(shape, gen,
                    opts);  // weights, affine weights, const, noise_const
    }
    impl->weights[key] = t.to(device);
  }
  impl->prepare();
  return Generator(std::move(impl));
}

void Generator::save(const std::string& h5_path) const {
  const GeneratorConfig& c = impl_->config;
  {
    AtomicFile out(h5_path);
    {
      h5::File f = h5::File::create(out.temp_path());
      nlohmann::json config = {
          {"z_dim", c.z_dim},
          {"c_dim", c.c_dim},
          {"w_dim", c.w_dim},
          {"img_resolution", c.img_resolution},
          {"img_channels", c.img_channels},
          {"mapping_num_layers", c.mapping_layers},
          {"channel_base", c.channel_base},
          {"channel_max", c.channel_max},
          {"num_fp16_res", 0},
          {"conv_clamp", c.conv_clamp > 0 ? nlohmann::json(c.conv_clamp) : nlohmann::json(nullptr)},
          {"architecture", "skip"},
          {"lr_multiplier", c.mapping_lr_multiplier}};
      f.set_attr("/", "config", config.dump());
      f.set_attr("/", "z_dim", c.z_dim);
      f.set_attr("/", "w_dim", c.w_dim);
      f.set_attr("/", "c_dim", c.c_dim);
      f.set_attr("/", "img_resolution", int64_t{c.img_resolution});
      f.set_attr("/", "img_channels", int64_t{c.img_channels});
      f.set_attr("/", "mapping_num_layers", int64_t{c.mapping_layers});
      f.set_attr("/", "channel_base", c.channel_base);
      f.set_attr("/", "channel_max", c.channel_max);
      f.set_attr("/", "num_fp16_res", int64_t{0});
      if (c.conv_clamp > 0)
        f.set_attr("/", "conv_clamp", c.conv_clamp);
      else
        f.set_attr("/", "conv_clamp", std::string("none"));
      f.set_attr("/", "architecture", std::string("skip"));
      f.set_attr("/", "lr_multiplier", c.mapping_lr_multiplier);
      f.set_attr("/", "num_ws", int64_t{c.num_ws()});
      nlohmann::json layers = nlohmann::json::array();
      for (const auto& layer : impl_->space.layers()) layers.push_back(layer.name);
      f.set_attr("/", "layers", layers.dump());
      for (const auto& [key, shape] : expected_weight_shapes(c))
        write_tensor(f, "weights/" + key, impl_->weights.at(key));
      f.close();
    }
    out.commit();
  }
  impl_->fingerprint = sha256_file(h5_path);
}

// ---------------------------------------------------------------------------
// Accessors

const GeneratorConfig& Generator::config() const { return impl_->config; }
const StyleSpace& Generator::style_space() const { return impl_->space; }
at::Device Generator::device() const { return impl_->device; }
const std::string& Generator::fingerprint() const { return impl_->fingerprint; }
Precision Generator::precision() const { return impl_->precision; }
int Generator::num_fp16_res() const { return impl_->num_fp16_res; }

LayerPrecision Generator::layer_precision(int layer_index) const {
  check(layer_index >= 0 && layer_index < impl_->space.num_layers(), ErrorCode::kInvalidArgument,
        "layer index " + std::to_string(layer_index) + " is out of range [0, " +
            std::to_string(impl_->space.num_layers()) + ")");
  return impl_->layers[static_cast<size_t>(layer_index)].precision;
}

Generator Generator::with_precision(Precision precision, int num_fp16_res) const {
  at::NoGradGuard no_grad;
  check(num_fp16_res >= 0, ErrorCode::kInvalidArgument,
        "num_fp16_res = " + std::to_string(num_fp16_res) +
            " (expected the number of highest-resolution blocks in reduced precision, >= 0)");
  check(!(precision == Precision::kFp16 && impl_->device.is_cpu()), ErrorCode::kUnsupported,
        "fp16 synthesis needs a CUDA device (libtorch has no fp16 convolutions on the CPU); "
        "use bf16 or fp32 on the CPU");
  auto impl = std::make_shared<Impl>(*impl_);
  impl->precision = precision;
  impl->num_fp16_res = precision == Precision::kFp32 ? 0 : num_fp16_res;
  impl->prepare();
  return Generator(std::move(impl));
}

Generator Generator::with_modulation(Modulation modulation) const {
  at::NoGradGuard no_grad;
  auto impl = std::make_shared<Impl>(*impl_);
  impl->modulation = modulation;
  impl->prepare();
  return Generator(std::move(impl));
}

Modulation Generator::modulation() const { return impl_->modulation; }

Generator Generator::with_memory_format(MemoryFormat format) const {
  at::NoGradGuard no_grad;
  check(format == MemoryFormat::kContiguous || !impl_->device.is_cpu(), ErrorCode::kUnsupported,
        "channels_last synthesis needs a CUDA device (the CPU's convolution forms read NCHW); use contiguous on "
        "the CPU");
  auto impl = std::make_shared<Impl>(*impl_);
  impl->memory_format = format;
  impl->prepare();
  return Generator(std::move(impl));
}

MemoryFormat Generator::memory_format() const { return impl_->memory_format; }

const at::Tensor& Generator::weight(const std::string& key) const {
  auto it = impl_->weights.find(key);
  check(it != impl_->weights.end(), ErrorCode::kNotFound, "generator has no weight '" + key + "'");
  return it->second;
}

void Generator::set_weight(const std::string& key, const at::Tensor& value) {
  at::NoGradGuard no_grad;
  const at::Tensor& current = weight(key);
  check(current.sizes() == value.sizes(), ErrorCode::kShapeMismatch,
        "weight '" + key + "' has shape " + c10::str(current.sizes()) + ", got " +
            c10::str(value.sizes()));
  impl_->weights[key] = value.to(impl_->device, at::kFloat).contiguous();
  impl_->prepare();
  impl_->fingerprint.clear();
}

// ---------------------------------------------------------------------------
// Forward

at::Tensor Generator::mapping(const at::Tensor& z, double psi, int cutoff) const {
  at::NoGradGuard no_grad;
  const GeneratorConfig& c = impl_->config;
  check(z.dim() == 2 && z.size(1) == c.z_dim, ErrorCode::kShapeMismatch,
        "z has shape " + c10::str(z.sizes()) + ", expected [N, " + std::to_string(c.z_dim) + "]");
  at::Tensor x = z.to(impl_->device, at::kFloat);
  x = x * at::rsqrt(x.square().mean(1, true) + 1e-8);  // normalize_2nd_moment
  for (size_t i = 0; i < impl_->mapping_weight.size(); ++i) {
    x = at::matmul(x, impl_->mapping_weight[i].t()).add_(impl_->mapping_bias[i]);
    x = at::leaky_relu(x, kLreluSlope).mul_(kSqrt2);
  }
  at::Tensor ws = x.unsqueeze(1).repeat({1, c.num_ws(), 1});
  if (psi != 1.0) {
    const int rows = cutoff < 0 ? c.num_ws() : std::min(cutoff, c.num_ws());
    at::Tensor head = ws.narrow(1, 0, rows);
    head.copy_(impl_->w_avg.lerp(head, psi));
  }
  return ws;
}

std::vector<at::Tensor> Generator::styles_from_ws(const at::Tensor& ws_in) const {
  at::NoGradGuard no_grad;
  const GeneratorConfig& c = impl_->config;
  const std::string expected = "[N, " + std::to_string(c.num_ws()) + ", " +
                               std::to_string(c.w_dim) + "] or [N, " + std::to_string(c.w_dim) +
                               "]";
  check((ws_in.dim() == 3 && ws_in.size(1) == c.num_ws() && ws_in.size(2) == c.w_dim) ||
            (ws_in.dim() == 2 && ws_in.size(1) == c.w_dim),
        ErrorCode::kShapeMismatch,
        "ws has shape " + c10::str(ws_in.sizes()) + ", expected " + expected);
  at::Tensor ws = ws_in.to(impl_->device, at::kFloat);
  std::vector<at::Tensor> styles;
  styles.reserve(impl_->layers.size());
  for (const LayerParams& L : impl_->layers) {
    at::Tensor w = ws.dim() == 3 ? ws.select(1, L.info.w_index) : ws;
    styles.push_back(at::addmm(L.affine_bias, w, L.affine_weight.t()));
  }
  return styles;
}

at::Tensor Generator::synthesize(const std::vector<at::Tensor>& styles, NoiseMode noise) const {
  SynthesisState state = run_until(styles, impl_->space.num_layers(), noise);
  return state.img.contiguous();  // NCHW whatever the layout inside (a 4² model's image is toRGB's output)
}

at::Tensor Generator::synthesize_ws(const at::Tensor& ws, NoiseMode noise) const {
  return synthesize(styles_from_ws(ws), noise);
}

SynthesisState Generator::run_until(const std::vector<at::Tensor>& styles, int layer_index,
                                    NoiseMode noise) const {
  at::NoGradGuard no_grad;
  const int64_t batch = impl_->space.check_styles(styles);
  check(layer_index >= 0 && layer_index <= impl_->space.num_layers(), ErrorCode::kInvalidArgument,
        "layer index " + std::to_string(layer_index) + " is out of range [0, " +
            std::to_string(impl_->space.num_layers()) + "]");
  SynthesisState state;
  state.layer_index = layer_index;
  state.x = impl_->const_input.unsqueeze(0).expand({batch, -1, -1, -1});
  if (impl_->memory_format == MemoryFormat::kChannelsLast) state.x = state.x.contiguous(impl_->layout());
  impl_->run_layers(state.x, state.img, styles, 0, layer_index, noise);
  return state;
}

at::Tensor Generator::run_from(const SynthesisState& state, const std::vector<at::Tensor>& styles,
                               int layer_index, NoiseMode noise) const {
  at::NoGradGuard no_grad;
  const StyleSpace& space = impl_->space;
  check(layer_index == state.layer_index, ErrorCode::kInvalidArgument,
        "run_from layer " + std::to_string(layer_index) + " but the state stopped before layer " +
            std::to_string(state.layer_index));
  check(styles.size() == space.layers().size(), ErrorCode::kShapeMismatch,
        "expected styles for " + std::to_string(space.layers().size()) + " layers, got " +
            std::to_string(styles.size()));
  const int64_t batch = state.batch();
  for (int i = layer_index; i < space.num_layers(); ++i) {
    const at::Tensor& s = styles[static_cast<size_t>(i)];
    const StyleLayer& layer = space.layers()[static_cast<size_t>(i)];
    check(s.defined() && s.dim() == 2 && s.size(0) == batch && s.size(1) == layer.channels,
          ErrorCode::kShapeMismatch,
          "style of layer " + layer.name + " has shape " +
              (s.defined() ? c10::str(s.sizes()) : std::string("(missing)")) + ", expected [" +
              std::to_string(batch) + ", " + std::to_string(layer.channels) + "]");
  }
  at::Tensor x = state.x, img = state.img;
  impl_->run_layers(x, img, styles, layer_index, space.num_layers(), noise);
  return img.contiguous();
}

int64_t SynthesisState::batch() const { return x.defined() ? x.size(0) : img.size(0); }

SynthesisState SynthesisState::tile(int64_t times) const {
  SynthesisState out;
  out.layer_index = layer_index;
  if (x.defined()) out.x = x.repeat({times, 1, 1, 1});
  if (img.defined()) out.img = img.repeat({times, 1, 1, 1});
  return out;
}

Precision parse_precision(const std::string& name) {
  if (name == "fp32") return Precision::kFp32;
  if (name == "fp16") return Precision::kFp16;
  if (name == "bf16") return Precision::kBf16;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown synthesis precision '" + name + "' (expected fp32, fp16 or bf16)");
}

std::string precision_name(Precision precision) {
  switch (precision) {
    case Precision::kFp16: return "fp16";
    case Precision::kBf16: return "bf16";
    case Precision::kFp32: break;
  }
  return "fp32";
}

namespace {

// One batch of `batch` random style codes (from the generator's own mapping) for the measurements.
std::vector<at::Tensor> timing_styles(const Generator& generator, int64_t batch, int repeats, const char* what) {
  check(batch >= 1 && repeats >= 1, ErrorCode::kInvalidArgument,
        std::string(what) + ": expected batch >= 1 and repeats >= 1, got batch " + std::to_string(batch) +
            ", repeats " + std::to_string(repeats));
  const at::Tensor z = at::randn({batch, generator.config().z_dim},
                                 at::TensorOptions(generator.device()).dtype(at::kFloat));
  return generator.styles_from_ws(generator.mapping(z));
}

// The fastest of `repeats` syntheses of `styles`, each waited for, after a warm-up (cuDNN's
// algorithm search, the allocator's growth).
double best_synthesis_ms(const Generator& g, const std::vector<at::Tensor>& styles, int repeats) {
  g.synthesize(styles).sum().item<double>();
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    g.synthesize(styles).sum().item<double>();  // item() waits for the device
    best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
  }
  return best;
}

}  // namespace

ModulationTiming measure_modulation(const Generator& generator, int64_t batch, int repeats) {
  at::NoGradGuard no_grad;
  const std::vector<at::Tensor> styles = timing_styles(generator, batch, repeats, "measure_modulation");
  ModulationTiming timing;
  // with_modulation prepares a copy of the derived weights: only for the modulation not at hand.
  auto as = [&](Modulation m) { return generator.modulation() == m ? generator : generator.with_modulation(m); };
  timing.non_fused_ms = best_synthesis_ms(as(Modulation::kNonFused), styles, repeats);
  timing.grouped_ms = best_synthesis_ms(as(Modulation::kGrouped), styles, repeats);
  timing.faster = timing.grouped_ms < timing.non_fused_ms ? Modulation::kGrouped : Modulation::kNonFused;
  return timing;
}

MemoryFormatTiming measure_memory_format(const Generator& generator, int64_t batch, int repeats) {
  at::NoGradGuard no_grad;
  check(!generator.device().is_cpu(), ErrorCode::kUnsupported,
        "measure_memory_format: channels_last synthesis needs a CUDA device, the generator is on the CPU");
  const std::vector<at::Tensor> styles = timing_styles(generator, batch, repeats, "measure_memory_format");
  MemoryFormatTiming timing;
  auto as = [&](MemoryFormat f) { return generator.memory_format() == f ? generator : generator.with_memory_format(f); };
  timing.contiguous_ms = best_synthesis_ms(as(MemoryFormat::kContiguous), styles, repeats);
  timing.channels_last_ms = best_synthesis_ms(as(MemoryFormat::kChannelsLast), styles, repeats);
  timing.faster =
      timing.channels_last_ms < timing.contiguous_ms ? MemoryFormat::kChannelsLast : MemoryFormat::kContiguous;
  return timing;
}

MemoryFormat parse_memory_format(const std::string& name) {
  if (name == "contiguous") return MemoryFormat::kContiguous;
  if (name == "channels_last") return MemoryFormat::kChannelsLast;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown memory format '" + name + "' (expected contiguous or channels_last)");
}

std::string memory_format_name(MemoryFormat format) {
  return format == MemoryFormat::kChannelsLast ? "channels_last" : "contiguous";
}

Modulation parse_modulation(const std::string& name) {
  if (name == "non_fused") return Modulation::kNonFused;
  if (name == "grouped") return Modulation::kGrouped;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown modulation '" + name + "' (expected non_fused or grouped)");
}

std::string modulation_name(Modulation modulation) {
  return modulation == Modulation::kGrouped ? "grouped" : "non_fused";
}

NoiseMode parse_noise_mode(const std::string& name) {
  if (name == "const") return NoiseMode::kConst;
  if (name == "none") return NoiseMode::kNone;
  if (name == "random") return NoiseMode::kRandom;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown noise mode '" + name + "' (expected const, none or random)");
}

}  // namespace feu::stylegan2
