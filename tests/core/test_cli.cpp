#include <gtest/gtest.h>

#include "core/cli.h"
#include "core/error.h"

namespace feu {
namespace {

TEST(ParseIntList, ListsAndRanges) {
  EXPECT_EQ(parse_int_list("1,2,5-7", "--seeds"), (std::vector<int64_t>{1, 2, 5, 6, 7}));
  EXPECT_EQ(parse_int_list("42", "--seeds"), (std::vector<int64_t>{42}));
  EXPECT_THROW(parse_int_list("1,,2", "--seeds"), Error);
  EXPECT_THROW(parse_int_list("7-5", "--seeds"), Error);
  EXPECT_THROW(parse_int_list("x", "--seeds"), Error);
}

}  // namespace
}  // namespace feu
