// feu-indexer's CLIP commands against the parity fixtures, and their errors.
#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "clip/model.h"
#include "clip/preprocess.h"
#include "clip/tokenizer.h"
#include "core/files.h"
#include "core/h5.h"
#include "image/codec.h"
#include "tensor/tensor_h5.h"
#include "test_support.h"

namespace feu::clip {
namespace {

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a - b).abs().max() / b.abs().max()).item<double>();
}

std::string indexer() { return test::program("feu-indexer"); }

// Runs a command that must fail with exit status 2 and an error line naming `needle`.
void expect_failure(const std::string& command, const std::string& code, const std::string& needle) {
  std::string output;
  int status = test::run_command(command, &output);
  EXPECT_EQ(status, 2) << command << "\n" << output;
  EXPECT_NE(output.find("error [" + code + "]"), std::string::npos) << output;
  EXPECT_NE(output.find(needle), std::string::npos) << output;
}

TEST(ClipCli, TokenizeMatchesGoldenIds) {
  FEU_SHARED_FILE_OR_SKIP(vocab, "clip/bpe_simple_vocab_16e6.txt.gz");
  FEU_SHARED_FILE_OR_SKIP(golden, "clip/tokenizer_golden.jsonl");
  test::TempDir dir;
  std::ifstream in(golden);
  std::ofstream texts(dir.file("texts.txt"));
  std::vector<std::vector<int64_t>> expected;
  std::string line;
  while (std::getline(in, line)) {
    auto record = nlohmann::json::parse(line);
    std::string text = record["text"];
    // One prompt per line: skip texts with line breaks and the two mojibake cases.
    if (text.find_first_of("\r\n") != std::string::npos || text.find("\xC3\x83") != std::string::npos ||
        text.find("\xC3\xA2\xC5\x93") != std::string::npos || text.find("\xE2\x80\xA8") != std::string::npos ||
        text.find("\xE2\x80\xA9") != std::string::npos || text.find("\xC2\x85") != std::string::npos)
      continue;
    texts << text << "\n";
    expected.push_back(record["ids"].get<std::vector<int64_t>>());
  }
  texts.close();
  ASSERT_GT(expected.size(), 100u);
  std::string output;
  ASSERT_EQ(test::run_command(indexer() + " tokenize --vocab " + vocab + " --text-file " + dir.file("texts.txt") +
                                  " > " + dir.file("ids.jsonl"),
                              &output),
            0)
      << output;
  std::ifstream ids(dir.file("ids.jsonl"));
  size_t row = 0;
  while (std::getline(ids, line)) {
    ASSERT_LT(row, expected.size());
    EXPECT_EQ(nlohmann::json::parse(line).get<std::vector<int64_t>>(), expected[row]) << "line " << row;
    ++row;
  }
  EXPECT_EQ(row, expected.size());
}

TEST(ClipCli, EncodersMatchTheParityFixture) {
  FEU_SHARED_FILE_OR_SKIP(archive, "parity/clip_small.pt");
  FEU_SHARED_FILE_OR_SKIP(fixture, "parity/clip_small.h5");
  test::TempDir dir;
  std::string output;
  ASSERT_EQ(test::run_command(indexer() + " encode-text --device cpu --clip " + archive + " --tokens " + fixture +
                                  " --out " + dir.file("text.h5"),
                              &output),
            0)
      << output;
  ASSERT_EQ(test::run_command(indexer() + " encode-image --device cpu --batch 3 --clip " + archive + " --pixels " +
                                  fixture + " --out " + dir.file("image.h5"),
                              &output),
            0)
      << output;
  h5::File expected = h5::File::open_read(fixture);
  h5::File text = h5::File::open_read(dir.file("text.h5"));
  h5::File image = h5::File::open_read(dir.file("image.h5"));
  EXPECT_LT(relative_error(read_tensor(text, "text_embeds"), read_tensor(expected, "text_embeds")), 1e-4);
  EXPECT_LT(relative_error(read_tensor(image, "image_embeds"), read_tensor(expected, "image_embeds")), 1e-4);
}

