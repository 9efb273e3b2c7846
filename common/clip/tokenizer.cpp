// CLIP tokenizer. The reference is OpenAI's simple_tokenizer.py with ftfy
// 6.3.1 and Python 3.11; see specs/clip.md §7 for the behaviour reproduced
// here step by step. Text is handled as code points (std::u32string) through
// the cleaning steps, then as UTF-8 for the PCRE2 pre-tokenizer and the BPE.
//
// Known difference: ftfy's fix_encoding (mojibake repair such as "sÃ³" ->
// "só") is heuristic and not ported; such text is tokenized as written.
#include "clip/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <map>
#include <set>
#include <unordered_map>

#include "clip/html_entities.h"
#include "core/error.h"
#include "core/files.h"
#include "core/text.h"

namespace feu::clip {
namespace {

// ------------------------------------------------------------ UTF-8 ------

// Invalid bytes become U+FFFD, one per byte (Python's errors="replace" is
// close to this; well-formed input is unaffected).
std::u32string utf8_to_u32(const std::string& text) {
  std::u32string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  utf8proc_ssize_t remaining = static_cast<utf8proc_ssize_t>(text.size());
  while (remaining > 0) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t n = utf8proc_iterate(p, remaining, &cp);
    if (n <= 0) {
      out.push_back(0xFFFD);
      n = 1;
    } else {
      out.push_back(static_cast<char32_t>(cp));
    }
    p += n;
    remaining -= n;
  }
  return out;
}

void append_utf8(std::string& out, char32_t cp) {
  utf8proc_uint8_t buffer[4];
  utf8proc_ssize_t n = utf8proc_encode_char(static_cast<utf8proc_int32_t>(cp), buffer);
  out.append(reinterpret_cast<const char*>(buffer), static_cast<size_t>(n));
}

std::string u32_to_utf8(const std::u32string& text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t cp : text) append_utf8(out, cp);
  return out;
}

// Unicode normalization through utf8proc (NFC, or NFKC with `compat`).
std::u32string normalize(const std::u32string& text, bool compat) {
  if (text.empty()) return text;
  std::string utf8 = u32_to_utf8(text);
  utf8proc_uint8_t* result = nullptr;
  int options = UTF8PROC_STABLE | UTF8PROC_COMPOSE | (compat ? UTF8PROC_COMPAT : 0);
  utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()),
                                    static_cast<utf8proc_ssize_t>(utf8.size()), &result,
                                    static_cast<utf8proc_option_t>(options));
  if (n < 0) return text;  // cannot happen for the valid UTF-8 we build
  std::string normalized(reinterpret_cast<const char*>(result), static_cast<size_t>(n));
  std::free(result);
  return utf8_to_u32(normalized);
}

