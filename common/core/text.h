// User text made safe to show in one log line or one error message.
//
// Request fields, config values and prompts reach logs and replies; a newline
// in them would forge a log line, an escape sequence would drive the reader's
// terminal, a megabyte prompt would flood both. Everything a message echoes
// from outside goes through one of these.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace feu {

// How many code points of outside text a message shows by default.
inline constexpr size_t kShownCodePoints = 64;

// `text` with control characters escaped (\n, \r, \t, \x1b; C1 controls, line
// separators and bidi overrides as \u202e), bytes that are not UTF-8 as \xNN
// and '\' doubled, so the result is one printable line that reads back
// unambiguously. Past `max_code_points` it is cut and the original size is
// told: `a long prompt... (1234 bytes)`.
std::string escape_text(std::string_view text, size_t max_code_points = kShownCodePoints);

// escape_text() in double quotes (with '"' escaped), the form for naming a
// value inside a message: `unknown method "magic"`, `"a long prompt"... (1234 bytes)`.
std::string quote_text(std::string_view text, size_t max_code_points = kShownCodePoints);

}  // namespace feu
