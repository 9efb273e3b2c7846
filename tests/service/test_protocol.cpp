// Protocol parsing: every malformed input becomes a typed error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "service/protocol.h"

namespace feu::service {
namespace {

std::string code_of(const std::vector<Frame>& frames, const Limits& limits = Limits()) {
  try {
    parse_request(frames, limits);
  } catch (const ProtocolError& e) {
    return e.code();
  }
  return "ok";
}

Frame floats(const std::vector<float>& values) {
  return Frame(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
}

TEST(Protocol, EditRequestRoundTripsThroughTheWire) {
  edit::EditRequest e;
  e.instruction = "blond hair";
  e.method = edit::Method::kGlobal;
  e.neutral = "face";
  e.latent_kind = edit::LatentKind::kWPlus;
  e.latent = {0.5f, -1.25f, 3.0f, 0.0f};
  e.alphas = {-3, 0, 3};
  e.beta = 0.12;
  e.k_pos = 50;
  e.negatives = "random";
  e.format = edit::ImageFormat::kJpeg;
  e.return_original = true;
  e.grid = true;
  Request r = parse_request(to_frames(make_edit_request("job-1", e, 5000)), Limits());
  EXPECT_EQ(r.type, RequestType::kEdit);
  EXPECT_EQ(r.id, "job-1");
  EXPECT_EQ(r.edit.instruction, "blond hair");
  EXPECT_EQ(r.edit.method, edit::Method::kGlobal);
  EXPECT_EQ(r.edit.neutral, "face");
  EXPECT_EQ(r.edit.latent_kind, edit::LatentKind::kWPlus);
  EXPECT_EQ(r.edit.latent, e.latent);
  EXPECT_EQ(r.edit.alphas, e.alphas);
  EXPECT_DOUBLE_EQ(*r.edit.beta, 0.12);
  EXPECT_EQ(*r.edit.k_pos, 50);
  EXPECT_FALSE(r.edit.k_neg.has_value());
  EXPECT_EQ(*r.edit.negatives, "random");
  EXPECT_EQ(r.edit.format, edit::ImageFormat::kJpeg);
  EXPECT_TRUE(r.edit.return_original);
  EXPECT_FALSE(r.edit.return_styles);
  EXPECT_TRUE(r.edit.grid);
  EXPECT_EQ(*r.deadline_ms, 5000);
  EXPECT_EQ(r.digest.size(), 64u);
}

TEST(Protocol, DigestIgnoresIdAndDeadlineButNotContent) {
  edit::EditRequest e;
  e.instruction = "smile";
  e.seed = 3;
  std::string a = parse_request(to_frames(make_edit_request("a", e, 100)), Limits()).digest;
  std::string b = parse_request(to_frames(make_edit_request("b", e)), Limits()).digest;
  e.seed = 4;
  std::string c = parse_request(to_frames(make_edit_request("a", e, 100)), Limits()).digest;
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
}

TEST(Protocol, BetaAutoAndDefaults) {
  Request r = parse_request({R"({"type":"edit","id":"x","instruction":"old","beta":"auto"})"}, Limits());
  EXPECT_TRUE(r.edit.beta_auto);
  EXPECT_EQ(r.edit.latent_kind, edit::LatentKind::kSeed);
  EXPECT_EQ(r.edit.method, edit::Method::kFeu);
  EXPECT_FALSE(r.deadline_ms.has_value());
}

TEST(Protocol, MalformedInputGetsTypedErrors) {
  EXPECT_EQ(code_of({}), codes::kBadRequest);
  EXPECT_EQ(code_of({"not json"}), codes::kBadRequest);
  EXPECT_EQ(code_of({std::string("\xff\xfe\x00\x01", 4)}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"([1,2])"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"id":"x"})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"explode","id":"x"})"}), codes::kUnknownType);
  EXPECT_EQ(code_of({R"({"type":7})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"ping","v":2})"}), codes::kUnsupportedVersion);
  EXPECT_EQ(code_of({R"({"type":"ping","colour":"red"})"}), codes::kUnknownField);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","alpha":3})"}), codes::kUnknownField);
  EXPECT_EQ(code_of({R"({"type":"edit","instruction":"a"})"}), codes::kBadRequest);         // no id
  EXPECT_EQ(code_of({R"({"type":"edit","id":"","instruction":"a"})"}), codes::kBadRequest); // empty id
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":""})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":5})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","seed":"42"})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","seed":1.5})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","alphas":3})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","alphas":[]})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","alphas":["1"]})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","beta":"high"})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","method":"magic"})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","format":"gif"})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","k_pos":0})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","deadline_ms":-1})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","grid":"yes"})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","seed":99999999999999999999})"}),
            codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"ping"})", "payload"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"retrieve","text":"a","k":0})"}), codes::kBadRequest);
}