// Unicode White_Space, i.e. `\s` of Python's regex module (specs §7.3).
bool is_white_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}
// Python's str.isspace (used by str.strip): White_Space plus U+001C..U+001F.
bool is_python_space(char32_t c) { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

bool is_ascii_alnum(char32_t c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

utf8proc_category_t category(char32_t c) {
  return utf8proc_category(static_cast<utf8proc_int32_t>(c));
}

// ------------------------------------------------------ HTML entities ----

struct EntityTables {
  std::unordered_map<std::string, std::u32string> html5;       // Python html.entities.html5
  std::unordered_map<std::string, std::u32string> ftfy;        // ftfy's "&name;" table
  std::unordered_map<uint32_t, char32_t> invalid_charrefs;     // Python html._invalid_charrefs
  std::vector<html::CodePointRange> invalid_codepoints;
};

const EntityTables& entity_tables() {
  static const EntityTables tables = [] {
    EntityTables t;
    for (size_t i = 0; i < html::kHtml5EntityCount; ++i) {
      const html::Entity& e = html::kHtml5Entities[i];
      t.html5.emplace(e.name, utf8_to_u32(e.value));
      size_t len = std::strlen(e.name);
      if (len > 0 && e.name[len - 1] == ';') t.ftfy.emplace(e.name, utf8_to_u32(e.value));
    }
    for (size_t i = 0; i < html::kFtfyUpperEntityCount; ++i)
      t.ftfy.emplace(html::kFtfyUpperEntities[i].name, utf8_to_u32(html::kFtfyUpperEntities[i].value));
    for (size_t i = 0; i < html::kInvalidCharRefCount; ++i)
      t.invalid_charrefs.emplace(html::kInvalidCharRefs[i].number, html::kInvalidCharRefs[i].replacement);
    t.invalid_codepoints.assign(html::kInvalidCodePoints, html::kInvalidCodePoints + html::kInvalidCodePointCount);
    return t;
  }();
  return tables;
}

// Python html._replace_charref for a numeric reference.
std::u32string numeric_charref(const std::u32string& digits, int base) {
  const EntityTables& t = entity_tables();
  uint64_t value = 0;
  bool huge = false;
  for (char32_t c : digits) {
    int d = (c >= '0' && c <= '9') ? int(c - '0') : (c >= 'a' && c <= 'f') ? int(c - 'a' + 10) : int(c - 'A' + 10);
    value = value * base + d;
    if (value > 0x10FFFF) huge = true, value = 0x110000;
  }
  if (!huge) {
    auto it = t.invalid_charrefs.find(static_cast<uint32_t>(value));
    if (it != t.invalid_charrefs.end()) return std::u32string(1, it->second);
  }
  if (huge || (value >= 0xD800 && value <= 0xDFFF)) return U"\uFFFD";
  for (const auto& range : t.invalid_codepoints)
    if (value >= range.first && value <= range.last) return U"";
  return std::u32string(1, static_cast<char32_t>(value));
}

// Python's html.unescape (3.11): numeric references with optional ';', and
// named references, the longest known prefix winning for legacy names.
std::u32string python_html_unescape(const std::u32string& s) {
  if (s.find(U'&') == std::u32string::npos) return s;
  const EntityTables& t = entity_tables();
  std::u32string out;
  size_t i = 0;
  const size_t n = s.size();
  auto is_digit = [](char32_t c) { return c >= '0' && c <= '9'; };
  auto is_hex = [&](char32_t c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); };
  while (i < n) {
    if (s[i] != U'&') {
      out.push_back(s[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < n && s[j] == U'#') {
      size_t k = j + 1;
      int base = 10;
      if (k < n && (s[k] == U'x' || s[k] == U'X') && k + 1 < n && is_hex(s[k + 1])) {
        base = 16;
        ++k;
      }
      size_t start = k;
      while (k < n && (base == 16 ? is_hex(s[k]) : is_digit(s[k]))) ++k;
      if (k == start) {  // "&#" not followed by a number: no reference
        out.push_back(s[i++]);
        continue;
      }
      std::u32string digits = s.substr(start, k - start);
      if (k < n && s[k] == U';') ++k;
      out += numeric_charref(digits, base);
      i = k;
      continue;
    }
    // Named: up to 32 characters other than \t \n \f space < & # ;, then ';'?
    size_t k = j;
    while (k < n && k - j < 32) {
      char32_t c = s[k];
      if (c == U'\t' || c == U'\n' || c == U'\f' || c == U' ' || c == U'<' || c == U'&' || c == U'#' || c == U';')
        break;
      ++k;
    }
    if (k == j) {
      out.push_back(s[i++]);
      continue;
    }
    if (k < n && s[k] == U';') ++k;
    std::u32string name = s.substr(j, k - j);
    auto it = t.html5.find(u32_to_utf8(name));
    if (it != t.html5.end()) {
      out += it->second;
    } else {
      bool found = false;
      for (size_t x = name.size() - 1; x > 1; --x) {
        auto prefix = t.html5.find(u32_to_utf8(name.substr(0, x)));
        if (prefix != t.html5.end()) {
          out += prefix->second;
          out += name.substr(x);
          found = true;
          break;
        }
      }
      if (!found) {
        out.push_back(U'&');
        out += name;
      }
    }
    i = k;
  }
  return out;
}

// ------------------------------------------------------- ftfy 6.3.1 ------

// ftfy.fixes.unescape_html: "&#?[0-9A-Za-z]{1,24};" references only.
std::u32string ftfy_unescape_html(const std::u32string& s) {
  if (s.find(U'&') == std::u32string::npos) return s;
  const EntityTables& t = entity_tables();
  std::u32string out;
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    if (s[i] == U'&') {
      size_t j = i + 1;
      bool numeric = j < n && s[j] == U'#';
      if (numeric) ++j;
      size_t k = j;
      while (k < n && is_ascii_alnum(s[k])) ++k;
      size_t run = k - j;
      if (run >= 1 && run <= 24 && k < n && s[k] == U';') {
        std::u32string entity = s.substr(i, k + 1 - i);  // "&...;"
        std::u32string replacement = entity;
        auto it = t.ftfy.find(u32_to_utf8(entity.substr(1)));
        if (it != t.ftfy.end()) {
          replacement = it->second;
        } else if (numeric) {
          std::u32string unescaped = python_html_unescape(entity);
          if (unescaped.find(U';') == std::u32string::npos) replacement = unescaped;
        }
        out += replacement;
        i = k + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

// Windows-1252 for U+0080..U+009F ("sloppy": undefined bytes stay as they are).
std::u32string ftfy_fix_c1_controls(std::u32string s) {
  const EntityTables& t = entity_tables();
  for (char32_t& c : s)
    if (c >= 0x80 && c <= 0x9F) c = t.invalid_charrefs.at(static_cast<uint32_t>(c));
  return s;
}

std::u32string ftfy_fix_latin_ligatures(const std::u32string& s) {
  static const std::map<char32_t, std::u32string> kLigatures = {
      {0x0132, U"IJ"}, {0x0133, U"ij"}, {0x0149, U"\u02BCn"}, {0x01C4, U"D\u017D"}, {0x01C5, U"D\u017E"},
      {0x01C6, U"d\u017E"}, {0x01C7, U"LJ"}, {0x01C8, U"Lj"}, {0x01C9, U"lj"}, {0x01CA, U"NJ"},
      {0x01CB, U"Nj"}, {0x01CC, U"nj"}, {0x01F1, U"DZ"}, {0x01F2, U"Dz"}, {0x01F3, U"dz"},
      {0xFB00, U"ff"}, {0xFB01, U"fi"}, {0xFB02, U"fl"}, {0xFB03, U"ffi"}, {0xFB04, U"ffl"},
      {0xFB05, U"\u017Ft"}, {0xFB06, U"st"}};
  std::u32string out;
  for (char32_t c : s) {
    auto it = kLigatures.find(c);
    if (it != kLigatures.end()) out += it->second;
    else out.push_back(c);
  }
  return out;
}

// U+3000 -> space; U+FF01..U+FFEF -> their NFKC form where it differs.
std::u32string ftfy_fix_character_width(const std::u32string& s) {
  std::u32string out;
  for (char32_t c : s) {
    if (c == 0x3000) {
      out.push_back(U' ');
    } else if (c >= 0xFF01 && c <= 0xFFEF) {
      out += normalize(std::u32string(1, c), /*compat=*/true);
    } else {
      out.push_back(c);
    }
  }
  return out;
}

std::u32string ftfy_uncurl_quotes(std::u32string s) {
  for (char32_t& c : s) {
    if (c == 0x02BC || (c >= 0x2018 && c <= 0x201B)) c = U'\'';
    else if (c >= 0x201C && c <= 0x201F) c = U'"';
  }
  return s;
}

std::u32string ftfy_fix_line_breaks(const std::u32string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c == U'\r') {
      out.push_back(U'\n');
      if (i + 1 < s.size() && s[i + 1] == U'\n') ++i;
    } else if (c == 0x2028 || c == 0x2029 || c == 0x85) {
      out.push_back(U'\n');
    } else {
      out.push_back(c);
    }
  }
  return out;
}

// ANSI "ESC [ (digits|;)* letter" sequences (Python's \d: Unicode Nd).
std::u32string ftfy_remove_terminal_escapes(const std::u32string& s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) {
    if (s[i] == 0x1B && i + 1 < s.size() && s[i + 1] == U'[') {
      size_t k = i + 2;
      while (k < s.size() && (s[k] == U';' || category(s[k]) == UTF8PROC_CATEGORY_ND)) ++k;
      if (k < s.size() && ((s[k] >= 'a' && s[k] <= 'z') || (s[k] >= 'A' && s[k] <= 'Z'))) {
        i = k + 1;
        continue;
      }
    }
    out.push_back(s[i++]);
  }
  return out;
}

std::u32string ftfy_remove_control_chars(const std::u32string& s) {
  std::u32string out;
  for (char32_t c : s) {
    bool control = c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F ||
                   (c >= 0x206A && c <= 0x206F) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
    if (!control) out.push_back(c);
  }
  return out;
}

// ftfy.fix_and_explain on one line: passes until nothing changes.
std::u32string ftfy_fix_segment(std::u32string text, bool unescape_html) {
  while (true) {
    std::u32string original = text;
    if (unescape_html) text = ftfy_unescape_html(text);
    // (fix_encoding — mojibake repair — is not ported; see the file comment.)
    text = ftfy_fix_c1_controls(std::move(text));
    text = ftfy_fix_latin_ligatures(text);
    text = ftfy_fix_character_width(text);
    text = ftfy_uncurl_quotes(std::move(text));
    text = ftfy_fix_line_breaks(text);
    text = ftfy_remove_terminal_escapes(text);
    text = ftfy_remove_control_chars(text);
    text = normalize(text, /*compat=*/false);
    if (text == original) return text;
  }
}

// ftfy.fix_text: line by line; HTML unescaping switches off for good at the
// first line that contains '<' (it looks like real HTML then).
std::u32string ftfy_fix_text(const std::u32string& text) {
  std::u32string out;
  bool unescape_html = true;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t newline = text.find(U'\n', pos);
    size_t end = newline == std::u32string::npos ? text.size() : newline + 1;
    std::u32string segment = text.substr(pos, end - pos);
    if (segment.find(U'<') != std::u32string::npos) unescape_html = false;
    out += ftfy_fix_segment(std::move(segment), unescape_html);
    pos = end;
  }
  return out;
}

// ------------------------------------------------- Python str.lower ------

// Final_Sigma needs the Cased and Case_Ignorable properties, which utf8proc
// does not expose. These tables were generated from Python 3.11's own
// behaviour (Unicode 14: str.islower/isupper/istitle for Cased, and the
// Final_Sigma outcome of str.lower for Case_Ignorable); data only.
// Other_Lowercase / Other_Uppercase: cased code points outside Lu, Ll, Lt.
const html::CodePointRange kExtraCased[] = {
{0xAA, 0xAA}, {0xBA, 0xBA}, {0x2B0, 0x2B8}, {0x2C0, 0x2C1}, {0x2E0, 0x2E4}, {0x345, 0x345},
{0x37A, 0x37A}, {0x1D2C, 0x1D6A}, {0x1D78, 0x1D78}, {0x1D9B, 0x1DBF}, {0x2071, 0x2071}, {0x207F, 0x207F},
{0x2090, 0x209C}, {0x2160, 0x217F}, {0x24B6, 0x24E9}, {0x2C7C, 0x2C7D}, {0xA69C, 0xA69D}, {0xA770, 0xA770},
{0xA7F8, 0xA7F9}, {0xAB5C, 0xAB5F}, {0x10780, 0x10780}, {0x10783, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA},
{0x1F130, 0x1F149}, {0x1F150, 0x1F169}, {0x1F170, 0x1F189}};
// Case_Ignorable.
const html::CodePointRange kCaseIgnorable[] = {
{0x27, 0x27}, {0x2E, 0x2E}, {0x3A, 0x3A}, {0x5E, 0x5E}, {0x60, 0x60}, {0xA8, 0xA8},
{0xAD, 0xAD}, {0xAF, 0xAF}, {0xB4, 0xB4}, {0xB7, 0xB8}, {0x2B0, 0x36F}, {0x374, 0x375},
{0x37A, 0x37A}, {0x384, 0x385}, {0x387, 0x387}, {0x483, 0x489}, {0x559, 0x559}, {0x55F, 0x55F},
{0x591, 0x5BD}, {0x5BF, 0x5BF}, {0x5C1, 0x5C2}, {0x5C4, 0x5C5}, {0x5C7, 0x5C7}, {0x5F4, 0x5F4},
{0x600, 0x605}, {0x610, 0x61A}, {0x61C, 0x61C}, {0x640, 0x640}, {0x64B, 0x65F}, {0x670, 0x670},
{0x6D6, 0x6DD}, {0x6DF, 0x6E8}, {0x6EA, 0x6ED}, {0x70F, 0x70F}, {0x711, 0x711}, {0x730, 0x74A},
{0x7A6, 0x7B0}, {0x7EB, 0x7F5}, {0x7FA, 0x7FA}, {0x7FD, 0x7FD}, {0x816, 0x82D}, {0x859, 0x85B},
{0x888, 0x888}, {0x890, 0x891}, {0x898, 0x89F}, {0x8C9, 0x902}, {0x93A, 0x93A}, {0x93C, 0x93C},
{0x941, 0x948}, {0x94D, 0x94D}, {0x951, 0x957}, {0x962, 0x963}, {0x971, 0x971}, {0x981, 0x981},
{0x9BC, 0x9BC}, {0x9C1, 0x9C4}, {0x9CD, 0x9CD}, {0x9E2, 0x9E3}, {0x9FE, 0x9FE}, {0xA01, 0xA02},
{0xA3C, 0xA3C}, {0xA41, 0xA42}, {0xA47, 0xA48}, {0xA4B, 0xA4D}, {0xA51, 0xA51}, {0xA70, 0xA71},
{0xA75, 0xA75}, {0xA81, 0xA82}, {0xABC, 0xABC}, {0xAC1, 0xAC5}, {0xAC7, 0xAC8}, {0xACD, 0xACD},
{0xAE2, 0xAE3}, {0xAFA, 0xAFF}, {0xB01, 0xB01}, {0xB3C, 0xB3C}, {0xB3F, 0xB3F}, {0xB41, 0xB44},
{0xB4D, 0xB4D}, {0xB55, 0xB56}, {0xB62, 0xB63}, {0xB82, 0xB82}, {0xBC0, 0xBC0}, {0xBCD, 0xBCD},
{0xC00, 0xC00}, {0xC04, 0xC04}, {0xC3C, 0xC3C}, {0xC3E, 0xC40}, {0xC46, 0xC48}, {0xC4A, 0xC4D},
{0xC55, 0xC56}, {0xC62, 0xC63}, {0xC81, 0xC81}, {0xCBC, 0xCBC}, {0xCBF, 0xCBF}, {0xCC6, 0xCC6},
{0xCCC, 0xCCD}, {0xCE2, 0xCE3}, {0xD00, 0xD01}, {0xD3B, 0xD3C}, {0xD41, 0xD44}, {0xD4D, 0xD4D},
{0xD62, 0xD63}, {0xD81, 0xD81}, {0xDCA, 0xDCA}, {0xDD2, 0xDD4}, {0xDD6, 0xDD6}, {0xE31, 0xE31},
{0xE34, 0xE3A}, {0xE46, 0xE4E}, {0xEB1, 0xEB1}, {0xEB4, 0xEBC}, {0xEC6, 0xEC6}, {0xEC8, 0xECD},
{0xF18, 0xF19}, {0xF35, 0xF35}, {0xF37, 0xF37}, {0xF39, 0xF39}, {0xF71, 0xF7E}, {0xF80, 0xF84},
{0xF86, 0xF87}, {0xF8D, 0xF97}, {0xF99, 0xFBC}, {0xFC6, 0xFC6}, {0x102D, 0x1030}, {0x1032, 0x1037},
{0x1039, 0x103A}, {0x103D, 0x103E}, {0x1058, 0x1059}, {0x105E, 0x1060}, {0x1071, 0x1074}, {0x1082, 0x1082},
{0x1085, 0x1086}, {0x108D, 0x108D}, {0x109D, 0x109D}, {0x10FC, 0x10FC}, {0x135D, 0x135F}, {0x1712, 0x1714},
{0x1732, 0x1733}, {0x1752, 0x1753}, {0x1772, 0x1773}, {0x17B4, 0x17B5}, {0x17B7, 0x17BD}, {0x17C6, 0x17C6},
{0x17C9, 0x17D3}, {0x17D7, 0x17D7}, {0x17DD, 0x17DD}, {0x180B, 0x180F}, {0x1843, 0x1843}, {0x1885, 0x1886},
{0x18A9, 0x18A9}, {0x1920, 0x1922}, {0x1927, 0x1928}, {0x1932, 0x1932}, {0x1939, 0x193B}, {0x1A17, 0x1A18},
{0x1A1B, 0x1A1B}, {0x1A56, 0x1A56}, {0x1A58, 0x1A5E}, {0x1A60, 0x1A60}, {0x1A62, 0x1A62}, {0x1A65, 0x1A6C},
{0x1A73, 0x1A7C}, {0x1A7F, 0x1A7F}, {0x1AA7, 0x1AA7}, {0x1AB0, 0x1ACE}, {0x1B00, 0x1B03}, {0x1B34, 0x1B34},
{0x1B36, 0x1B3A}, {0x1B3C, 0x1B3C}, {0x1B42, 0x1B42}, {0x1B6B, 0x1B73}, {0x1B80, 0x1B81}, {0x1BA2, 0x1BA5},
{0x1BA8, 0x1BA9}, {0x1BAB, 0x1BAD}, {0x1BE6, 0x1BE6}, {0x1BE8, 0x1BE9}, {0x1BED, 0x1BED}, {0x1BEF, 0x1BF1},
{0x1C2C, 0x1C33}, {0x1C36, 0x1C37}, {0x1C78, 0x1C7D}, {0x1CD0, 0x1CD2}, {0x1CD4, 0x1CE0}, {0x1CE2, 0x1CE8},
{0x1CED, 0x1CED}, {0x1CF4, 0x1CF4}, {0x1CF8, 0x1CF9}, {0x1D2C, 0x1D6A}, {0x1D78, 0x1D78}, {0x1D9B, 0x1DFF},
{0x1FBD, 0x1FBD}, {0x1FBF, 0x1FC1}, {0x1FCD, 0x1FCF}, {0x1FDD, 0x1FDF}, {0x1FED, 0x1FEF}, {0x1FFD, 0x1FFE},
{0x200B, 0x200F}, {0x2018, 0x2019}, {0x2024, 0x2024}, {0x2027, 0x2027}, {0x202A, 0x202E}, {0x2060, 0x2064},
{0x2066, 0x206F}, {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x20D0, 0x20F0}, {0x2C7C, 0x2C7D},
{0x2CEF, 0x2CF1}, {0x2D6F, 0x2D6F}, {0x2D7F, 0x2D7F}, {0x2DE0, 0x2DFF}, {0x2E2F, 0x2E2F}, {0x3005, 0x3005},
{0x302A, 0x302D}, {0x3031, 0x3035}, {0x303B, 0x303B}, {0x3099, 0x309E}, {0x30FC, 0x30FE}, {0xA015, 0xA015},
{0xA4F8, 0xA4FD}, {0xA60C, 0xA60C}, {0xA66F, 0xA672}, {0xA674, 0xA67D}, {0xA67F, 0xA67F}, {0xA69C, 0xA69F},
{0xA6F0, 0xA6F1}, {0xA700, 0xA721}, {0xA770, 0xA770}, {0xA788, 0xA78A}, {0xA7F2, 0xA7F4}, {0xA7F8, 0xA7F9},
{0xA802, 0xA802}, {0xA806, 0xA806}, {0xA80B, 0xA80B}, {0xA825, 0xA826}, {0xA82C, 0xA82C}, {0xA8C4, 0xA8C5},
{0xA8E0, 0xA8F1}, {0xA8FF, 0xA8FF}, {0xA926, 0xA92D}, {0xA947, 0xA951}, {0xA980, 0xA982}, {0xA9B3, 0xA9B3},
{0xA9B6, 0xA9B9}, {0xA9BC, 0xA9BD}, {0xA9CF, 0xA9CF}, {0xA9E5, 0xA9E6}, {0xAA29, 0xAA2E}, {0xAA31, 0xAA32},
{0xAA35, 0xAA36}, {0xAA43, 0xAA43}, {0xAA4C, 0xAA4C}, {0xAA70, 0xAA70}, {0xAA7C, 0xAA7C}, {0xAAB0, 0xAAB0},
{0xAAB2, 0xAAB4}, {0xAAB7, 0xAAB8}, {0xAABE, 0xAABF}, {0xAAC1, 0xAAC1}, {0xAADD, 0xAADD}, {0xAAEC, 0xAAED},
{0xAAF3, 0xAAF4}, {0xAAF6, 0xAAF6}, {0xAB5B, 0xAB5F}, {0xAB69, 0xAB6B}, {0xABE5, 0xABE5}, {0xABE8, 0xABE8},
{0xABED, 0xABED}, {0xFB1E, 0xFB1E}, {0xFBB2, 0xFBC2}, {0xFE00, 0xFE0F}, {0xFE13, 0xFE13}, {0xFE20, 0xFE2F},
{0xFE52, 0xFE52}, {0xFE55, 0xFE55}, {0xFEFF, 0xFEFF}, {0xFF07, 0xFF07}, {0xFF0E, 0xFF0E}, {0xFF1A, 0xFF1A},
{0xFF3E, 0xFF3E}, {0xFF40, 0xFF40}, {0xFF70, 0xFF70}, {0xFF9E, 0xFF9F}, {0xFFE3, 0xFFE3}, {0xFFF9, 0xFFFB},
{0x101FD, 0x101FD}, {0x102E0, 0x102E0}, {0x10376, 0x1037A}, {0x10780, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA},
{0x10A01, 0x10A03}, {0x10A05, 0x10A06}, {0x10A0C, 0x10A0F}, {0x10A38, 0x10A3A}, {0x10A3F, 0x10A3F}, {0x10AE5, 0x10AE6},
{0x10D24, 0x10D27}, {0x10EAB, 0x10EAC}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85}, {0x11001, 0x11001}, {0x11038, 0x11046},
{0x11070, 0x11070}, {0x11073, 0x11074}, {0x1107F, 0x11081}, {0x110B3, 0x110B6}, {0x110B9, 0x110BA}, {0x110BD, 0x110BD},
{0x110C2, 0x110C2}, {0x110CD, 0x110CD}, {0x11100, 0x11102}, {0x11127, 0x1112B}, {0x1112D, 0x11134}, {0x11173, 0x11173},
{0x11180, 0x11181}, {0x111B6, 0x111BE}, {0x111C9, 0x111CC}, {0x111CF, 0x111CF}, {0x1122F, 0x11231}, {0x11234, 0x11234},
{0x11236, 0x11237}, {0x1123E, 0x1123E}, {0x112DF, 0x112DF}, {0x112E3, 0x112EA}, {0x11300, 0x11301}, {0x1133B, 0x1133C},
{0x11340, 0x11340}, {0x11366, 0x1136C}, {0x11370, 0x11374}, {0x11438, 0x1143F}, {0x11442, 0x11444}, {0x11446, 0x11446},
{0x1145E, 0x1145E}, {0x114B3, 0x114B8}, {0x114BA, 0x114BA}, {0x114BF, 0x114C0}, {0x114C2, 0x114C3}, {0x115B2, 0x115B5},
{0x115BC, 0x115BD}, {0x115BF, 0x115C0}, {0x115DC, 0x115DD}, {0x11633, 0x1163A}, {0x1163D, 0x1163D}, {0x1163F, 0x11640},
{0x116AB, 0x116AB}, {0x116AD, 0x116AD}, {0x116B0, 0x116B5}, {0x116B7, 0x116B7}, {0x1171D, 0x1171F}, {0x11722, 0x11725},
{0x11727, 0x1172B}, {0x1182F, 0x11837}, {0x11839, 0x1183A}, {0x1193B, 0x1193C}, {0x1193E, 0x1193E}, {0x11943, 0x11943},
{0x119D4, 0x119D7}, {0x119DA, 0x119DB}, {0x119E0, 0x119E0}, {0x11A01, 0x11A0A}, {0x11A33, 0x11A38}, {0x11A3B, 0x11A3E},
{0x11A47, 0x11A47}, {0x11A51, 0x11A56}, {0x11A59, 0x11A5B}, {0x11A8A, 0x11A96}, {0x11A98, 0x11A99}, {0x11C30, 0x11C36},
{0x11C38, 0x11C3D}, {0x11C3F, 0x11C3F}, {0x11C92, 0x11CA7}, {0x11CAA, 0x11CB0}, {0x11CB2, 0x11CB3}, {0x11CB5, 0x11CB6},
{0x11D31, 0x11D36}, {0x11D3A, 0x11D3A}, {0x11D3C, 0x11D3D}, {0x11D3F, 0x11D45}, {0x11D47, 0x11D47}, {0x11D90, 0x11D91},
{0x11D95, 0x11D95}, {0x11D97, 0x11D97}, {0x11EF3, 0x11EF4}, {0x13430, 0x13438}, {0x16AF0, 0x16AF4}, {0x16B30, 0x16B36},
{0x16B40, 0x16B43}, {0x16F4F, 0x16F4F}, {0x16F8F, 0x16F9F}, {0x16FE0, 0x16FE1}, {0x16FE3, 0x16FE4}, {0x1AFF0, 0x1AFF3},
{0x1AFF5, 0x1AFFB}, {0x1AFFD, 0x1AFFE}, {0x1BC9D, 0x1BC9E}, {0x1BCA0, 0x1BCA3}, {0x1CF00, 0x1CF2D}, {0x1CF30, 0x1CF46},
{0x1D167, 0x1D169}, {0x1D173, 0x1D182}, {0x1D185, 0x1D18B}, {0x1D1AA, 0x1D1AD}, {0x1D242, 0x1D244}, {0x1DA00, 0x1DA36},
{0x1DA3B, 0x1DA6C}, {0x1DA75, 0x1DA75}, {0x1DA84, 0x1DA84}, {0x1DA9B, 0x1DA9F}, {0x1DAA1, 0x1DAAF}, {0x1E000, 0x1E006},
{0x1E008, 0x1E018}, {0x1E01B, 0x1E021}, {0x1E023, 0x1E024}, {0x1E026, 0x1E02A}, {0x1E130, 0x1E13D}, {0x1E2AE, 0x1E2AE},
{0x1E2EC, 0x1E2EF}, {0x1E8D0, 0x1E8D6}, {0x1E944, 0x1E94B}, {0x1F3FB, 0x1F3FF}, {0xE0001, 0xE0001}, {0xE0020, 0xE007F},
{0xE0100, 0xE01EF}};

bool in_ranges(const html::CodePointRange* ranges, size_t count, char32_t c) {
  const html::CodePointRange* end = ranges + count;
  const html::CodePointRange* it =
      std::upper_bound(ranges, end, c, [](char32_t v, const html::CodePointRange& r) { return v < r.first; });
  return it != ranges && c <= (it - 1)->last;
}

bool is_cased(char32_t c) {
  auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT ||
         in_ranges(kExtraCased, sizeof(kExtraCased) / sizeof(kExtraCased[0]), c);
}
bool is_case_ignorable(char32_t c) {
  return in_ranges(kCaseIgnorable, sizeof(kCaseIgnorable) / sizeof(kCaseIgnorable[0]), c);
}

// Full lowercase as Python does it: U+0130 -> "i̇", capital sigma -> final
// sigma at the end of a word (Final_Sigma context), simple mapping otherwise.
std::u32string python_lower(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    char32_t c = s[i];
    if (c == 0x130) {
      out += U"i\u0307";
    } else if (c == 0x3A3) {
      // \p{cased} \p{case-ignorable}* Σ !(\p{case-ignorable}* \p{cased})
      size_t j = i;
      bool before = false;
      while (j > 0) {
        --j;
        if (is_case_ignorable(s[j])) continue;
        before = is_cased(s[j]);
        break;
      }
      bool after = false;
      for (size_t k = i + 1; k < s.size(); ++k) {
        if (is_case_ignorable(s[k])) continue;
        after = is_cased(s[k]);
        break;
      }
      out.push_back(before && !after ? char32_t(0x3C2) : char32_t(0x3C3));
    } else {
      out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
    }
  }
  return out;
}

