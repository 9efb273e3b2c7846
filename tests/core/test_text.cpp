// escape_text / quote_text: outside text shown in logs and messages.
#include <gtest/gtest.h>

#include "core/text.h"

namespace feu {
namespace {

TEST(Text, PlainTextAndUnicodePassThrough) {
  EXPECT_EQ(escape_text("blond hair"), "blond hair");
  EXPECT_EQ(escape_text("Ölgemälde 笑顔 🙂"), "Ölgemälde 笑顔 🙂");
  EXPECT_EQ(quote_text("smile"), "\"smile\"");
  EXPECT_EQ(quote_text(""), "\"\"");
}

TEST(Text, ControlCharactersCannotForgeALineOrDriveATerminal) {
  std::string forged = "ping\n2026-01-01T00:00:00.000 info job id=x outcome=done";
  std::string shown = escape_text(forged, 1000);
  EXPECT_EQ(shown.find('\n'), std::string::npos);
  EXPECT_EQ(shown.substr(0, 6), "ping\\n");
  EXPECT_EQ(escape_text("a\r\tb\x1b[31mred\x7f"), "a\\r\\tb\\x1b[31mred\\x7f");
  EXPECT_EQ(escape_text(std::string("nul\0byte", 8)), "nul\\x00byte");
  // C1 controls, line separators and bidi overrides are code points, not bytes.
  EXPECT_EQ(escape_text("\xc2\x9b" "2J"), "\\u009b2J");
  EXPECT_EQ(escape_text("a\xe2\x80\xa8" "b\xe2\x80\xae" "c"), "a\\u2028b\\u202ec");
}

TEST(Text, InvalidUtf8BecomesHexBytes) {
  EXPECT_EQ(escape_text("ok\xff\xfe"), "ok\\xff\\xfe");
  EXPECT_EQ(escape_text("\xe2\x80"), "\\xe2\\x80");          // a cut sequence
  EXPECT_EQ(escape_text("\xc0\xaf"), "\\xc0\\xaf");          // overlong '/'
  EXPECT_EQ(escape_text("\xed\xa0\x80"), "\\xed\\xa0\\x80");  // a UTF-16 surrogate
}

TEST(Text, BackslashesAndQuotesReadBackUnambiguously) {
  EXPECT_EQ(escape_text("a\\nb"), "a\\\\nb");  // a literal backslash-n is not a newline
  EXPECT_EQ(escape_text("say \"hi\""), "say \"hi\"");
  EXPECT_EQ(quote_text("say \"hi\""), "\"say \\\"hi\\\"\"");
}

TEST(Text, LongTextIsCutToAPrefixNamingItsSize) {
  std::string prompt(5000, 'a');
  EXPECT_EQ(escape_text(prompt, 4), "aaaa... (5000 bytes)");
  EXPECT_EQ(quote_text(prompt, 4), "\"aaaa\"... (5000 bytes)");
  EXPECT_LT(quote_text(prompt).size(), 100u);
  // Cut by code points: a multi-byte character is never split.
  EXPECT_EQ(escape_text("笑顔笑顔", 2), "笑顔... (12 bytes)");
  EXPECT_EQ(escape_text("abcd", 4), "abcd");
}

}  // namespace
}  // namespace feu
