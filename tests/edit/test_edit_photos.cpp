// Photos through the engine: real faces found by dlib in real photos, aligned
// as e4e expects, inverted by a stand-in encoder in the known-truth world
// (its W+ is a function of the aligned pixels, so the test can recompute it),
// with the reconstruction, the W+, the inversion cache and paste checked.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/files.h"
#include "edit/engine.h"
#include "face/align.h"
#include "face/detector.h"
#include "face/photo.h"
#include "image/codec.h"
#include "known_truth_world.h"
#include "test_support.h"

namespace feu::edit {
namespace {

toy::ToyWorld& world() {
  static toy::ToyWorld shared;
  return shared;
}

// W+ [1, 8]: the mean of each colour channel over 8 horizontal bands of
// the aligned face, centred: a deterministic function of the crop.
class BandEncoder : public FaceEncoder {
 public:
  int64_t num_ws() const override { return rows_; }
  int64_t w_dim() const override { return toy::kWDim; }
  const std::string& fingerprint() const override { return fingerprint_; }
  std::vector<float> encode(const std::vector<image::Image>& faces) override {
    std::vector<float> out;
    for (const image::Image& face : faces) {
      ++calls;
      EXPECT_EQ(face.width, 256);
      EXPECT_EQ(face.height, 256);
      for (int64_t row = 0; row < rows_; ++row) {
        for (int band = 0; band < toy::kWDim; ++band) {
          double sum = 0;
          for (int y = band * 32; y < band * 32 + 32; ++y)
            for (int x = 0; x < 256; ++x) sum += face.rgb[(y * 256 + x) * 3 + band % 3];
          out.push_back(static_cast<float>(sum / (32 * 256) / 64.0 - 2.0));
        }
      }
    }
    return out;
  }
  explicit BandEncoder(int64_t rows = 1) : rows_(rows) {}
  int calls = 0;

 private:
  int64_t rows_;
  std::string fingerprint_ = "band-encoder";
};

struct PhotoEngine {
  std::shared_ptr<BandEncoder> encoder = std::make_shared<BandEncoder>();
  std::unique_ptr<Engine> engine;
  explicit PhotoEngine(size_t cache = 8) {
    auto photos = std::make_shared<PhotoInverter>(encoder, face::DetectorOptions{}, cache);
    engine = Engine::from_parts(world().generator, world().text, world().artifacts, {}, photos);
  }
};

EditRequest photo_request(const std::vector<uint8_t>& photo) {
  EditRequest r;
  r.instruction = "red hair";
  r.latent_kind = LatentKind::kPhoto;
  r.photo = photo;
  r.alphas = {-2, 3};
  return r;
}

ErrorCode code_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.code();
  }
  return ErrorCode::kInternal;
}

TEST(EnginePhotos, APhotoIsInvertedEditedAndReturnedWithItsReconstructionAndWplus) {
  FEU_SHARED_FILE_OR_SKIP(path, "faces/astronaut.png");
  const std::vector<uint8_t> bytes = read_file(path);
  PhotoEngine p;
  EditResult result = p.engine->edit(photo_request(bytes));
  ASSERT_EQ(result.images.size(), 2u);
  ASSERT_TRUE(result.original.has_value()) << "a photo's result always carries its reconstruction";
  EXPECT_EQ(result.original->alpha, 0.0);
  EXPECT_EQ(result.images[0].width, toy::kSide);

  // The W+ is the encoder's output on the e4e-aligned crop of the largest face.
  const image::Image photo = face::decode_photo(bytes.data(), bytes.size(), "astronaut");
  face::FaceDetector detector;
  const std::vector<face::DetectedFace> faces = detector.find_faces(photo);
  ASSERT_GE(faces.size(), 1u);
  const face::AlignedFace aligned = face::align_face(photo, faces[0].landmarks, face::kE4eAlign);
  BandEncoder reference;
  EXPECT_EQ(result.wplus, reference.encode({aligned.image}));
  EXPECT_EQ(result.wplus_rows, 1);
  EXPECT_EQ(result.diagnostics["face"]["faces_found"], static_cast<int64_t>(faces.size()));
  EXPECT_EQ(result.diagnostics["face"]["inversion_cache"], "miss");
  EXPECT_EQ(result.diagnostics["latent_kind"], "photo");

  // The reconstruction is the generator's image of that W+ (α = 0).
  const std::vector<float> styles = world().generator->styles_from_ws(result.wplus, true);
  const image::Image expected = world().generator->render_one(styles.data());
  const image::Image original = image::decode_bytes(result.original->bytes.data(), result.original->bytes.size(), "o");
  EXPECT_EQ(original.rgb, expected.rgb);

  // A repeat (another instruction) reuses the inversion: no detection, no encoder run.
  EditRequest again = photo_request(bytes);
  again.instruction = "blue skin";
  EditResult second = p.engine->edit(again);
  EXPECT_EQ(p.encoder->calls, 1);
  EXPECT_EQ(second.diagnostics["face"]["inversion_cache"], "hit");
  EXPECT_EQ(second.wplus, result.wplus);

  // The returned W+ edits again without the photo, to the same images.
  EditRequest by_wplus;
  by_wplus.instruction = "red hair";
  by_wplus.latent_kind = LatentKind::kWPlus;
  by_wplus.latent = result.wplus;
  by_wplus.alphas = {-2, 3};
  EditResult third = p.engine->edit(by_wplus);
  EXPECT_EQ(third.images[1].bytes, result.images[1].bytes);
}