std::u32string strip_python(const std::u32string& s) {
  size_t begin = 0, end = s.size();
  while (begin < end && is_python_space(s[begin])) ++begin;
  while (end > begin && is_python_space(s[end - 1])) --end;
  return s.substr(begin, end - begin);
}

// basic_clean's strip, then whitespace_clean: every run of White_Space
// becomes one space, strip again.
std::u32string whitespace_clean(const std::u32string& text) {
  std::u32string s = strip_python(text);
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    if (is_white_space(s[i])) {
      out.push_back(U' ');
      while (i < s.size() && is_white_space(s[i])) ++i;
    } else {
      out.push_back(s[i++]);
    }
  }
  return strip_python(out);
}

// ----------------------------------------------------------- BPE data ----

// bytes_to_unicode (specs §7.1): printable bytes map to themselves, the 68
// others to U+0100 upwards. Returns the byte -> code point map and the table
// order (the order of the first 256 vocabulary entries).
void byte_table(char32_t byte_to_cp[256], std::vector<uint8_t>* table_order) {
  std::vector<bool> printable(256, false);
  for (int b = 33; b <= 126; ++b) printable[b] = true;
  for (int b = 161; b <= 172; ++b) printable[b] = true;
  for (int b = 174; b <= 255; ++b) printable[b] = true;
  table_order->clear();
  for (int b = 0; b < 256; ++b)
    if (printable[b]) {
      byte_to_cp[b] = static_cast<char32_t>(b);
      table_order->push_back(static_cast<uint8_t>(b));
    }
  int next = 0;
  for (int b = 0; b < 256; ++b)
    if (!printable[b]) {
      byte_to_cp[b] = static_cast<char32_t>(256 + next++);
      table_order->push_back(static_cast<uint8_t>(b));
    }
}

