// The StyleGAN2 generator (NVlabs stylegan2-ada-pytorch `training/networks.py`
// `Generator`, architecture "skip", unconditional, fp32; fp16/bf16 in the
// highest-resolution blocks on request, see Precision), ported to ATen, with
// the per-layer style space S as a first-class type.
//
// Weights live in HDF5: one float32 dataset per NVlabs `G.state_dict()` key
// under `weights/`, the architecture in root attributes (the layout of
// shared/parity/stylegan2_64.h5; scripts/convert_stylegan2.py writes it).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace feu::stylegan2 {

// The architecture. Always read from the weights file; the defaults are
// FFHQ config-f only for convenience (config_f()).
struct GeneratorConfig {
  int64_t z_dim = 512;                  // input latent z
  int64_t w_dim = 512;                  // intermediate latent w
  int64_t c_dim = 0;                    // conditioning label (only 0 is supported)
  int img_resolution = 1024;            // output side, a power of two >= 4
  int img_channels = 3;                 // output channels
  int mapping_layers = 8;               // FC layers of the mapping network
  double mapping_lr_multiplier = 0.01;  // equalized-lr multiplier of the mapping FCs
  int64_t channel_base = 32768;         // channels at resolution r: min(base / r, max)
  int64_t channel_max = 512;
  double conv_clamp = -1;  // clamp after bias_act; < 0 means none

  // Number of w vectors synthesis consumes: 2·log2(res) − 2.
  int num_ws() const;
  // Feature channels of the block at resolution `res`.
  int64_t channels_at(int res) const;
  // Throws invalid_argument naming the first bad field.
  void validate() const;
  // FFHQ config-f at 1024 (z=w=512, mapping 8, base 32768, max 512).
  static GeneratorConfig config_f();
};

// Every state-dict key (without the "weights/" prefix) and shape a generator
// of this architecture has, in NVlabs' state_dict order.
std::vector<std::pair<std::string, std::vector<int64_t>>> expected_weight_shapes(
    const GeneratorConfig& config);

enum class StyleKind { kConv, kToRgb };

// One layer of S: the output of that layer's affine (toRGB: before its
// 1/sqrt(C) weight gain, StyleCLIP's convention).
struct StyleLayer {
  std::string name;  // "b8.conv0"
  int64_t channels;  // style channels = the layer's input channels
  int w_index;       // the row of ws the affine reads
  StyleKind kind;
  int resolution;  // the block's resolution
  int64_t offset;  // first index of this layer in the flat S vector
};

// The ordered style layers (b4.conv1, b4.torgb, b8.conv0, b8.conv1, b8.torgb,
// ...): 3·log2(res) − 4 layers.
class StyleSpace {
 public:
  StyleSpace() = default;
  explicit StyleSpace(const GeneratorConfig& config);

  const std::vector<StyleLayer>& layers() const { return layers_; }
  int num_layers() const { return static_cast<int>(layers_.size()); }
  int64_t total_channels() const { return total_channels_; }
  int64_t conv_channels() const { return conv_channels_; }
  // Index of a layer by name; not_found error listing the valid names.
  int index_of(const std::string& name) const;
  // Concatenates per-layer styles [N, C_l] into [N, total_channels].
  at::Tensor flatten(const std::vector<at::Tensor>& styles) const;
  // Splits [N, total_channels] into per-layer views [N, C_l].
  std::vector<at::Tensor> split(const at::Tensor& flat) const;
  // Checks a per-layer style list: one [N, C_l] tensor per layer, same N.
  // Returns N. Errors name the first bad layer.
  int64_t check_styles(const std::vector<at::Tensor>& styles) const;

 private:
  std::vector<StyleLayer> layers_;
  int64_t total_channels_ = 0;
  int64_t conv_channels_ = 0;
};

enum class NoiseMode { kConst, kNone, kRandom };
// "const" | "none" | "random"; invalid_argument otherwise.
NoiseMode parse_noise_mode(const std::string& name);

