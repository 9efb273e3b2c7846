// JSON that comes from outside the process: a request header, an HTTP body, a daemon's reply, an
// artifact manifest read from disk or another machine.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace feu {

// nlohmann's parser is iterative, but copying and printing a value recurse once per level, so a
// text of a million '[' parses and then overflows a thread's stack at its first copy. Outside
// JSON nested deeper than this is refused; feu's own documents nest a few levels deep.
constexpr int kMaxJsonDepth = 64;

// Parses outside JSON text, or returns nullopt with *why set to "is not valid JSON: ..." or
// "nests deeper than 64 levels" (to follow the name of what was read).
std::optional<nlohmann::json> parse_outside_json(std::string_view text, std::string* why);

}  // namespace feu
