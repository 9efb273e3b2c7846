// CLIP's byte-level BPE tokenizer (OpenAI simple_tokenizer.py + clip.tokenize).
//
// Text cleaning follows the reference: ftfy.fix_text (all of it except its
// mojibake repair, fix_encoding — see tokenizer.cpp), html unescape twice,
// whitespace collapsing, Unicode lowercase; then the pre-tokenization regex
// (PCRE2 with Unicode properties) and byte-level BPE on each pre-token.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace feu::clip {

class Tokenizer {
 public:
  static constexpr int kContextLength = 77;

  // Reads a gzip merges file in the format of bpe_simple_vocab_16e6.txt.gz
  // (a header line, then "a b" merges). The vocabulary is 256 byte symbols,
  // their 256 "</w>" forms, one entry per merge used, then the two special
  // tokens: vocab_size() = 512 + merges + 2. For the real file merges are
  // lines 1..48894 (vocab 49408); a shorter file uses all its merges.
  // Errors: not_found (missing file), corrupt_file (not gzip, bad line).
  static Tokenizer load(const std::string& vocab_gz_path);

  // BPE ids of `text`, without start/end tokens.
  std::vector<int64_t> encode(const std::string& text) const;
  // The 77-id row clip.tokenize makes: start, ids, end, zero padding. More
  // than 75 ids is an invalid_argument error unless `truncate` (then
  // start + ids[:75] + end, as the reference).
  std::vector<int64_t> tokenize_row(const std::string& text, bool truncate = false) const;
  // The cleaned text encode() pre-tokenizes (debugging, tests).
  std::string clean(const std::string& text) const;
  // Inverse of encode (debugging): token strings joined, "</w>" -> " ".
  std::string decode(const std::vector<int64_t>& ids) const;

  int64_t vocab_size() const { return static_cast<int64_t>(id_to_token_.size()); }
  int64_t start_id() const { return vocab_size() - 2; }
  int64_t end_id() const { return vocab_size() - 1; }

  // Writes the project's own small merges file (same gzip format) for the
  // embedded default demo: it is learned from a built-in English text, so its
  // vocab_size() is small (a few thousand at most; ClipModel needs
  // config.vocab_size >= vocab_size(), see ClipConfig::small()).
  static void write_demo_vocab(const std::string& path);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

 private:
  Tokenizer();
  std::vector<std::string> bpe(const std::string& token) const;

  struct Regex;                                   // compiled PCRE2 pattern
  std::unique_ptr<Regex> regex_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<std::string, int64_t> token_to_id_;
  std::unordered_map<std::string, int64_t> merge_rank_;  // "a\x01b" -> rank
  std::string byte_to_unicode_[256];                     // UTF-8 of each byte's table char
};

}  // namespace feu::clip