// The type synthesis runs in. fp16 and bf16 follow NVlabs' num_fp16_res: the blocks at resolution
// >= max(2^(log2(img_resolution) + 1 - num_fp16_res), 8) run their convolutions and activations
// in that type (weights and styles pre-scaled as NVlabs' modulated_conv2d does for fp16), with
// their activations clamped to ±conv_clamp, ±256 where the model sets none: the clamp NVlabs
// trains every fp16 model with, keeping fp16 below its 65504 ceiling. The skip image, the
// mapping and the affines stay fp32. fp16 needs CUDA (libtorch has no fp16 CPU convolutions).
enum class Precision { kFp32, kFp16, kBf16 };
// "fp32" | "fp16" | "bf16"; invalid_argument otherwise.
Precision parse_precision(const std::string& name);
std::string precision_name(Precision precision);

// How the fp32 modulated 3×3 convolutions of a batch run (NVlabs' fused_modconv switch).
// kNonFused: the activations scaled by the styles, one convolution with the shared weights for
// the whole batch, its outputs scaled by the demodulation coefficients. kGrouped: each sample's
// weights scaled by its styles, the batch folded into the channels of one grouped convolution
// (groups = N), then the same demodulation. The same sums either way; which is faster depends
// on the device, the resolution and the batch, so it is chosen by measurement
// (measure_modulation). Reduced-precision blocks and toRGB stay non-fused, as in NVlabs.
enum class Modulation { kNonFused, kGrouped };
// "non_fused" | "grouped"; invalid_argument otherwise.
Modulation parse_modulation(const std::string& name);
std::string modulation_name(Modulation modulation);

// Synthesis of one batch of `batch` random style codes (from the generator's own mapping), timed
// with each modulation on the generator's device: the fastest of `repeats` runs after a warm-up,
// each run waited for. `faster` is the modulation with the lower time. Errors: invalid_argument
// for batch or repeats < 1.
struct ModulationTiming {
  double non_fused_ms = 0;
  double grouped_ms = 0;
  Modulation faster = Modulation::kNonFused;
};
class Generator;
ModulationTiming measure_modulation(const Generator& generator, int64_t batch, int repeats = 3);

// The memory layout of synthesis's activations and convolution weights on CUDA: kContiguous
// (NCHW, NVlabs') or kChannelsLast (NHWC, which cuDNN's tensor-core convolutions read natively,
// above all in fp16). The same sums either way; which is faster depends on the GPU, the precision
// and the batch, so it is chosen by measurement (measure_memory_format). CUDA only: the CPU's
// convolution forms read NCHW.
enum class MemoryFormat { kContiguous, kChannelsLast };
// "contiguous" | "channels_last"; invalid_argument otherwise.
MemoryFormat parse_memory_format(const std::string& name);
std::string memory_format_name(MemoryFormat format);

// Synthesis of one batch timed in each memory format, as measure_modulation does (the generator's
// modulation and precision kept). Errors: invalid_argument for batch or repeats < 1; unsupported
// on a CPU generator.
struct MemoryFormatTiming {
  double contiguous_ms = 0;
  double channels_last_ms = 0;
  MemoryFormat faster = MemoryFormat::kContiguous;
};
MemoryFormatTiming measure_memory_format(const Generator& generator, int64_t batch, int repeats = 3);

// How one style layer runs: the type of its activations and the clamp after its bias and
// activation (< 0: none).
struct LayerPrecision {
  at::ScalarType dtype = at::kFloat;
  double clamp = -1;
};

// Synthesis paused just before style layer `layer_index` consumes its style.
// Tensors have the batch first; a caller may tile the batch (see tile()) to
// finish many variants (e.g. one per perturbed channel) from one prefix.
struct SynthesisState {
  int layer_index = 0;  // the style layer that runs next
  at::Tensor x;         // features entering that layer: [N, C_in, H, W]
  at::Tensor img;       // skip image of the previous block [N, C_img, H', W']
                        // (undefined in b4)

  int64_t batch() const;
  // The same state repeated `times` over the batch: sample k·N + b of the
  // result is sample b of this state (like at::Tensor::repeat).
  SynthesisState tile(int64_t times) const;
};

