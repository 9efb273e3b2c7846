// Protocol parsing: every malformed input becomes a typed error.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

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

TEST(Protocol, JsonNestedDeeperThanTheLimitIsRefusedEverywhere) {
  auto nested = [](int depth) { return std::string(depth, '[') + std::string(depth, ']'); };
  const std::string deep = R"({"type":"edit","id":"x","instruction":"a","alphas":)" + nested(30000) + "}";
  EXPECT_EQ(code_of({deep}), codes::kBadRequest);
  EXPECT_EQ(salvage_id(deep, Limits()), "");
  try {
    from_frames({R"({"status":"done","images":[],"diagnostics":)" + nested(kMaxJsonDepth + 1) + "}"});
    ADD_FAILURE() << "a reply nested deeper than the limit was accepted";
  } catch (const ProtocolError& e) {
    EXPECT_EQ(e.code(), codes::kBadRequest);
    EXPECT_STREQ(e.what(), "reply header nests deeper than 64 levels");
  }
  // At the limit, parsing works as before.
  EXPECT_EQ(parse_json(nested(kMaxJsonDepth - 1), "x").dump(), nested(kMaxJsonDepth - 1));
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","alphas":[[1]]})"}), codes::kBadRequest);
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

// Every error message is one printable line: no control byte, valid UTF-8.
void expect_one_clean_line(const std::string& message) {
  for (unsigned char c : message) EXPECT_FALSE(c < 0x20 || c == 0x7f) << "control byte in: " << message;
  EXPECT_NO_THROW(nlohmann::json(message).dump()) << "not UTF-8: " << message;  // strict by default
}

std::string message_of(const std::vector<Frame>& frames) {
  try {
    parse_request(frames, Limits());
  } catch (const ProtocolError& e) {
    return e.what();
  }
  return "ok";
}