TEST(ClipCli, EncodeTextFromTextAndImagesFromFiles) {
  FEU_SHARED_FILE_OR_SKIP(archive, "parity/clip_small.pt");
  FEU_SHARED_FILE_OR_SKIP(vocab, "clip/bpe_simple_vocab_16e6.txt.gz");
  test::TempDir dir;
  std::string output;
  ASSERT_EQ(test::run_command(indexer() + " encode-text --device cpu --clip " + archive + " --vocab " + vocab +
                                  " --text 'a face with blond hair' --text 'smiling woman' --out " + dir.file("t.h5"),
                              &output),
            0)
      << output;
  ClipModel model = ClipModel::load(archive, at::kCPU);
  Tokenizer tokenizer = Tokenizer::load(vocab);
  at::Tensor tokens = at::empty({2, 77}, at::kLong);
  for (int i = 0; i < 2; ++i) {
    auto row = tokenizer.tokenize_row(i == 0 ? "a face with blond hair" : "smiling woman");
    std::copy(row.begin(), row.end(), tokens[i].data_ptr<int64_t>());
  }
  h5::File t = h5::File::open_read(dir.file("t.h5"));
  EXPECT_TRUE(at::equal(read_tensor_int64(t, "tokens"), tokens));
  EXPECT_LT(relative_error(read_tensor(t, "text_embeds"), model.encode_text(tokens)), 1e-5);

  // Images: a PNG and a JPEG of different sizes.
  image::Image a, b;
  a.width = 40, a.height = 50, b.width = 64, b.height = 32;
  for (int i = 0; i < 40 * 50; ++i) a.rgb.insert(a.rgb.end(), {uint8_t(i % 251), uint8_t(i % 13 * 19), uint8_t(i / 8)});
  for (int i = 0; i < 64 * 32; ++i) b.rgb.insert(b.rgb.end(), {uint8_t(i % 64 * 4), uint8_t(i / 64 * 8), 90});
  image::write_image(dir.file("a.png"), a);
  image::write_image(dir.file("b.jpg"), b);
  ASSERT_EQ(test::run_command(indexer() + " encode-image --device cpu --clip " + archive + " --images " +
                                  dir.file("a.png") + " " + dir.file("b.jpg") + " --out " + dir.file("i.h5"),
                              &output),
            0)
      << output;
  h5::File i = h5::File::open_read(dir.file("i.h5"));
  at::Tensor pixels = at::stack({preprocess_image(image::decode_file(dir.file("a.png")), 32),
                                 preprocess_image(image::decode_file(dir.file("b.jpg")), 32)});
  EXPECT_TRUE(at::allclose(read_tensor(i, "pixels"), pixels));
  EXPECT_LT(relative_error(read_tensor(i, "image_embeds"), model.encode_image(pixels)), 1e-5);
}

TEST(ClipCli, InitCommandsMakeAWorkingDemoPair) {
  test::TempDir dir;
  std::string output;
  ASSERT_EQ(test::run_command(indexer() + " init-vocab --out " + dir.file("v.txt.gz"), &output), 0) << output;
  const int64_t vocab_size = Tokenizer::load(dir.file("v.txt.gz")).vocab_size();
  ASSERT_EQ(test::run_command(indexer() + " init-clip --seed 3 --vocab-size " + std::to_string(vocab_size) + " --out " +
                                  dir.file("m.h5"),
                              &output),
            0)
      << output;
  ASSERT_EQ(test::run_command(indexer() + " encode-text --device cpu --clip " + dir.file("m.h5") + " --vocab " +
                                  dir.file("v.txt.gz") + " --text 'a photo of a face' --out " + dir.file("t.h5"),
                              &output),
            0)
      << output;
  h5::File t = h5::File::open_read(dir.file("t.h5"));
  EXPECT_EQ(t.shape("text_embeds"), h5::Shape({1, 32}));
  expect_failure(indexer() + " init-clip --config huge --out " + dir.file("x.h5"), "invalid_argument", "huge");
}

TEST(ClipCli, BadInputsFailCleanly) {
  FEU_SHARED_FILE_OR_SKIP(archive, "parity/clip_small.pt");
  FEU_SHARED_FILE_OR_SKIP(vocab, "clip/bpe_simple_vocab_16e6.txt.gz");
  test::TempDir dir;
  const std::string out = dir.file("out.h5");
  expect_failure(indexer() + " encode-text --clip " + dir.file("none.pt") + " --vocab " + vocab + " --text hi --out " + out,
                 "not_found", "none.pt");
  expect_failure(indexer() + " encode-text --clip " + archive + " --vocab " + dir.file("none.txt.gz") +
                     " --text hi --out " + out,
                 "not_found", "none.txt.gz");
  std::string long_text;
  for (int i = 0; i < 80; ++i) long_text += "word ";
  expect_failure(indexer() + " encode-text --device cpu --clip " + archive + " --vocab " + vocab + " --text '" +
                     long_text + "' --out " + out,
                 "invalid_argument", "too long");
  // ... unless truncation is asked for.
  std::string output;
  EXPECT_EQ(test::run_command(indexer() + " encode-text --device cpu --truncate --clip " + archive + " --vocab " + vocab +
                                  " --text '" + long_text + "' --out " + out,
                              &output),
            0)
      << output;
  std::filesystem::remove(out);

  write_file_atomic(dir.file("broken.png"), std::string("\x89PNG\r\n\x1a\n\0\0\0\rIHDR", 16));
  expect_failure(indexer() + " encode-image --device cpu --clip " + archive + " --images " + dir.file("broken.png") +
                     " --out " + out,
                 "corrupt_file", "broken.png");
  write_file_atomic(dir.file("bad.pt"), std::string("not a model"));
  expect_failure(indexer() + " encode-image --clip " + dir.file("bad.pt") + " --pixels x.h5 --out " + out,
                 "corrupt_file", "bad.pt");
  // A checkpoint without one parameter.
  ClipModel model = ClipModel::load(archive, at::kCPU);
  {
    h5::File f = h5::File::create(dir.file("partial.h5"));
    for (const auto& [name, tensor] : model.parameters())
      if (name != "text_projection") write_tensor(f, "weights/" + name, tensor);
  }
  expect_failure(indexer() + " encode-text --clip " + dir.file("partial.h5") + " --vocab " + vocab +
                     " --text hi --out " + out,
                 "not_found", "text_projection");
  EXPECT_FALSE(std::filesystem::exists(out)) << "no output may be left behind by a failed command";
}

}  // namespace
}  // namespace feu::clip
