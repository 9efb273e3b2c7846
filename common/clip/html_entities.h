// Internal to the tokenizer: the character-reference tables used by its HTML
// unescaping (html_entities.cpp is generated data).
#pragma once

#include <cstddef>
#include <cstdint>

namespace feu::clip::html {

struct Entity {
  const char* name;   // without '&', e.g. "amp;" or the legacy "amp"
  const char* value;  // UTF-8
};
struct CharRef {
  uint32_t number;
  uint32_t replacement;
};
struct CodePointRange {
  uint32_t first, last;
};

// Python's html.entities.html5 (sorted by name).
extern const Entity kHtml5Entities[];
extern const size_t kHtml5EntityCount;
// ftfy's additional upper-cased names, e.g. "NTILDE;" -> "Ñ" (sorted).
extern const Entity kFtfyUpperEntities[];
extern const size_t kFtfyUpperEntityCount;
// Python's html._invalid_charrefs: numeric references replaced by another
// character (0x80..0x9F are Windows-1252, undefined ones map to themselves).
extern const CharRef kInvalidCharRefs[];
extern const size_t kInvalidCharRefCount;
// Python's html._invalid_codepoints: numeric references that are dropped.
extern const CodePointRange kInvalidCodePoints[];
extern const size_t kInvalidCodePointCount;

}  // namespace feu::clip::html