const char* kEndOfWord = "</w>";
const char* kStartToken = "<|startoftext|>";
const char* kEndToken = "<|endoftext|>";
// merges used from the real file: lines 1 .. 49152-256-2 (specs §7.2).
constexpr size_t kMaxMerges = 49152 - 256 - 2;

std::string gunzip(const std::vector<uint8_t>& data, const std::string& path) {
  z_stream stream{};
  check(inflateInit2(&stream, 16 + MAX_WBITS) == Z_OK, ErrorCode::kInternal, "zlib init failed");
  std::string out;
  stream.next_in = const_cast<Bytef*>(data.data());
  stream.avail_in = static_cast<uInt>(data.size());
  char buffer[1 << 16];
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    stream.next_out = reinterpret_cast<Bytef*>(buffer);
    stream.avail_out = sizeof(buffer);
    rc = inflate(&stream, Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END) {
      std::string why = stream.msg ? stream.msg : (rc == Z_BUF_ERROR ? "truncated data" : "bad data");
      inflateEnd(&stream);
      throw Error(ErrorCode::kCorruptFile, "CLIP vocabulary " + path + " is not a valid gzip file: " + why);
    }
    out.append(buffer, sizeof(buffer) - stream.avail_out);
  }
  inflateEnd(&stream);
  return out;
}

