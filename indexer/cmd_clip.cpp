// feu-indexer commands of the CLIP module: tokenize, encode-text,
// encode-image, init-clip, init-vocab.
#include <ATen/ATen.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "clip/model.h"
#include "clip/preprocess.h"
#include "clip/tokenizer.h"
#include "commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "image/codec.h"
#include "tensor/tensor_h5.h"

namespace feu::indexer {
namespace {

// Lines of a UTF-8 text file ("\n"-separated; a final newline ends the last line).
std::vector<std::string> read_lines(const std::string& path) {
  std::vector<uint8_t> bytes = read_file(path);
  std::vector<std::string> lines;
  std::string current;
  for (uint8_t b : bytes) {
    if (b == '\n') {
      lines.push_back(current);
      current.clear();
    } else {
      current.push_back(static_cast<char>(b));
    }
  }
  if (!current.empty()) lines.push_back(current);
  return lines;
}

// Writes named tensors to an HDF5 file that appears complete or not at all.
void write_h5_atomic(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& datasets) {
  AtomicFile out(path);
  {
    h5::File file = h5::File::create(out.temp_path());
    for (const auto& [name, tensor] : datasets) write_tensor(file, name, tensor);
    file.close();
  }
  out.commit();
}

// Runs `encode` over row batches of `input` and concatenates the results on the CPU.
at::Tensor batched(const at::Tensor& input, int64_t batch, const std::function<at::Tensor(const at::Tensor&)>& encode) {
  check(batch > 0, ErrorCode::kInvalidArgument, "--batch must be positive");
  std::vector<at::Tensor> parts;
  for (int64_t begin = 0; begin < input.size(0); begin += batch)
    parts.push_back(encode(input.narrow(0, begin, std::min(batch, input.size(0) - begin))).to(at::kCPU));
  return parts.empty() ? at::empty({0}) : at::cat(parts, 0);
}

struct ModelOptions {
  std::string clip;
  std::string device = "auto";
  bool fp16 = false;
  int64_t batch = 32;
};

void add_model_options(CLI::App* cmd, ModelOptions* opt) {
  cmd->add_option("--clip", opt->clip, "CLIP weights: OpenAI TorchScript archive (.pt) or feu HDF5 (.h5)")->required();
  cmd->add_option("--device", opt->device, "cpu | cuda | cuda:N | auto")->capture_default_str();
  cmd->add_flag("--fp16", opt->fp16, "fp16 weights and activations (CUDA only)");
  cmd->add_option("--batch", opt->batch, "rows per forward pass")->capture_default_str();
}

clip::ClipModel load_model(const ModelOptions& opt) {
  return clip::ClipModel::load(opt.clip, resolve_device(opt.device), opt.fp16);
}

struct EncodeTextOptions {
  ModelOptions model;
  std::string vocab;
  std::vector<std::string> texts;
  std::string text_file;
  std::string tokens;
  std::string out;
  bool truncate = false;
};

void encode_text(const EncodeTextOptions& opt) {
  const int sources = int(!opt.texts.empty()) + int(!opt.text_file.empty()) + int(!opt.tokens.empty());
  check(sources == 1, ErrorCode::kInvalidArgument, "encode-text: give exactly one of --text, --text-file or --tokens");
  at::Tensor tokens;
  if (!opt.tokens.empty()) {
    check(opt.vocab.empty(), ErrorCode::kInvalidArgument, "encode-text: --vocab is not used with --tokens");
    h5::File in = h5::File::open_read(opt.tokens);
    check(in.has("tokens"), ErrorCode::kNotFound, opt.tokens + " has no dataset 'tokens' [M, 77] int64");
    tokens = read_tensor_int64(in, "tokens");
  } else {
    check(!opt.vocab.empty(), ErrorCode::kInvalidArgument, "encode-text: --vocab is required with --text/--text-file");
    clip::Tokenizer tokenizer = clip::Tokenizer::load(opt.vocab);
    std::vector<std::string> texts = opt.texts.empty() ? read_lines(opt.text_file) : opt.texts;
    check(!texts.empty(), ErrorCode::kInvalidArgument, "encode-text: no text to encode in " + opt.text_file);
    tokens = at::empty({static_cast<int64_t>(texts.size()), clip::Tokenizer::kContextLength}, at::kLong);
    for (size_t i = 0; i < texts.size(); ++i) {
      std::vector<int64_t> row = tokenizer.tokenize_row(texts[i], opt.truncate);
      std::copy(row.begin(), row.end(), tokens[static_cast<int64_t>(i)].data_ptr<int64_t>());
    }
  }
  clip::ClipModel model = load_model(opt.model);
  at::Tensor embeds = batched(tokens, opt.model.batch, [&](const at::Tensor& t) { return model.encode_text(t); });
  write_h5_atomic(opt.out, {{"tokens", tokens}, {"text_embeds", embeds}});
  std::cout << "wrote " << opt.out << ": text_embeds [" << embeds.size(0) << ", " << embeds.size(1) << "]" << std::endl;
}

struct EncodeImageOptions {
  ModelOptions model;
  std::string pixels;
  std::vector<std::string> images;
  std::string out;
};

void encode_image(const EncodeImageOptions& opt) {
  check(opt.pixels.empty() != opt.images.empty(), ErrorCode::kInvalidArgument,
        "encode-image: give exactly one of --pixels or --images");
  clip::ClipModel model = load_model(opt.model);
  std::vector<std::pair<std::string, at::Tensor>> datasets;
  at::Tensor pixels;
  if (!opt.pixels.empty()) {
    h5::File in = h5::File::open_read(opt.pixels);
    check(in.has("pixels"), ErrorCode::kNotFound, opt.pixels + " has no dataset 'pixels' [N, 3, R, R]");
    pixels = read_tensor(in, "pixels");
  } else {
    // Decode everything first: a bad file fails the command before any compute.
    const int resolution = static_cast<int>(model.config().image_resolution);
    std::vector<at::Tensor> rows;
    for (const std::string& path : opt.images)
      rows.push_back(clip::preprocess_image(image::decode_native_file(path), resolution));
    pixels = at::stack(rows, 0);
    datasets.emplace_back("pixels", pixels);
  }
  at::Tensor embeds = batched(pixels, opt.model.batch, [&](const at::Tensor& p) { return model.encode_image(p); });
  datasets.emplace_back("image_embeds", embeds);
  write_h5_atomic(opt.out, datasets);
  std::cout << "wrote " << opt.out << ": image_embeds [" << embeds.size(0) << ", " << embeds.size(1) << "]" << std::endl;
}

}  // namespace

void register_clip_commands(CLI::App& app) {
  // tokenize
  auto tok_vocab = std::make_shared<std::string>();
  auto tok_file = std::make_shared<std::string>();
  CLI::App* tok = app.add_subcommand("tokenize", "CLIP BPE ids of each line of a text file, one JSON array per line");
  tok->add_option("--vocab", *tok_vocab, "BPE merges file (bpe_simple_vocab_16e6.txt.gz)")->required();
  tok->add_option("--text-file", *tok_file, "UTF-8 text, one prompt per line")->required();
  tok->callback([tok_vocab, tok_file] {
    clip::Tokenizer tokenizer = clip::Tokenizer::load(*tok_vocab);
    for (const std::string& line : read_lines(*tok_file)) std::cout << nlohmann::json(tokenizer.encode(line)).dump() << "\n";
    std::cout.flush();
  });

  // encode-text
  auto et = std::make_shared<EncodeTextOptions>();
  CLI::App* etc = app.add_subcommand("encode-text", "CLIP text embeddings (raw, not normalized) -> HDF5 text_embeds [M, E]");
  add_model_options(etc, &et->model);
  etc->add_option("--vocab", et->vocab, "BPE merges file (with --text / --text-file)");
  etc->add_option("--text", et->texts, "text to encode (repeatable)");
  etc->add_option("--text-file", et->text_file, "UTF-8 text file, one prompt per line");
  etc->add_option("--tokens", et->tokens, "HDF5 with tokens [M, 77] int64 instead of text");
  etc->add_flag("--truncate", et->truncate, "cut texts longer than 75 tokens instead of failing");
  etc->add_option("--out", et->out, "output HDF5 (tokens, text_embeds)")->required();
  etc->callback([et] { encode_text(*et); });

  // encode-image
  auto ei = std::make_shared<EncodeImageOptions>();
  CLI::App* eic = app.add_subcommand("encode-image", "CLIP image embeddings (raw) -> HDF5 image_embeds [N, E]");
  add_model_options(eic, &ei->model);
  eic->add_option("--pixels", ei->pixels, "HDF5 with pixels [N, 3, R, R], already normalized");
  eic->add_option("--images", ei->images, "PNG/JPEG files, preprocessed like CLIP's _transform")->expected(1, -1);
  eic->add_option("--out", ei->out, "output HDF5 (image_embeds, and pixels for --images)")->required();
  eic->callback([ei] { encode_image(*ei); });

  // init-clip
  auto ic_out = std::make_shared<std::string>();
  auto ic_config = std::make_shared<std::string>("small");
  auto ic_seed = std::make_shared<uint64_t>(0);
  auto ic_vocab = std::make_shared<int64_t>(49408);
  CLI::App* ic = app.add_subcommand("init-clip", "random-weight CLIP (tests, demo) -> HDF5");
  ic->add_option("--out", *ic_out, "output weights (.h5)")->required();
  ic->add_option("--config", *ic_config, "small | vit-b-32")->capture_default_str();
  ic->add_option("--seed", *ic_seed, "random seed")->capture_default_str();
  ic->add_option("--vocab-size", *ic_vocab,
                 "token embedding rows; at least the tokenizer's vocabulary size (49408 for OpenAI's, see init-vocab)")
      ->capture_default_str();
  ic->callback([ic_out, ic_config, ic_seed, ic_vocab] {
    clip::ClipConfig config;
    if (*ic_config == "small") config = clip::ClipConfig::small(*ic_vocab);
    else if (*ic_config == "vit-b-32") config = clip::ClipConfig::vit_b_32(), config.vocab_size = *ic_vocab;
    else throw Error(ErrorCode::kInvalidArgument, "--config must be small or vit-b-32, got '" + *ic_config + "'");
    check(config.vocab_size > 2, ErrorCode::kInvalidArgument, "--vocab-size must be larger than 2");
    clip::ClipModel::random(config, *ic_seed, at::kCPU).save_h5(*ic_out);
    std::cout << "wrote " << *ic_out << " (" << config.to_json() << ")" << std::endl;
  });

  // init-vocab
  auto iv_out = std::make_shared<std::string>();
  CLI::App* iv = app.add_subcommand("init-vocab", "the project's small demo BPE vocabulary (.txt.gz)");
  iv->add_option("--out", *iv_out, "output merges file (.txt.gz)")->required();
  iv->callback([iv_out] {
    clip::Tokenizer::write_demo_vocab(*iv_out);
    std::cout << "wrote " << *iv_out << " (vocabulary size " << clip::Tokenizer::load(*iv_out).vocab_size() << ")"
              << std::endl;
  });
}

}  // namespace feu::indexer