TEST(Protocol, EchoedRequestTextIsEscapedAndCut) {
  const std::string forged = R"(\n2026-01-01T00:00:00.000 info job id=x type=edit outcome=done)";
  std::string type = message_of({R"({"type":"ping)" + forged + R"("})"});
  expect_one_clean_line(type);
  EXPECT_NE(type.find(R"("ping\n2026-01-01)"), std::string::npos) << type;

  std::string field = message_of({R"({"type":"ping","colour)" + forged + R"(":1})"});
  expect_one_clean_line(field);
  EXPECT_NE(field.find(R"("colour\n2026)"), std::string::npos) << field;

  std::string method = message_of({R"({"type":"edit","id":"x","instruction":"a","method":"\u001b[2J"})"});
  expect_one_clean_line(method);
  EXPECT_NE(method.find(R"("\x1b[2J")"), std::string::npos) << method;

  // The JSON parser quotes the offending bytes: not UTF-8 here.
  std::string json = message_of({"{\"type\":\"ping\", \xff\xfe\n}"});
  expect_one_clean_line(json);
  EXPECT_NE(json.find("\\xff"), std::string::npos) << json;

  // A long value is shown as a prefix that names its size.
  std::string long_type = message_of({R"({"type":")" + std::string(50000, 'p') + R"("})"});
  expect_one_clean_line(long_type);
  EXPECT_LT(long_type.size(), 200u);
  EXPECT_NE(long_type.find("(50000 bytes)"), std::string::npos) << long_type;
}

// A field that names one of a few choices is wrong, not too large, however
// long its value: the error names the choices.
TEST(Protocol, AChoiceFieldOfAnyLengthIsABadRequestNamingTheChoices) {
  const std::string long_word(30, 'm');
  const std::vector<std::pair<std::string, std::string>> fields = {
      {"method", "(expected feu or global)"},
      {"latent", "(expected seed, w, wplus, s or photo)"},
      {"negatives", "(expected farthest or random)"},
      {"format", "(expected png or jpeg)"}};
  for (const auto& [field, choices] : fields) {
    const Frame header = R"({"type":"edit","id":"x","instruction":"a",")" + field + R"(":")" + long_word + R"("})";
    EXPECT_EQ(code_of({header}), codes::kBadRequest) << field;
    const std::string message = message_of({header});
    EXPECT_NE(message.find("field '" + field + "' = \"" + long_word + "\""), std::string::npos) << message;
    EXPECT_NE(message.find(choices), std::string::npos) << message;
  }
}

TEST(Protocol, SizeLimitsAreTheEnginesOwn) {
  // The engine refuses more strengths and longer texts than these: the
  // protocol must not accept (and journal) what the engine will fail.
  EXPECT_EQ(Limits().max_alphas, edit::EditLimits::kMaxAlphas);
  EXPECT_EQ(Limits().max_text_bytes, edit::EditLimits::kMaxInstructionBytes);
  auto alphas = [](size_t count) {
    std::string list = "[";
    for (size_t i = 0; i < count; ++i) list += (i ? ",1" : "1");
    return R"({"type":"edit","id":"x","instruction":"a","alphas":)" + list + "]}";
  };
  EXPECT_EQ(code_of({alphas(edit::EditLimits::kMaxAlphas)}), "ok");
  EXPECT_EQ(code_of({alphas(edit::EditLimits::kMaxAlphas + 1)}), codes::kPayloadTooLarge);
  auto instruction = [](size_t bytes) {
    return R"({"type":"edit","id":"x","instruction":")" + std::string(bytes, 'a') + "\"}";
  };
  EXPECT_EQ(code_of({instruction(edit::EditLimits::kMaxInstructionBytes)}), "ok");
  EXPECT_EQ(code_of({instruction(edit::EditLimits::kMaxInstructionBytes + 1)}), codes::kPayloadTooLarge);
}

TEST(Protocol, EquivalentSpellingsOfARequestShareItsDigest) {
  auto digest = [](const std::string& header, std::vector<Frame> payloads = {}) {
    payloads.insert(payloads.begin(), header);
    return parse_request(payloads, Limits()).digest;
  };
  std::string plain = digest(R"({"type":"edit","id":"a","instruction":"smile","alphas":[3]})");
  EXPECT_EQ(digest(R"({"type":"edit","id":"a","instruction":"smile","alphas":[3.0]})"), plain);
  EXPECT_EQ(digest(R"({"v":1,"alphas":[3],"instruction":"smile","id":"b","type":"edit","deadline_ms":50})"), plain);
  // Protocol defaults spelled out.
  EXPECT_EQ(digest(R"({"type":"edit","id":"a","instruction":"smile","alphas":[3],"method":"feu",)"
                   R"("latent":"seed","seed":0,"format":"png","return_original":false,"grid":false,)"
                   R"("return_styles":false,"neutral":null})"),
            plain);
  EXPECT_EQ(digest(R"({"type":"edit","id":"a","instruction":"smile","alphas":[3],"format":"jpg"})"),
            digest(R"({"type":"edit","id":"a","instruction":"smile","alphas":[3],"format":"jpeg"})"));
  EXPECT_EQ(digest(R"({"type":"edit","id":"a","instruction":"smile","alphas":[3],"psi":1})"),
            digest(R"({"type":"edit","id":"a","instruction":"smile","alphas":[3],"psi":1.0})"));

  // Different requests stay different, including an engine default spelled
  // out (the config may change between the two).
  EXPECT_NE(digest(R"({"type":"edit","id":"a","instruction":"smile","alphas":[3.5]})"), plain);
  EXPECT_NE(digest(R"({"type":"edit","id":"a","instruction":"smile"})"), plain);
  EXPECT_NE(digest(R"({"type":"edit","id":"a","instruction":"smile","alphas":[3],"seed":1})"), plain);
  EXPECT_NE(digest(R"({"type":"edit","id":"a","instruction":"smile","alphas":[3],"beta":"auto"})"), plain);
  std::string w = R"({"type":"edit","id":"a","instruction":"smile","latent":"w"})";
  EXPECT_EQ(digest(w, {floats({1, 2})}), digest(w, {floats({1, 2})}));
  EXPECT_NE(digest(w, {floats({1, 2})}), digest(w, {floats({1, 3})}));
  EXPECT_NE(digest(w, {floats({1, 2})}),
            digest(R"({"type":"edit","id":"a","instruction":"smile","latent":"s"})", {floats({1, 2})}));
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

// What a client makes of a faulty server's done reply: a bad_request ProtocolError naming the
// field, never a JSON library exception or a read outside the frames (found by
// scripts/fuzz.sh: a styles entry without a shape read a missing key through const operator[],
// undefined behaviour that ASan saw as a use after free).
TEST(Protocol, AFaultyDoneReplyIsAProtocolErrorNamingTheField) {
  auto decode = [](const std::string& header, std::vector<Frame> payloads) {
    std::vector<Frame> frames = {header};
    frames.insert(frames.end(), payloads.begin(), payloads.end());
    return decode_edit_result(from_frames(frames));
  };
  auto error_of = [&](const std::string& header, std::vector<Frame> payloads = {"png"}) -> std::string {
    try {
      decode(header, std::move(payloads));
    } catch (const ProtocolError& e) {
      EXPECT_EQ(e.code(), codes::kBadRequest) << header;
      return e.what();
    }
    return "ok";
  };
  // Entries without a shape decode, with no dimension.
  const edit::EditResult shapeless =
      decode(R"({"status":"done","images":[{"frame":1}],"styles":{"frame":2},"wplus":{"frame":2}})",
             {"png", floats({1, 2})});
  EXPECT_EQ(shapeless.edited_styles, (std::vector<float>{1, 2}));
  EXPECT_EQ(shapeless.total_channels, 0);
  EXPECT_EQ(shapeless.wplus_rows, 0);
  const std::string fuzz_finding =
      std::string(FEU_SOURCE_DIR) + "/tests/fuzz/regressions/fuzz_protocol/done-reply-styles-without-shape.frames";
  std::ifstream file(fuzz_finding, std::ios::binary);
  const std::string packed((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  std::vector<Frame> frames;
  ASSERT_TRUE(unpack_frames(packed.data(), packed.size(), &frames)) << fuzz_finding;
  EXPECT_EQ(decode_edit_result(from_frames(frames)).total_channels, 0);

  EXPECT_EQ(error_of(R"([1])"), "reply header is not a JSON object");
  EXPECT_EQ(error_of(R"({"status":5,"images":[]})"), "reply is not a done reply");
  EXPECT_NE(error_of(R"({"status":"done","images":[{"frame":"1"}]})").find("'frame' must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"status":"done","images":[{"frame":2}]})").find("'frame' = 2 is out of range [1, 1]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"status":"done","images":[{"frame":1,"width":"8"}]})").find("'width' must be an integer"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"status":"done","images":[{"frame":1,"format":"gif"}]})").find("'format'"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"status":"done","images":[{"frame":1,"alpha":"x"}]})").find("'alpha' must be a number"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"status":"done","images":[],"styles":{"frame":1,"shape":["a",3]}})", {floats({1, 2, 3})})
                .find("styles 'shape' must be [rows, columns]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"status":"done","images":[],"wplus":{"frame":1,"shape":[2]}})", {floats({1, 2})})
                .find("wplus 'shape' must be [rows, columns]"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"status":"done","images":[],"wplus":{"frame":1}})", {"12345"})
                .find("wplus frame is 5 bytes (expected float32 values)"),
            std::string::npos);
  EXPECT_NE(error_of(R"({"status":"done","images":[],"styles":{"shape":[1,1]}})").find("styles entry names no frame"),
            std::string::npos);
}

}  // namespace
}  // namespace feu::service

