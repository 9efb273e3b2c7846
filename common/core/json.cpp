#include "core/json.h"

#include "core/text.h"

namespace feu {

std::optional<nlohmann::json> parse_outside_json(std::string_view text, std::string* why) {
  bool too_deep = false;
  // Values below the limit are dropped as they are met (returning false), so none is built.
  const nlohmann::json::parser_callback_t limit_depth = [&too_deep](int depth, nlohmann::json::parse_event_t,
                                                                     nlohmann::json&) {
    if (depth > kMaxJsonDepth) too_deep = true;
    return !too_deep;
  };
  nlohmann::json value;
  try {
    value = nlohmann::json::parse(text.begin(), text.end(), limit_depth);
  } catch (const nlohmann::json::exception& e) {
    // The parser's message quotes the offending bytes as they came.
    *why = "is not valid JSON: " + escape_text(e.what(), 200);
    return std::nullopt;
  }
  if (too_deep) {
    *why = "nests deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    return std::nullopt;
  }
  return value;
}

}  // namespace feu
