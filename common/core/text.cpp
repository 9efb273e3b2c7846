#include "core/text.h"

#include <utf8proc.h>

#include <cstdio>

namespace feu {
namespace {

// Code points that break a line or reorder what a terminal shows.
bool needs_escape(int32_t cp) {
  return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f) || cp == 0x200e || cp == 0x200f ||
         (cp >= 0x2028 && cp <= 0x202e) || (cp >= 0x2066 && cp <= 0x2069);
}

void append_escaped(std::string* out, int32_t cp) {
  char buffer[16];
  switch (cp) {
    case '\n': *out += "\\n"; return;
    case '\r': *out += "\\r"; return;
    case '\t': *out += "\\t"; return;
  }
  // C0 and DEL as bytes; higher code points as \u so they never read as a
  // stray (non-UTF-8) byte.
  if (cp <= 0x7f) std::snprintf(buffer, sizeof buffer, "\\x%02x", static_cast<unsigned>(cp));
  else std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(cp));
  *out += buffer;
}

std::string escape(std::string_view text, size_t max_code_points, bool quoted) {
  std::string out;
  if (quoted) out += '"';
  const auto* bytes = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  size_t pos = 0;
  for (size_t shown = 0; pos < text.size() && shown < max_code_points; ++shown) {
    utf8proc_int32_t cp = 0;
    utf8proc_ssize_t length =
        utf8proc_iterate(bytes + pos, static_cast<utf8proc_ssize_t>(text.size() - pos), &cp);
    if (length <= 0) {
      char buffer[8];
      std::snprintf(buffer, sizeof buffer, "\\x%02x", static_cast<unsigned>(bytes[pos]));
      out += buffer;
      ++pos;
      continue;
    }
    if (cp == '\\' || (quoted && cp == '"')) {
      out += '\\';
      out += static_cast<char>(cp);
    } else if (needs_escape(cp)) {
      append_escaped(&out, cp);
    } else {
      out.append(text.data() + pos, static_cast<size_t>(length));
    }
    pos += static_cast<size_t>(length);
  }
  if (quoted) out += '"';
  if (pos < text.size()) out += "... (" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace

std::string escape_text(std::string_view text, size_t max_code_points) {
  return escape(text, max_code_points, false);
}

std::string quote_text(std::string_view text, size_t max_code_points) {
  return escape(text, max_code_points, true);
}

}  // namespace feu