std::vector<uint8_t> gzip_bytes(const std::string& text) {
  z_stream stream{};
  check(deflateInit2(&stream, 9, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) == Z_OK,
        ErrorCode::kInternal, "zlib init failed");
  std::vector<uint8_t> out(deflateBound(&stream, text.size()) + 64);
  stream.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
  stream.avail_in = static_cast<uInt>(text.size());
  stream.next_out = out.data();
  stream.avail_out = static_cast<uInt>(out.size());
  int rc = deflate(&stream, Z_FINISH);
  deflateEnd(&stream);
  check(rc == Z_STREAM_END, ErrorCode::kInternal, "gzip compression failed");
  out.resize(stream.total_out);
  return out;
}

}  // namespace

// ----------------------------------------------------------- Tokenizer ---

struct Tokenizer::Regex {
  pcre2_code* code = nullptr;
  Regex() {
    // specs §7.4; case-insensitive like the reference (re.IGNORECASE). One
    // quirk of Python's regex module is reproduced: with IGNORECASE it matches
    // U+0345 (whose case folding is the letter iota) by none of the classes,
    // so findall drops it; PCRE2 would put it in the last class.
    static const char* kPattern =
        "<\\|startoftext\\|>|<\\|endoftext\\|>|'s|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}\\x{345}]+";
    int error = 0;
    PCRE2_SIZE offset = 0;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(kPattern), PCRE2_ZERO_TERMINATED,
                         PCRE2_UTF | PCRE2_UCP | PCRE2_CASELESS, &error, &offset, nullptr);
    check(code != nullptr, ErrorCode::kInternal, "cannot compile the CLIP pre-tokenizer regex");
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back to the interpreter
  }
  ~Regex() { pcre2_code_free(code); }

  // re.findall: non-overlapping matches, left to right.
  std::vector<std::string> find_all(const std::string& text) const {
    std::vector<std::string> tokens;
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(code, nullptr);
    PCRE2_SIZE offset = 0;
    while (offset < text.size()) {
      int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), offset,
                           PCRE2_NO_UTF_CHECK, match, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
      tokens.emplace_back(text.substr(ovector[0], ovector[1] - ovector[0]));
      offset = ovector[1] > ovector[0] ? ovector[1] : ovector[0] + 1;
    }
    pcre2_match_data_free(match);
    return tokens;
  }
};

