// CLIP tokenizer: the golden vectors of the reference tokenizer, the 77-token
// rows, errors, and the project's own demo vocabulary.
#include <nlohmann/json.hpp>

#include <fstream>
#include <iostream>
#include <set>

#include "clip/tokenizer.h"
#include "core/error.h"
#include "core/files.h"
#include "test_support.h"

namespace feu::clip {
namespace {

// Golden strings whose reference output depends on ftfy's mojibake repair
// (fix_encoding), which this port leaves out (see tokenizer.cpp).
const std::set<std::string> kKnownFtfyDifferences = {
    "s\xC3\x83\xC2\xB3 mojibake caf\xC3\x83\xC2\xA9",  // "sÃ³ mojibake cafÃ©" -> "só mojibake café"
    "\xC3\xA2\xC5\x93\xE2\x80\x9D No problems",          // "âœ” No problems" -> "✔ no problems"
};

std::vector<nlohmann::json> read_golden(const std::string& path) {
  std::ifstream in(path);
  std::vector<nlohmann::json> records;
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) records.push_back(nlohmann::json::parse(line));
  return records;
}

const Tokenizer& real_tokenizer(const std::string& path) {
  static Tokenizer tokenizer = Tokenizer::load(path);
  return tokenizer;
}

TEST(ClipTokenizer, GoldenIdsAndRows) {
  FEU_SHARED_FILE_OR_SKIP(vocab, "clip/bpe_simple_vocab_16e6.txt.gz");
  FEU_SHARED_FILE_OR_SKIP(golden, "clip/tokenizer_golden.jsonl");
  const Tokenizer& tokenizer = real_tokenizer(vocab);
  EXPECT_EQ(tokenizer.vocab_size(), 49408);
  EXPECT_EQ(tokenizer.start_id(), 49406);
  EXPECT_EQ(tokenizer.end_id(), 49407);
  std::vector<nlohmann::json> records = read_golden(golden);
  ASSERT_EQ(records.size(), 110u);
  int checked = 0, known = 0;
  for (const auto& record : records) {
    const std::string text = record["text"];
    const auto ids = record["ids"].get<std::vector<int64_t>>();
    const auto row = record["tokens77"].get<std::vector<int64_t>>();
    if (kKnownFtfyDifferences.count(text)) {
      // Everything after ftfy's mojibake repair still matches: the cleaned text tokenizes to the ids.
      EXPECT_EQ(tokenizer.encode(record["cleaned"].get<std::string>()), ids) << text;
      EXPECT_NE(tokenizer.encode(text), ids) << "known ftfy difference now matches; remove it from the list: " << text;
      ++known;
      continue;
    }
    EXPECT_EQ(tokenizer.clean(text), record["cleaned"].get<std::string>()) << text;
    EXPECT_EQ(tokenizer.encode(text), ids) << text;
    EXPECT_EQ(tokenizer.tokenize_row(text, /*truncate=*/true), row) << text;
    if (record["too_long"].get<bool>()) {
      EXPECT_THROW(tokenizer.tokenize_row(text), Error) << text;
    } else {
      EXPECT_EQ(tokenizer.tokenize_row(text), row) << text;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 108);
  EXPECT_EQ(known, 2);
}

TEST(ClipTokenizer, TooLongTextIsANamedError) {
  FEU_SHARED_FILE_OR_SKIP(vocab, "clip/bpe_simple_vocab_16e6.txt.gz");
  const Tokenizer& tokenizer = real_tokenizer(vocab);
  std::string text;
  for (int i = 0; i < 76; ++i) text += "a ";
  try {
    tokenizer.tokenize_row(text);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("too long"), std::string::npos) << e.what();
  }
  // The message echoes a short, escaped prefix: a prompt cannot forge log lines.
  std::string forged;
  for (int i = 0; i < 200; ++i) forged += "a\n\x1b[2J ";
  try {
    tokenizer.tokenize_row(forged);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_EQ(message.find('\x1b'), std::string::npos) << message;
    EXPECT_NE(message.find("\"a\\n\\x1b[2J a\\n"), std::string::npos) << message;
    EXPECT_NE(message.find("(" + std::to_string(forged.size()) + " bytes)"), std::string::npos) << message;
    EXPECT_LT(message.size(), 250u) << message;
  }
  std::vector<int64_t> row = tokenizer.tokenize_row(text, /*truncate=*/true);
  EXPECT_EQ(row[0], 49406);
  EXPECT_EQ(row[76], 49407);
  EXPECT_EQ(row[75], 320);  // "a</w>"
}

TEST(ClipTokenizer, MissingOrCorruptVocabulary) {
  test::TempDir dir;
  try {
    Tokenizer::load(dir.file("missing.txt.gz"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kNotFound);
    EXPECT_NE(std::string(e.what()).find("missing.txt.gz"), std::string::npos);
  }
  write_file_atomic(dir.file("bad.txt.gz"), std::string("this is not gzip"));
  try {
    Tokenizer::load(dir.file("bad.txt.gz"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kCorruptFile);
    EXPECT_NE(std::string(e.what()).find("bad.txt.gz"), std::string::npos);
  }
}

TEST(ClipTokenizer, LowercaseFollowsPythonIncludingFinalSigma) {
  test::TempDir dir;
  Tokenizer::write_demo_vocab(dir.file("demo.txt.gz"));
  Tokenizer tokenizer = Tokenizer::load(dir.file("demo.txt.gz"));
  // Expected values are Python 3.11's str.lower() of the same strings.
  EXPECT_EQ(tokenizer.clean("\u00AA\u03A3 b"), "\u00AA\u03C2 b");              // ª is cased (Other_Lowercase)
  EXPECT_EQ(tokenizer.clean("x\u055F\u03A3"), "x\u055F\u03C2");                // U+055F is case-ignorable
  EXPECT_EQ(tokenizer.clean("\u24B6\u03A3"), "\u24D0\u03C2");                  // Ⓐ is cased (Other_Uppercase)
  EXPECT_EQ(tokenizer.clean("A\u03A3\u0301b"), "a\u03C3\u0301b");              // followed by a cased letter
  EXPECT_EQ(tokenizer.clean("\u0130STANBUL \u03A3\u0391\u03A3"), "i\u0307stanbul \u03C3\u03B1\u03C2");
}

TEST(ClipTokenizer, DemoVocabulary) {
  test::TempDir dir;
  const std::string path = dir.file("demo.txt.gz");
  Tokenizer::write_demo_vocab(path);
  Tokenizer tokenizer = Tokenizer::load(path);
  // 256 bytes + 256 word-final bytes + merges + 2 specials; small enough for a small model.
  EXPECT_GT(tokenizer.vocab_size(), 512 + 100);
  EXPECT_LT(tokenizer.vocab_size(), 4096);
  // Single characters map to the byte table's word-final entries whatever the merges are.
  EXPECT_EQ(tokenizer.encode("a"), std::vector<int64_t>({256 + 64}));
  EXPECT_EQ(tokenizer.encode("!"), std::vector<int64_t>({256}));
  // Words of the built-in text became single tokens; unknown words still encode.
  EXPECT_EQ(tokenizer.encode("photo").size(), 1u);
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("A photo of a FACE with blond hair!")),
            "a photo of a face with blond hair ! ");  // "!" is its own pre-token
  EXPECT_EQ(tokenizer.decode(tokenizer.encode("xylophone qwerty")), "xylophone qwerty ");
  std::cout << "demo vocabulary size " << tokenizer.vocab_size() << "\n";
  std::vector<int64_t> row = tokenizer.tokenize_row("a smiling woman");
  EXPECT_EQ(row[0], tokenizer.start_id());
  auto end = std::find(row.begin(), row.end(), tokenizer.end_id());
  ASSERT_NE(end, row.end());
  // The end id is the largest id, so the text encoder's argmax pooling finds it.
  EXPECT_EQ(*std::max_element(row.begin(), row.end()), tokenizer.end_id());
  // Deterministic: the same file twice.
  Tokenizer::write_demo_vocab(dir.file("demo2.txt.gz"));
  EXPECT_EQ(sha256_file(path), sha256_file(dir.file("demo2.txt.gz")));
}

}  // namespace
}  // namespace feu::clip