TEST(EnginePhotos, PasteReturnsThePhotoChangedOnlyInsideTheFaceSquare) {
  FEU_SHARED_FILE_OR_SKIP(path, "faces/Tom_Cruise_avp_2014_4.jpg");
  const std::vector<uint8_t> bytes = read_file(path);
  PhotoEngine p;
  EditRequest r = photo_request(bytes);
  r.paste = true;
  EditResult result = p.engine->edit(r);
  const image::Image photo = face::decode_photo(bytes.data(), bytes.size(), "photo");
  const image::Image edited = image::decode_bytes(result.images[1].bytes.data(), result.images[1].bytes.size(), "e");
  ASSERT_EQ(edited.width, photo.width);
  ASSERT_EQ(edited.height, photo.height);
  // Outside the quad's bounding box every pixel is the photo's; inside, the face changed.
  const nlohmann::json quad = result.diagnostics["face"]["quad"];
  double x0 = 1e9, y0 = 1e9, x1 = -1e9, y1 = -1e9;
  for (const auto& corner : quad) {
    x0 = std::min(x0, corner[0].get<double>()), x1 = std::max(x1, corner[0].get<double>());
    y0 = std::min(y0, corner[1].get<double>()), y1 = std::max(y1, corner[1].get<double>());
  }
  int64_t changed_inside = 0, changed_outside = 0;
  for (int y = 0; y < photo.height; ++y) {
    for (int x = 0; x < photo.width; ++x) {
      const bool inside = x >= std::floor(x0) - 1 && x <= std::ceil(x1) + 1 && y >= std::floor(y0) - 1 &&
                          y <= std::ceil(y1) + 1;
      for (int c = 0; c < 3; ++c) {
        const size_t i = (static_cast<size_t>(y) * photo.width + x) * 3 + c;
        if (edited.rgb[i] != photo.rgb[i]) (inside ? changed_inside : changed_outside)++;
      }
    }
  }
  EXPECT_EQ(changed_outside, 0);
  EXPECT_GT(changed_inside, 1000);
  ASSERT_TRUE(result.original.has_value());
  EXPECT_EQ(result.original->width, photo.width) << "the reconstruction is pasted like the edits";
  EXPECT_EQ(result.diagnostics["face"]["pasted"], true);
}

TEST(EnginePhotos, BadPhotosAndMisplacedPhotoFieldsAreTypedErrors) {
  PhotoEngine p;
  // No face: a plain grey picture.
  image::Image grey;
  grey.width = grey.height = 320;
  grey.rgb.assign(320 * 320 * 3, 128);
  const std::vector<uint8_t> grey_png = image::encode_png(grey);
  test::expect_error([&] { p.engine->edit(photo_request(grey_png)); }, ErrorCode::kNoFace, {"no face"});
  // Not an image: refused at validation, before any queueing.
  const std::vector<uint8_t> text = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
  test::expect_error([&] { p.engine->validate(photo_request(text)); }, ErrorCode::kCorruptFile, {"PNG or JPEG"});
  // A truncated PNG passes the signature check and fails to decode.
  std::vector<uint8_t> truncated(grey_png.begin(), grey_png.begin() + 60);
  EXPECT_EQ(code_of([&] { p.engine->edit(photo_request(truncated)); }), ErrorCode::kCorruptFile);
  // A face the photo does not have.
  FEU_SHARED_FILE_OR_SKIP(path, "faces/astronaut.png");
  EditRequest r = photo_request(read_file(path));
  r.face = 7;
  test::expect_error([&] { p.engine->edit(r); }, ErrorCode::kInvalidArgument, {"face 7", "face(s)"});
  // Face and paste belong to photos.
  EditRequest seed;
  seed.instruction = "red hair";
  seed.paste = true;
  test::expect_error([&] { p.engine->validate(seed); }, ErrorCode::kInvalidArgument, {"paste", "photo"});
  seed.paste = false;
  seed.face = 0;
  test::expect_error([&] { p.engine->validate(seed); }, ErrorCode::kInvalidArgument, {"face", "photo"});
  // An engine without a face encoder says how to get one.
  auto plain = Engine::from_parts(world().generator, world().text, world().artifacts, {});
  test::expect_error([&] { plain->validate(photo_request(grey_png)); }, ErrorCode::kUnsupported, {"models.e4e"});
}

TEST(EnginePhotos, AnEncoderForAnotherGeneratorIsRefused) {
  auto photos = std::make_shared<PhotoInverter>(std::make_shared<BandEncoder>(3), face::DetectorOptions{}, 1);
  test::expect_error([&] { Engine::from_parts(world().generator, world().text, world().artifacts, {}, photos); },
                     ErrorCode::kConfigError, {"[3, 8]", "[1, 8]"});
}

}  // namespace
}  // namespace feu::edit