Tokenizer::Tokenizer() = default;
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

Tokenizer Tokenizer::load(const std::string& vocab_gz_path) {
  std::vector<uint8_t> compressed;
  try {
    compressed = read_file(vocab_gz_path);
  } catch (const Error& e) {
    throw Error(e.code(), "CLIP vocabulary (BPE merges .txt.gz) not found or unreadable: " + vocab_gz_path);
  }
  std::string text = gunzip(compressed, vocab_gz_path);

  Tokenizer tokenizer;
  tokenizer.regex_ = std::make_unique<Regex>();
  char32_t byte_to_cp[256];
  std::vector<uint8_t> order;
  byte_table(byte_to_cp, &order);
  for (int b = 0; b < 256; ++b) {
    tokenizer.byte_to_unicode_[b].clear();
    append_utf8(tokenizer.byte_to_unicode_[b], byte_to_cp[b]);
  }
  std::vector<std::string>& vocab = tokenizer.id_to_token_;
  for (uint8_t b : order) vocab.push_back(tokenizer.byte_to_unicode_[b]);
  for (uint8_t b : order) vocab.push_back(tokenizer.byte_to_unicode_[b] + kEndOfWord);

  // Line 0 is a header; then one "a b" merge per line.
  size_t pos = text.find('\n');
  check(pos != std::string::npos, ErrorCode::kCorruptFile,
        "CLIP vocabulary " + vocab_gz_path + " has no merges (expected a header line then 'a b' lines)");
  ++pos;
  size_t line_number = 1;
  while (pos < text.size() && line_number <= kMaxMerges) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    size_t space = line.find(' ');
    bool ok = space != std::string::npos && space > 0 && space + 1 < line.size() &&
              line.find(' ', space + 1) == std::string::npos;
    if (!ok) {
      if (line.empty() && pos >= text.size()) break;  // final newline
      throw Error(ErrorCode::kCorruptFile, "CLIP vocabulary " + vocab_gz_path + " line " +
                                               std::to_string(line_number + 1) +
                                               ": expected two space-separated symbols 'a b'");
    }
    tokenizer.merge_rank_[line] = static_cast<int64_t>(line_number - 1);
    vocab.push_back(line.substr(0, space) + line.substr(space + 1));
    ++line_number;
  }
  vocab.push_back(kStartToken);
  vocab.push_back(kEndToken);
  // Like the reference's dict(zip(vocab, ids)): a repeated string keeps its last id.
  for (size_t id = 0; id < vocab.size(); ++id) tokenizer.token_to_id_[vocab[id]] = static_cast<int64_t>(id);
  return tokenizer;
}

