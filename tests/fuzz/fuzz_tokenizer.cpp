// Instructions (any bytes a client sends as text): CLIP's tokenizer cleans, splits and BPE-encodes
// them into a context row, or refuses with a typed error (invalid UTF-8, too many tokens). The
// vocabulary is $FEU_FUZZ_VOCAB (OpenAI's bpe_simple_vocab_16e6.txt.gz) or the demo's.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "clip/tokenizer.h"
#include "core/error.h"
#include "fuzz_input.h"

namespace {

const feu::clip::Tokenizer& tokenizer() {
  static const feu::clip::Tokenizer instance = [] {
    const char* vocab = std::getenv("FEU_FUZZ_VOCAB");
    if (vocab && *vocab) return feu::clip::Tokenizer::load(vocab);
    const std::string& path = feu::fuzz::input_file(nullptr, 0, ".vocab.gz");
    feu::clip::Tokenizer::write_demo_vocab(path);
    return feu::clip::Tokenizer::load(path);
  }();
  return instance;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const std::vector<int64_t> row = tokenizer().tokenize_row(text, /*truncate=*/true);
    if (row.size() != static_cast<size_t>(feu::clip::Tokenizer::kContextLength)) std::abort();
    (void)tokenizer().decode(tokenizer().encode(text));
  } catch (const feu::Error&) {
  }
  return 0;
}
