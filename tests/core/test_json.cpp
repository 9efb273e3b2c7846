// Outside JSON (core/json.h): parsed as nlohmann parses it, refused past kMaxJsonDepth levels
// before anything recurses through it.
#include <gtest/gtest.h>

#include <string>

#include "core/json.h"

namespace feu {
namespace {

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(OutsideJson, ParsesWhatNlohmannParses) {
  std::string why;
  const auto value = parse_outside_json(R"({"a": [1, {"b": null}], "c": "\u00e9"})", &why);
  ASSERT_TRUE(value.has_value()) << why;
  EXPECT_EQ(*value, nlohmann::json::parse(R"({"a": [1, {"b": null}], "c": "\u00e9"})"));
  EXPECT_EQ(parse_outside_json(nested_arrays(kMaxJsonDepth), &why)->dump(), nested_arrays(kMaxJsonDepth));
}

TEST(OutsideJson, RefusesTextNotJsonAndNestingPastTheLimit) {
  std::string why;
  EXPECT_FALSE(parse_outside_json("{\"a\": ", &why).has_value());
  EXPECT_EQ(why.rfind("is not valid JSON: ", 0), 0u) << why;
  // A million levels: refused without building them (a copy would overflow the stack).
  for (size_t depth : {size_t(kMaxJsonDepth) + 2, size_t(1'000'000)}) {
    why.clear();
    EXPECT_FALSE(parse_outside_json(nested_arrays(depth), &why).has_value()) << depth;
    EXPECT_EQ(why, "nests deeper than 64 levels");
    EXPECT_FALSE(parse_outside_json(R"({"config": )" + nested_arrays(depth) + "}", &why).has_value()) << depth;
  }
}

}  // namespace
}  // namespace feu