TEST(Protocol, LatentPayloadsAreChecked) {
  std::string w = R"({"type":"edit","id":"x","instruction":"a","latent":"w"})";
  EXPECT_EQ(code_of({w, floats({1, 2, 3})}), "ok");
  EXPECT_EQ(code_of({w}), codes::kBadRequest);                            // missing payload
  EXPECT_EQ(code_of({w, floats({1}), floats({2})}), codes::kBadRequest);  // extra payload
  EXPECT_EQ(code_of({w, std::string("abcde")}), codes::kBadRequest);     // not whole floats
  EXPECT_EQ(code_of({w, std::string()}), codes::kBadRequest);
  EXPECT_EQ(code_of({w, floats({1, NAN, 3})}), "invalid_argument");
  EXPECT_EQ(code_of({w, floats({INFINITY})}), "invalid_argument");
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","latent":"w","seed":1})", floats({1})}),
            codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","latent":"z"})"}), codes::kBadRequest);
}

TEST(Protocol, SizeLimitsApplyToEveryFrameAndField) {
  Limits limits;
  limits.max_header_bytes = 200;
  limits.max_payload_bytes = 16;
  limits.max_text_bytes = 10;
  limits.max_frames = 3;
  limits.max_alphas = 2;
  EXPECT_EQ(code_of({std::string(201, ' ')}, limits), codes::kPayloadTooLarge);
  std::string w = R"({"type":"edit","id":"x","instruction":"a","latent":"w"})";
  EXPECT_EQ(code_of({w, floats(std::vector<float>(5))}, limits), codes::kPayloadTooLarge);
  EXPECT_EQ(code_of({w, "a", "b", "c"}, limits), codes::kPayloadTooLarge);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"abcdefghijk"})"}, limits), codes::kPayloadTooLarge);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","alphas":[1,2,3]})"}, limits),
            codes::kPayloadTooLarge);
  EXPECT_EQ(code_of({R"({"type":"result","id":")" + std::string(129, 'a') + R"("})"}), codes::kPayloadTooLarge);
}

TEST(Protocol, SalvageIdNamesTheRequestOfAnError) {
  EXPECT_EQ(salvage_id(R"({"type":"edit","id":"j7","alphas":"x"})", Limits()), "j7");
  EXPECT_EQ(salvage_id("garbage", Limits()), "");
  EXPECT_EQ(salvage_id(R"({"id":5})", Limits()), "");
}

TEST(Protocol, DoneReplyCarriesImagesAndStylesAsFrames) {
  edit::EditResult result;
  for (double alpha : {-2.0, 3.0}) {
    edit::EncodedImage image;
    image.bytes = {1, 2, uint8_t(alpha + 10)};
    image.width = 8;
    image.height = 9;
    image.alpha = alpha;
    result.images.push_back(image);
  }
  edit::EncodedImage original;
  original.bytes = {7, 7};
  result.original = original;
  result.edited_styles = {1.5f, 2.5f, 3.5f, 4.5f, 5.5f, 6.5f};
  result.total_channels = 3;
  result.diagnostics = {{"channels_changed", 12}};
  Message reply = edit_done_reply("j", result, {{"run_ms", 5}});
  EXPECT_EQ(reply.payloads.size(), 4u);
  edit::EditResult back = decode_edit_result(from_frames(to_frames(reply)));
  ASSERT_EQ(back.images.size(), 2u);
  EXPECT_EQ(back.images[0].bytes, result.images[0].bytes);
  EXPECT_EQ(back.images[1].bytes, result.images[1].bytes);
  EXPECT_DOUBLE_EQ(back.images[1].alpha, 3.0);
  EXPECT_EQ(back.images[0].width, 8);
  ASSERT_TRUE(back.original.has_value());
  EXPECT_EQ(back.original->bytes, original.bytes);
  EXPECT_EQ(back.edited_styles, result.edited_styles);
  EXPECT_EQ(back.total_channels, 3);
  EXPECT_EQ(back.diagnostics["channels_changed"], 12);
}

}  // namespace
}  // namespace feu::service