namespace feu::service {
namespace {

TEST(Protocol, APhotoTravelsAsItsOwnFrameWithItsOwnLimit) {
  edit::EditRequest e;
  e.instruction = "smiling";
  e.latent_kind = edit::LatentKind::kPhoto;
  e.photo = {0xff, 0xd8, 0xff, 0xe0, 1, 2, 3};
  e.face = 2;
  e.paste = true;
  Request r = parse_request(to_frames(make_edit_request("p", e)), Limits());
  EXPECT_EQ(r.edit.latent_kind, edit::LatentKind::kPhoto);
  EXPECT_EQ(r.edit.photo, e.photo);
  EXPECT_EQ(*r.edit.face, 2);
  EXPECT_TRUE(r.edit.paste);
  EXPECT_TRUE(r.edit.latent.empty());

  // The digest covers the photo's bytes, the face and paste.
  auto digest_of = [](const edit::EditRequest& request) {
    return parse_request(to_frames(make_edit_request("p", request)), Limits()).digest;
  };
  edit::EditRequest other_photo = e;
  other_photo.photo.back() = 4;
  edit::EditRequest other_face = e;
  other_face.face.reset();
  edit::EditRequest unpasted = e;
  unpasted.paste = false;
  EXPECT_NE(digest_of(other_photo), r.digest);
  EXPECT_NE(digest_of(other_face), r.digest);
  EXPECT_NE(digest_of(unpasted), r.digest);

  // A photo may exceed the latent limit, not its own.
  Limits limits;
  limits.max_payload_bytes = 16;
  limits.max_photo_bytes = 64;
  const std::string photo = R"({"type":"edit","id":"x","instruction":"a","latent":"photo"})";
  EXPECT_EQ(code_of({photo, std::string(40, 'j')}, limits), "ok");
  EXPECT_EQ(code_of({photo, std::string(65, 'j')}, limits), codes::kPayloadTooLarge);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","latent":"w"})", floats(std::vector<float>(8))},
                    limits),
            codes::kPayloadTooLarge);
  EXPECT_EQ(code_of({photo}), codes::kBadRequest);                 // no photo frame
  EXPECT_EQ(code_of({photo, std::string()}), codes::kBadRequest);  // an empty one
  // face and paste belong to photos.
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","face":1})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","paste":true})"}), codes::kBadRequest);
  EXPECT_EQ(code_of({R"({"type":"edit","id":"x","instruction":"a","latent":"photo","face":-1})", "j"}),
            codes::kBadRequest);
}

TEST(Protocol, DoneReplyOfAPhotoCarriesItsWplus) {
  edit::EditResult result;
  edit::EncodedImage image;
  image.bytes = {1, 2};
  result.images.push_back(image);
  result.wplus = {1, 2, 3, 4, 5, 6};
  result.wplus_rows = 3;
  Message reply = edit_done_reply("j", result, nlohmann::json::object());
  EXPECT_EQ(reply.header["wplus"]["shape"], nlohmann::json::array({3, 2}));
  edit::EditResult back = decode_edit_result(from_frames(to_frames(reply)));
  EXPECT_EQ(back.wplus, result.wplus);
  EXPECT_EQ(back.wplus_rows, 3);
}

}  // namespace
}  // namespace feu::service