class Generator {
 public:
  // Loads weights + architecture from an HDF5 file onto `device`. Every
  // expected key and shape is checked; the first mismatch is named.
  static Generator load(const std::string& h5_path, at::Device device = at::kCPU);
  // Random weights with NVlabs' initialization (weights ~ N(0,1) (mapping:
  // / lr_multiplier), affine biases 1, other biases 0, noise_strength 0,
  // noise_const ~ N(0,1), w_avg 0). Deterministic for a seed.
  static Generator random(const GeneratorConfig& config, uint64_t seed,
                          at::Device device = at::kCPU);
  // Writes the HDF5 layout atomically; sets fingerprint().
  void save(const std::string& h5_path) const;

  const GeneratorConfig& config() const;
  const StyleSpace& style_space() const;
  at::Device device() const;
  // This generator (the same weights) synthesizing in `precision` over the `num_fp16_res`
  // highest-resolution blocks (NVlabs trains with 4); fp32 ignores num_fp16_res. fp16 on a CPU
  // generator and a negative num_fp16_res are typed errors.
  Generator with_precision(Precision precision, int num_fp16_res = 4) const;
  Precision precision() const;
  // This generator (the same weights) running its fp32 modulated convolutions as `modulation`.
  // On the CPU the default (kNonFused) has its own faster forms; kGrouped runs there too, for
  // tests.
  Generator with_modulation(Modulation modulation) const;
  Modulation modulation() const;
  // This generator (the same weights) with its activations and convolution weights in `format`.
  // kChannelsLast on a CPU generator is an unsupported error.
  Generator with_memory_format(MemoryFormat format) const;
  MemoryFormat memory_format() const;
  int num_fp16_res() const;
  // How style layer `layer_index` runs under this generator's precision.
  LayerPrecision layer_precision(int layer_index) const;
  // sha256 of the weights file this was loaded from or last saved to ("" for
  // an unsaved random generator).
  const std::string& fingerprint() const;
  // A weight by its state-dict key (e.g. "mapping.w_avg"); not_found otherwise.
  const at::Tensor& weight(const std::string& key) const;
  // Replaces a weight (same shape) — tests use it to make noise/biases nonzero.
  void set_weight(const std::string& key, const at::Tensor& value);

  // z [N, z_dim] -> ws [N, num_ws, w_dim]; truncation toward w_avg with `psi`
  // on rows < cutoff (cutoff < 0: all rows).
  at::Tensor mapping(const at::Tensor& z, double psi = 1.0, int cutoff = -1) const;
  // ws [N, num_ws, w_dim] (W+) or [N, w_dim] (W, broadcast) -> per layer [N,
  // C].
  std::vector<at::Tensor> styles_from_ws(const at::Tensor& ws) const;
  // Styles (S) -> raw image [N, img_channels, R, R] (not clamped, ~[-1, 1]).
  at::Tensor synthesize(const std::vector<at::Tensor>& styles,
                        NoiseMode noise = NoiseMode::kConst) const;
  at::Tensor synthesize_ws(const at::Tensor& ws, NoiseMode noise = NoiseMode::kConst) const;

  // Partial synthesis (Δi precompute shares everything below a perturbed
  // layer). run_until runs layers [0, layer_index) (layer_index may equal
  // num_layers: the state then holds the finished image in `img`).
  // run_from finishes from a state: it reads styles[layer_index..] only (the
  // earlier entries may be undefined) whose batch must equal state.batch().
  // run_from(run_until(s, i), s, i) == synthesize(s) exactly.
  SynthesisState run_until(const std::vector<at::Tensor>& styles, int layer_index,
                           NoiseMode noise = NoiseMode::kConst) const;
  at::Tensor run_from(const SynthesisState& state, const std::vector<at::Tensor>& styles,
                      int layer_index, NoiseMode noise = NoiseMode::kConst) const;

  struct Impl;

 private:
  explicit Generator(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<Impl> impl_;
};

}  // namespace feu::stylegan2
