// CLIP encoders against the reference (parity/clip_small.pt -> clip_small.h5),
// checkpoint formats and errors.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <functional>
#include <limits>
#include <iostream>

#include "clip/attention.h"
#include "clip/layer_norm.h"
#include "clip/model.h"
#include "clip/quick_gelu.h"
#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "tensor/tensor_h5.h"
#include "test_support.h"

namespace feu::clip {
namespace {

// max |a-b| / max |b|: "within 1e-4 relative" for a whole embedding matrix.
double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

void expect_error(const std::function<void()>& fn, ErrorCode code, const std::string& needle) {
  test::expect_error(fn, code, {needle});
}

TEST(ClipModel, MatchesReferenceFromTorchScriptArchive) {
  FEU_SHARED_FILE_OR_SKIP(archive, "parity/clip_small.pt");
  FEU_SHARED_FILE_OR_SKIP(expected_path, "parity/clip_small.h5");
  ClipModel model = ClipModel::load(archive, at::kCPU);
  const ClipConfig& c = model.config();
  EXPECT_EQ(c.embed_dim, 32);
  EXPECT_EQ(c.image_resolution, 32);
  EXPECT_EQ(c.vision_patch_size, 8);
  EXPECT_EQ(c.vision_width, 128);
  EXPECT_EQ(c.vision_layers, 2);
  EXPECT_EQ(c.text_width, 128);
  EXPECT_EQ(c.text_layers, 2);
  EXPECT_EQ(c.context_length, 77);
  EXPECT_EQ(c.vocab_size, 49408);
  EXPECT_EQ(model.fingerprint(), sha256_file(archive));
  // fp16 weights became fp32 on CPU.
  EXPECT_EQ(model.parameters().at("visual.conv1.weight").scalar_type(), at::kFloat);

  h5::File expected = h5::File::open_read(expected_path);
  at::Tensor image = model.encode_image(read_tensor(expected, "pixels"));
  at::Tensor text = model.encode_text(read_tensor_int64(expected, "tokens"));
  at::Tensor image_ref = read_tensor(expected, "image_embeds"), text_ref = read_tensor(expected, "text_embeds");
  ASSERT_EQ(image.sizes(), image_ref.sizes());
  ASSERT_EQ(text.sizes(), text_ref.sizes());
  EXPECT_LT(relative_error(image, image_ref), 1e-4);
  EXPECT_LT(relative_error(text, text_ref), 1e-4);
  std::cout << "  image rel err " << relative_error(image, image_ref) << ", text rel err "
            << relative_error(text, text_ref) << "\n";

  // Row by row equals the batch (batching and the shortened causal pass are exact).
  at::Tensor tokens = read_tensor_int64(expected, "tokens");
  for (int64_t i = 0; i < tokens.size(0); ++i)
    EXPECT_LT(relative_error(model.encode_text(tokens.narrow(0, i, 1)), text_ref.narrow(0, i, 1)), 1e-4);
}

TEST(ClipModel, Hdf5RoundTripKeepsTheEmbeddings) {
  FEU_SHARED_FILE_OR_SKIP(archive, "parity/clip_small.pt");
  FEU_SHARED_FILE_OR_SKIP(expected_path, "parity/clip_small.h5");
  test::TempDir dir;
  ClipModel model = ClipModel::load(archive, at::kCPU);
  model.save_h5(dir.file("clip.h5"));
  EXPECT_EQ(model.fingerprint(), sha256_file(dir.file("clip.h5")));
  ClipModel again = ClipModel::load(dir.file("clip.h5"), at::kCPU);
  h5::File expected = h5::File::open_read(expected_path);
  EXPECT_LT(relative_error(again.encode_image(read_tensor(expected, "pixels")), read_tensor(expected, "image_embeds")), 1e-4);
  EXPECT_LT(relative_error(again.encode_text(read_tensor_int64(expected, "tokens")), read_tensor(expected, "text_embeds")), 1e-4);
  EXPECT_NEAR(again.logit_scale(), model.logit_scale(), 1e-6);
}

TEST(ClipModel, RandomModelShapesAndDeterminism) {
  ClipConfig config = ClipConfig::small(/*vocab_size=*/1000);
  ClipModel a = ClipModel::random(config, 7, at::kCPU), b = ClipModel::random(config, 7, at::kCPU);
  ClipModel other = ClipModel::random(config, 8, at::kCPU);
  at::Tensor pixels = at::randn({3, 3, 32, 32});
  at::Tensor tokens = at::zeros({2, 77}, at::kLong);
  tokens[0][0] = 998, tokens[0][1] = 5, tokens[0][2] = 999;
  tokens[1][0] = 998, tokens[1][1] = 999;
  at::Tensor ia = a.encode_image(pixels), ta = a.encode_text(tokens);
  EXPECT_EQ(ia.sizes(), at::IntArrayRef({3, 32}));
  EXPECT_EQ(ta.sizes(), at::IntArrayRef({2, 32}));
  EXPECT_TRUE(at::equal(ia, b.encode_image(pixels)));
  EXPECT_FALSE(at::allclose(ia, other.encode_image(pixels)));
  EXPECT_FALSE(at::allclose(ta[0], ta[1]));
  EXPECT_NEAR(a.logit_scale(), 1.0 / 0.07, 1e-4);
  // Tokens after the end-of-text position do not matter (causal mask + pooling).
  at::Tensor padded = tokens.clone();
  padded[1][5] = 17;
  EXPECT_TRUE(at::allclose(a.encode_text(padded)[1], ta[1], 1e-5, 1e-6));
  // Inferred config of a saved random model.
  test::TempDir dir;
  a.save_h5(dir.file("small.h5"));
  ClipModel loaded = ClipModel::load(dir.file("small.h5"), at::kCPU);
  EXPECT_EQ(loaded.config().vocab_size, 1000);
  EXPECT_EQ(loaded.config().to_json(), config.to_json());
  EXPECT_TRUE(at::allclose(loaded.encode_image(pixels), ia, 1e-5, 1e-6));
}

// The CPU attention hands each thread a contiguous run of (image, head)
// pairs, which may start and end inside an image; the last block computes
// only the pooled rows. Neither may make an embedding depend on the batch
// around it or on the thread count. Three heads, so that runs split images.
TEST(ClipModel, EmbeddingsDoNotDependOnTheBatchOrTheThreads) {
  ClipConfig config = ClipConfig::small(/*vocab_size=*/1000);
  config.vision_width = config.text_width = 192;
  config.vision_layers = config.text_layers = 3;
  const ClipModel model = ClipModel::random(config, 3, at::kCPU);
  const at::Tensor pixels = at::randn({3, 3, 32, 32});
  at::Tensor tokens = at::zeros({3, 77}, at::kLong);
  const std::vector<std::vector<int64_t>> prompts = {{998, 5, 17, 999}, {998, 999}, {998, 40, 41, 42, 43, 44, 999}};
  for (int64_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < prompts[i].size(); ++j) tokens[i][static_cast<int64_t>(j)] = prompts[i][j];
  const int threads_before = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor images = model.encode_image(pixels), texts = model.encode_text(tokens);
  for (int threads : {2, 4, 5}) {
    at::set_num_threads(threads);
    EXPECT_LT(relative_error(model.encode_image(pixels), images), 1e-6) << threads << " threads";
    EXPECT_LT(relative_error(model.encode_text(tokens), texts), 1e-6) << threads << " threads";
    for (int64_t i = 0; i < 3; ++i) {
      EXPECT_LT(relative_error(model.encode_image(pixels.narrow(0, i, 1)), images.narrow(0, i, 1)), 1e-5) << i;
      EXPECT_LT(relative_error(model.encode_text(tokens.narrow(0, i, 1)), texts.narrow(0, i, 1)), 1e-5) << i;
    }
  }
  at::set_num_threads(threads_before);
}

TEST(ClipQuickGelu, MatchesTheFormulaInEveryLaneAndRejectsWhatItCannotTake) {
  // 37 rows x 77 columns: neither the threads' 16-row grain nor the 8 lanes divide them.
  at::Tensor h = at::randn({37, 77}) * 4;
  h[0][0] = 0.0f, h[0][1] = -100.0f, h[0][2] = 100.0f, h[0][3] = -30.0f, h[0][4] = 1e-30f;
  const at::Tensor bias = at::randn({77});
  bias[0] = bias[1] = bias[2] = bias[3] = bias[4] = 0.0f;
  const at::Tensor x = (h + bias).to(at::kDouble);
  // The reference's float32 ops round 1.702·x to float32, as the kernel does; where exp's argument is
  // 16 that rounding alone moves the result by 1e-6, so the expectation rounds it too.
  const at::Tensor expected = x * at::sigmoid(((h + bias) * 1.702).to(at::kDouble));
  at::Tensor got = h.clone();
  add_bias_quick_gelu_(got, bias);
  const at::Tensor error = (got.to(at::kDouble) - expected).abs();
  const at::Tensor relative = error / (expected.abs() + 1e-38);
  const int64_t worst = relative.argmax().item<int64_t>();
  EXPECT_LT(relative.max().item<double>(), 1e-6) << "at x = " << x.view(-1)[worst].item<double>();
  EXPECT_EQ(got[0][0].item<float>(), 0.0f);
  EXPECT_EQ(got[0][1].item<float>(), 0.0f);  // exp overflows to infinity: -100 / inf
  EXPECT_EQ(got[0][2].item<float>(), 100.0f);

  at::Tensor transposed = at::randn({77, 37}).t();
  expect_error([&] { add_bias_quick_gelu_(transposed, bias); }, ErrorCode::kInvalidArgument, "contiguous CPU float32");
  at::Tensor wide = at::randn({4, 78});
  expect_error([&] { add_bias_quick_gelu_(wide, bias); }, ErrorCode::kInvalidArgument, "bias [width]");
  at::Tensor doubles = at::randn({4, 77}, at::kDouble);
  expect_error([&] { add_bias_quick_gelu_(doubles, bias); }, ErrorCode::kInvalidArgument, "float32");
}

// nn.MultiheadAttention's core in float64 ATen: softmax(q_h·k_hᵀ/√w + mask)·v_h.
// in_bias [3D] is added to q, k and v first.
at::Tensor reference_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                               const at::Tensor& in_bias, const at::Tensor& mask) {
  const int64_t n = q.size(0), lq = q.size(1), d = q.size(2), width = d / heads;
  auto split = [&](const at::Tensor& t, int64_t part) {
    return (t.to(at::kDouble) + in_bias.narrow(0, part * d, d).to(at::kDouble))
        .reshape({n, t.size(1), heads, width})
        .transpose(1, 2);
  };
  at::Tensor scores = at::matmul(split(q, 0) / std::sqrt(static_cast<double>(width)), split(k, 1).transpose(-2, -1));
  if (mask.defined()) scores = scores + (mask.dim() == 3 ? mask.unsqueeze(1) : mask).to(at::kDouble);
  return at::matmul(at::softmax(scores, -1), split(v, 2)).transpose(1, 2).reshape({n, lq, d});
}

TEST(ClipAttention, MatchesTheReferenceForEveryShapeMaskAndLayout) {
  struct Case {
    int64_t n, lq, l, heads, width;
    const char* mask;  // "none", "causal" [Lq, L], "rows" or "far" [N, Lq, L]
  };
  // 50 keys: CLIP's image tokens; 77: the text context; 1 and 7: fewer than the 8 lanes;
  // 13 queries: neither the 6-row blocks nor the lanes divide them; a width of 8: one lane group;
  // "far": keys 0 to 180 below the others, past the exp's underflow to 0 at -87.
  const Case cases[] = {{3, 50, 50, 3, 64, "none"}, {2, 77, 77, 2, 64, "causal"}, {4, 1, 77, 2, 64, "rows"},
                        {2, 1, 1, 1, 64, "none"},   {2, 7, 7, 4, 8, "causal"},    {3, 13, 29, 2, 24, "rows"},
                        {2, 50, 50, 3, 64, "far"}};
  for (const Case& c : cases) {
    SCOPED_TRACE(std::to_string(c.n) + " images, " + std::to_string(c.lq) + " queries, " + std::to_string(c.l) +
                 " keys, " + std::to_string(c.heads) + " heads of " + std::to_string(c.width) + ", mask " + c.mask);
    const int64_t d = c.heads * c.width;
    // q, k and v as views into one packed projection, as the model has them.
    const at::Tensor packed = at::randn({c.n, c.l, 3 * d}) * 2;
    const at::Tensor q = packed.narrow(1, c.l - c.lq, c.lq).narrow(2, 0, d), k = packed.narrow(2, d, d),
                     v = packed.narrow(2, 2 * d, d);
    at::Tensor mask;
    const double minus_infinity = -std::numeric_limits<double>::infinity();
    if (std::string(c.mask) == "causal")
      mask = at::full({c.lq, c.l}, minus_infinity, at::kFloat).triu_(1 + c.l - c.lq);
    if (std::string(c.mask) == "rows") {
      mask = at::randn({c.n, c.lq, c.l});
      mask.select(2, 0).fill_(minus_infinity);  // the first key of every row masked out
    }
    if (std::string(c.mask) == "far") mask = at::randn({c.n, c.lq, c.l}) - at::arange(c.l).remainder(5) * 45;
    const bool hides_keys = mask.defined() && std::string(c.mask) != "far";
    const at::Tensor in_bias = at::randn({3 * d});
    const at::Tensor got = multi_head_attention_cpu(q, k, v, c.heads, in_bias, mask);
    ASSERT_EQ(got.sizes(), at::IntArrayRef({c.n, c.lq, d}));
    const at::Tensor expected = reference_attention(q, k, v, c.heads, in_bias, mask);
    EXPECT_LT((got.to(at::kDouble) - expected).abs().max().item<double>(), 2e-6 * expected.abs().max().item<double>());
    // Without a bias: as with a zero one.
    const at::Tensor unbiased = multi_head_attention_cpu(q, k, v, c.heads, at::Tensor(), mask);
    EXPECT_TRUE(at::equal(unbiased, multi_head_attention_cpu(q, k, v, c.heads, at::zeros({3 * d}), mask)));
    EXPECT_LT((unbiased.to(at::kDouble) - reference_attention(q, k, v, c.heads, at::zeros({3 * d}), mask))
                  .abs()
                  .max()
                  .item<double>(),
              2e-6 * expected.abs().max().item<double>());
    if (hides_keys) {
      // A masked key weighs exactly nothing: its value does not reach the rows it is hidden from.
      const bool rows = std::string(c.mask) == "rows";
      const int64_t hidden = rows ? 0 : c.l - 1;  // causal: the last key, hidden from the first query
      at::Tensor other = packed.clone();
      other.narrow(2, 2 * d, d).select(1, hidden).fill_(1e30f);
      const at::Tensor moved = multi_head_attention_cpu(other.narrow(1, c.l - c.lq, c.lq).narrow(2, 0, d),
                                                        other.narrow(2, d, d), other.narrow(2, 2 * d, d), c.heads,
                                                        in_bias, mask);
      const int64_t blind = rows ? c.lq : 1;
      EXPECT_TRUE(at::equal(moved.narrow(1, 0, blind), got.narrow(1, 0, blind)));
      if (!rows) {
        EXPECT_FALSE(at::equal(moved, got));  // while the last query, which sees it, changes
      }
    }
  }
}

TEST(ClipAttention, RejectsWhatItCannotTake) {
  const at::Tensor x = at::randn({2, 5, 64});
  expect_error([&] { multi_head_attention_cpu(x.to(at::kDouble), x, x, 1, at::Tensor(), at::Tensor()); },
               ErrorCode::kInvalidArgument, "CPU float32 q, k and v");
  expect_error([&] { multi_head_attention_cpu(x, x.narrow(2, 0, 32), x, 1, at::Tensor(), at::Tensor()); },
               ErrorCode::kShapeMismatch, "q [N, Lq, D] and k, v [N, L, D]");
  expect_error([&] { multi_head_attention_cpu(x, x, x, 3, at::Tensor(), at::Tensor()); }, ErrorCode::kShapeMismatch,
               "multiples of 8");
  expect_error([&] { multi_head_attention_cpu(x, x, x, 16, at::Tensor(), at::Tensor()); }, ErrorCode::kShapeMismatch,
               "multiples of 8");
  expect_error([&] { multi_head_attention_cpu(x, x, x, 1, at::Tensor(), at::zeros({5, 4})); },
               ErrorCode::kShapeMismatch, "a mask [5, 5] or [2, 5, 5]");
  expect_error([&] { multi_head_attention_cpu(x, x, x, 1, at::Tensor(), at::zeros({5, 5}, at::kDouble)); },
               ErrorCode::kInvalidArgument, "CPU float32 mask");
  expect_error([&] { multi_head_attention_cpu(x, x, x, 1, at::zeros({64}), at::Tensor()); },
               ErrorCode::kShapeMismatch, "expected in_bias [192] (q's, k's and v's)");
  expect_error([&] { multi_head_attention_cpu(x, x, x, 1, at::zeros({192}, at::kDouble), at::Tensor()); },
               ErrorCode::kInvalidArgument, "CPU float32 in_bias");
}

TEST(ClipLayerNorm, MatchesTheFormulaAndStaysExactFarFromZero) {
  // 37 rows of 77: neither the threads' grain nor the 8 lanes divide them. Rows around 1e4 with
  // unit spread: E[x²] − mean² would lose the variance to cancellation in float32.
  const at::Tensor x = at::randn({37, 77}) + at::randn({37, 1}) * 1e4;
  const at::Tensor weight = 1 + at::randn({77}) * 0.1, bias = at::randn({77}) * 0.1;
  const at::Tensor expected = at::layer_norm(x.to(at::kDouble), {77}, weight.to(at::kDouble),
                                             bias.to(at::kDouble), 1e-5);
  const at::Tensor got = layer_norm(x, weight, bias);
  EXPECT_EQ(got.scalar_type(), at::kFloat);
  EXPECT_LT((got.to(at::kDouble) - expected).abs().max().item<double>(), 1e-5);
  std::cout << "  far from zero: feu " << (got.to(at::kDouble) - expected).abs().max().item<double>()
            << ", ATen's float32 kernel "
            << (at::layer_norm(x, {77}, weight, bias, 1e-5).to(at::kDouble) - expected).abs().max().item<double>()
            << " from float64\n";
  // [N, L, D] and a non-contiguous input; the result equals ATen's float32 kernel closely.
  const at::Tensor tokens = at::randn({3, 50, 96}).transpose(0, 1);
  const at::Tensor w = at::randn({96}), b = at::randn({96});
  const at::Tensor aten = at::layer_norm(tokens, {96}, w, b, 1e-5);
  EXPECT_LT((layer_norm(tokens, w, b) - aten).abs().max().item<double>(), 1e-5);
  // Other dtypes go through ATen in float32 and come back in theirs.
  EXPECT_EQ(layer_norm(tokens.to(at::kDouble), w, b).scalar_type(), at::kDouble);
  expect_error([&] { layer_norm(tokens, at::randn({95}), b); }, ErrorCode::kShapeMismatch,
               "expected x [..., D], weight [D] and bias [D]");
}

TEST(ClipLayerNorm, AddsAResidualBiasInPlaceFirst) {
  const at::Tensor weight = at::randn({96}), bias = at::randn({96}), residual_bias = at::randn({96});
  const at::Tensor x = at::randn({3, 50, 96});
  at::Tensor stream = x.clone();
  const at::Tensor got = add_bias_layer_norm_(stream, residual_bias, weight, bias);
  EXPECT_TRUE(at::equal(stream, x + residual_bias));
  EXPECT_LT((got - layer_norm(x + residual_bias, weight, bias)).abs().max().item<double>(), 1e-6);
  // Elsewhere (here float64) through ATen, with the same effect.
  at::Tensor doubles = x.to(at::kDouble);
  const at::Tensor got_doubles = add_bias_layer_norm_(doubles, residual_bias.to(at::kDouble), weight, bias);
  EXPECT_TRUE(at::equal(doubles, x.to(at::kDouble) + residual_bias.to(at::kDouble)));
  EXPECT_LT((got_doubles - got.to(at::kDouble)).abs().max().item<double>(), 1e-5);
  at::Tensor strided = x.transpose(0, 1);
  expect_error([&] { add_bias_layer_norm_(strided, residual_bias, weight, bias); }, ErrorCode::kShapeMismatch,
               "contiguous x [..., D] and residual_bias [96]");
  expect_error([&] { add_bias_layer_norm_(stream, residual_bias.narrow(0, 0, 95), weight, bias); },
               ErrorCode::kShapeMismatch, "residual_bias [96] of its device and dtype");
}

TEST(ClipModel, BadInputs) {
  ClipModel model = ClipModel::random(ClipConfig::small(500), 1, at::kCPU);
  expect_error([&] { model.encode_image(at::zeros({1, 3, 224, 224})); }, ErrorCode::kShapeMismatch, "[N, 3, 32, 32]");
  expect_error([&] { model.encode_text(at::zeros({1, 10}, at::kLong)); }, ErrorCode::kShapeMismatch, "77");
  at::Tensor big = at::zeros({1, 77}, at::kLong);
  big[0][1] = 600;
  expect_error([&] { model.encode_text(big); }, ErrorCode::kInvalidArgument, "0..499");
  expect_error([&] { ClipModel::load("/nonexistent/clip.pt", at::kCPU); }, ErrorCode::kNotFound, "/nonexistent/clip.pt");
  expect_error([&] { ClipModel::load("/nonexistent/clip.pt", at::kCPU, /*fp16=*/true); }, ErrorCode::kNotFound, "clip.pt");

  test::TempDir dir;
  write_file_atomic(dir.file("garbage.pt"), std::string("definitely not a checkpoint"));
  expect_error([&] { ClipModel::load(dir.file("garbage.pt"), at::kCPU); }, ErrorCode::kCorruptFile, "garbage.pt");
  // A zip that is not a TorchScript archive (truncated real header).
  write_file_atomic(dir.file("broken.pt"), std::string("PK\x03\x04 truncated zip", 18));
  expect_error([&] { ClipModel::load(dir.file("broken.pt"), at::kCPU); }, ErrorCode::kCorruptFile, "broken.pt");

  // An HDF5 checkpoint lacking one parameter names it.
  model.save_h5(dir.file("full.h5"));
  {
    h5::File in = h5::File::open_read(dir.file("full.h5"));
    h5::File out = h5::File::create(dir.file("missing.h5"));
    for (const std::string& name : in.list("weights"))
      if (name != "visual.ln_post.weight") write_tensor(out, "weights/" + name, read_tensor(in, "weights/" + name));
  }
  expect_error([&] { ClipModel::load(dir.file("missing.h5"), at::kCPU); }, ErrorCode::kNotFound, "visual.ln_post.weight");
  // A wrong shape is named too.
  {
    h5::File out = h5::File::open_rw(dir.file("full.h5"));
    write_tensor(out, "weights/ln_final.bias", at::zeros({7}));
  }
  expect_error([&] { ClipModel::load(dir.file("full.h5"), at::kCPU); }, ErrorCode::kShapeMismatch, "ln_final.bias");
  // fp16 is a CUDA option.
  model.save_h5(dir.file("ok.h5"));
  expect_error([&] { ClipModel::load(dir.file("ok.h5"), at::kCPU, /*fp16=*/true); }, ErrorCode::kUnsupported, "CUDA");
}

// torch::jit::load ran a TorchScript class's __setstate__ from the archive (issue 10).
TEST(ClipModel, LoadingAnArchiveNeverRunsItsCode) {
  test::TempDir dir;
  const std::string code =
      "class Evil(Module):\n"
      "  __parameters__ = []\n"
      "  __buffers__ = []\n"
      "  training : bool\n"
      "  def __getstate__(self: __torch__.evil.Evil) -> Tuple[bool]:\n"
      "    return (self.training,)\n"
      "  def __setstate__(self: __torch__.evil.Evil,\n"
      "    state: Tuple[bool]) -> None:\n"
      "    print(\"FEU-SETSTATE-RAN\")\n"
      "    self.training = (state)[0]\n"
      "    return None\n";
  // GLOBAL __torch__.evil.Evil, NEWOBJ, BUILD with the state (True,).
  const std::string pickle = "\x80\x02" "c__torch__.evil\nEvil\n" ")\x81" "\x88\x85" "b.";
  test::write_zip(dir.file("evil.pt"), {{"archive/data.pkl", pickle},
                                        {"archive/code/__torch__/evil.py", code},
                                        {"archive/constants.pkl", "\x80\x02)."},
                                        {"archive/version", "3\n"}});
  testing::internal::CaptureStdout();
  expect_error([&] { ClipModel::load(dir.file("evil.pt"), at::kCPU); }, ErrorCode::kNotFound,
               "visual.proj");
  EXPECT_EQ(testing::internal::GetCapturedStdout().find("FEU-SETSTATE-RAN"), std::string::npos);
}

TEST(ClipModel, TruncatedArchiveIsACorruptFileError) {
  FEU_SHARED_FILE_OR_SKIP(archive, "parity/clip_small.pt");
  test::TempDir dir;
  std::vector<uint8_t> bytes = read_file(archive);
  write_file_atomic(dir.file("cut.pt"), bytes.data(), bytes.size() / 2);
  expect_error([&] { ClipModel::load(dir.file("cut.pt"), at::kCPU); }, ErrorCode::kCorruptFile, "cut.pt");
}

}  // namespace
}  // namespace feu::clip