std::string Tokenizer::clean(const std::string& text) const {
  std::u32string s = ftfy_fix_text(utf8_to_u32(text));
  s = python_html_unescape(python_html_unescape(s));
  s = whitespace_clean(s);
  return u32_to_utf8(python_lower(s));
}

std::vector<std::string> Tokenizer::bpe(const std::string& token) const {
  if (token == kStartToken || token == kEndToken) return {token};
  // Split into code points (table characters), "</w>" on the last one.
  std::vector<std::string> word;
  for (size_t i = 0; i < token.size();) {
    size_t len = 1;
    unsigned char c = static_cast<unsigned char>(token[i]);
    if (c >= 0xF0) len = 4;
    else if (c >= 0xE0) len = 3;
    else if (c >= 0xC0) len = 2;
    word.push_back(token.substr(i, len));
    i += len;
  }
  if (word.empty()) return {};
  word.back() += kEndOfWord;
  while (word.size() > 1) {
    int64_t best_rank = INT64_MAX;
    size_t best = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = merge_rank_.find(word[i] + ' ' + word[i + 1]);
      if (it != merge_rank_.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i;
      }
    }
    if (best_rank == INT64_MAX) break;
    const std::string first = word[best], second = word[best + 1];
    std::vector<std::string> merged;
    merged.reserve(word.size());
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word.swap(merged);
  }
  return word;
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const std::string& token : regex_->find_all(clean(text))) {
    std::string mapped;
    for (unsigned char b : token) mapped += byte_to_unicode_[b];
    for (const std::string& symbol : bpe(mapped)) {
      auto it = token_to_id_.find(symbol);
      check(it != token_to_id_.end(), ErrorCode::kCorruptFile,
            "CLIP vocabulary has no entry for BPE symbol '" + symbol + "' (incomplete merges file?)");
      ids.push_back(it->second);
    }
  }
  return ids;
}

std::vector<int64_t> Tokenizer::tokenize_row(const std::string& text, bool truncate) const {
  std::vector<int64_t> ids = encode(text);
  const size_t max_ids = kContextLength - 2;
  if (ids.size() > max_ids) {
    if (!truncate) {
      throw Error(ErrorCode::kInvalidArgument,
                  "text is too long for CLIP's context length 77: " + std::to_string(ids.size()) +
                      " tokens, at most 75 fit (" + quote_text(text) + ")");
    }
    ids.resize(max_ids);
  }
  std::vector<int64_t> row(kContextLength, 0);
  row[0] = start_id();
  std::copy(ids.begin(), ids.end(), row.begin() + 1);
  row[ids.size() + 1] = end_id();
  return row;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids) const {
  std::unordered_map<std::string, uint8_t> unicode_to_byte;
  for (int b = 0; b < 256; ++b) unicode_to_byte[byte_to_unicode_[b]] = static_cast<uint8_t>(b);
  std::string joined;
  for (int64_t id : ids) {
    check(id >= 0 && id < vocab_size(), ErrorCode::kInvalidArgument,
          "token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(vocab_size() - 1) + ")");
    joined += id_to_token_[id];
  }
  std::string out;
  for (size_t i = 0; i < joined.size();) {
    if (joined.compare(i, 4, kEndOfWord) == 0) {
      out += ' ';
      i += 4;
      continue;
    }
    size_t len = 1;
    unsigned char c = static_cast<unsigned char>(joined[i]);
    if (c >= 0xF0) len = 4;
    else if (c >= 0xE0) len = 3;
    else if (c >= 0xC0) len = 2;
    auto it = unicode_to_byte.find(joined.substr(i, len));
    if (it != unicode_to_byte.end()) out += static_cast<char>(it->second);
    else out += joined.substr(i, len);  // special tokens are plain ASCII
    i += len;
  }
  return out;
}

// ------------------------------------------------------- demo vocabulary -

namespace {
// The text the demo merges are learned from: the words feu's demo prompts
// and the 79 prompt templates use, so that they become short token sequences.
const char* kDemoCorpus =
    "a photo of a face with blond hair. a photo of a face with black hair. a photo of a face with brown hair. "
    "a photo of a face with red hair, grey hair, white hair, curly hair, straight hair, wavy hair, long hair, short hair. "
    "a smiling woman. a smiling man. a face with a smile. an angry face. a sad face. a surprised face with an open mouth. "
    "a happy person. a young person. an old person. an old woman wearing glasses. a young boy. a young girl. a child. "
    "a man with a beard. a man with a mustache. a bald man. a woman with heavy makeup and earrings and lipstick. "
    "a face with big eyes, blue eyes, green eyes, brown eyes, closed eyes. a face with bangs. a face with a hat. "
    "a person with sunglasses. a person with a double chin. a tanned face. a pale face. a face with freckles. "
    "a bad photo of a face. a photo of many faces. a sculpture of a face. a photo of the hard to see face. "
    "a low resolution photo of the face. a rendering of a face. graffiti of a face. a cropped photo of the face. "
    "a tattoo of a face. the embroidered face. a bright photo of a face. a photo of a clean face. a photo of a dirty face. "
    "a dark photo of the face. a drawing of a face. a photo of my face. the plastic face. a photo of the cool face. "
    "a close-up photo of a face. a black and white photo of the face. a painting of the face. a pixelated photo of the face. "
    "a jpeg corrupted photo of a face. a blurry photo of the face. a good photo of the face. a photo of one face. "
    "a doodle of a face. a close-up photo of the face. the origami face. the face in a video game. a sketch of a face. "
    "a origami face. a low resolution photo of a face. the toy face. a rendition of the face. a cartoon face. "
    "art of a face. a photo of the large face. a photo of a nice face. a photo of a weird face. a drawing of the face. "
    "a photo of the small face. itap of a face. a plushie face. a photo of the weird face. a embroidered face. "
    "the cartoon face. art of the face. a plastic face. a photo of the big face. a face in a video game. "
    "a tattoo of the face. a black and white photo of a face. a photo of a hard to see face. a painting of a face. "
    "a pixelated photo of a face. a sculpture of the face. a bright photo of the face. a cropped photo of a face. "
    "a jpeg corrupted photo of the face. a blurry photo of a face. a good photo of a face. a rendering of the face. "
    "a face in a video game. a photo of one face. a doodle of the face. a close-up photo of the face. "
    "a photo of the face. the origami face. the face in a video game. a sketch of the face. a doodle of a face. "
    "a origami face. a low resolution photo of a face. the toy face. a rendition of a face. a photo of the clean face. "
    "a photo of a large face. a rendition of a face. a photo of a nice face. a photo of a weird face. a cartoon face. "
    "art of a face. a sketch of a face. a embroidered face. a pixelated photo of a face. itap of the face. "
    "a jpeg corrupted photo of a face. a good photo of a face. a plushie face. a photo of the nice face. "
    "a photo of the small face. a photo of the weird face. the cartoon face. art of the face. a drawing of the face. "
    "a photo of the large face. a black and white photo of a face. the plushie face. a dark photo of a face. "
    "itap of a face. graffiti of the face. a toy face. itap of my face. a photo of a cool face. a photo of a small face. "
    "a tattoo of the face. there is a face in the scene. there is the face in the scene. this is a face in the scene. "
    "this is the face in the scene. this is one face in the scene. feu edits faces with text: make the person older, "
    "younger, happier, add a beard, remove the glasses, change the hair color, the eyes, the nose, the lips, the skin.";

// Learns `max_merges` byte-level BPE merges from word counts (classic BPE:
// repeatedly merge the most frequent adjacent pair; ties by the pair's text).
std::vector<std::pair<std::string, std::string>> learn_merges(
    const std::map<std::vector<std::string>, int64_t>& word_counts, size_t max_merges) {
  std::vector<std::pair<std::vector<std::string>, int64_t>> words(word_counts.begin(), word_counts.end());
  std::set<std::string> symbols;
  for (const auto& [word, count] : words) symbols.insert(word.begin(), word.end());
  std::vector<std::pair<std::string, std::string>> merges;
  while (merges.size() < max_merges) {
    std::map<std::pair<std::string, std::string>, int64_t> pair_counts;
    for (const auto& [word, count] : words)
      for (size_t i = 0; i + 1 < word.size(); ++i) pair_counts[{word[i], word[i + 1]}] += count;
    const std::pair<std::string, std::string>* best = nullptr;
    int64_t best_count = 1;  // a merge must be seen at least twice
    for (const auto& [pair, count] : pair_counts) {
      // A pair whose concatenation is already a symbol would duplicate a vocabulary entry.
      if (count > best_count && !symbols.count(pair.first + pair.second)) {
        best = &pair;
        best_count = count;
      }
    }
    if (!best) break;
    const auto chosen = *best;
    merges.push_back(chosen);
    symbols.insert(chosen.first + chosen.second);
    for (auto& [word, count] : words) {
      std::vector<std::string> merged;
      for (size_t i = 0; i < word.size();) {
        if (i + 1 < word.size() && word[i] == chosen.first && word[i + 1] == chosen.second) {
          merged.push_back(chosen.first + chosen.second);
          i += 2;
        } else {
          merged.push_back(word[i++]);
        }
      }
      word.swap(merged);
    }
  }
  return merges;
}
}  // namespace

void Tokenizer::write_demo_vocab(const std::string& path) {
  // A tokenizer without merges cleans and pre-tokenizes like the real one.
  Tokenizer base;
  base.regex_ = std::make_unique<Regex>();
  char32_t byte_to_cp[256];
  std::vector<uint8_t> order;
  byte_table(byte_to_cp, &order);
  for (int b = 0; b < 256; ++b) append_utf8(base.byte_to_unicode_[b], byte_to_cp[b]);

  std::map<std::vector<std::string>, int64_t> word_counts;
  for (const std::string& token : base.regex_->find_all(base.clean(kDemoCorpus))) {
    std::string mapped;
    for (unsigned char b : token) mapped += base.byte_to_unicode_[b];
    std::vector<std::string> word = base.bpe(mapped);  // no merges: characters, "</w>" on the last
    ++word_counts[word];
  }
  std::string text = "#version: 0.2 feu demo vocabulary (byte-level BPE learned from a built-in text)\n";
  for (const auto& [a, b] : learn_merges(word_counts, /*max_merges=*/2000)) text += a + " " + b + "\n";
  std::vector<uint8_t> gz = gzip_bytes(text);
  write_file_atomic(path, gz.data(), gz.size());
}

}  // namespace feu::clip
