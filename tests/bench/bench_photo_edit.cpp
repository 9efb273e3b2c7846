// The whole photo -> edited photo path at real size, on CPU: a 12 MP JPEG
// decoded (EXIF upright), faces found (HOG on a 2 MP copy) with landmarks,
// the largest aligned as e4e was trained, inverted by e4e at the released
// widths, mapped to S by FFHQ config-f, one edit (s + α·Δs) and its
// reconstruction synthesized at 1024² as one batch, both pasted back into the
// photo and encoded as JPEG. Random weights cost what trained ones do. The
// edit direction itself (text, retrieval, SVM, mapping: a few ms, bench_edit)
// is a fixed random Δs here. Part of bench_face; stage times as counters.
#include <ATen/ATen.h>
#include <benchmark/benchmark.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include "face/align.h"
#include "face/detector.h"
#include "face/e4e.h"
#include "face/paste.h"
#include "face/photo.h"
#include "image/pillow_resample.h"
#include "image/tensor_image.h"
#include "stylegan2/generator.h"
#include "tensor/tensor_h5.h"

namespace {

using namespace feu;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::vector<uint8_t> photo_jpeg_12mp() {
  const char* env = std::getenv("FEU_SHARED_DIR");
  const std::string path = std::string(env ? env : FEU_BENCH_SHARED_DIR) + "/faces/Tom_Cruise_avp_2014_4.jpg";
  if (!std::filesystem::exists(path)) throw std::runtime_error("bench_face needs " + path);
  const image::Image photo =
      image::pillow_resize(face::load_photo(path), 2832, 4248, image::PillowFilter::kBicubic);
  return image::encode_jpeg(photo, 92);
}

void BM_PhotoToEditedPhoto1024(benchmark::State& state) {
  use_compute_threads();
  c10::InferenceMode inference;
  static const std::vector<uint8_t> jpeg = photo_jpeg_12mp();
  static const face::E4eEncoder e4e = face::E4eEncoder::random(face::E4eConfig::ffhq(), 0);
  static const stylegan2::Generator generator =
      stylegan2::Generator::random(stylegan2::GeneratorConfig::config_f(), 0, at::kCPU);
  face::DetectorOptions options;
  options.detect_max_pixels = 2'000'000;
  static face::FaceDetector detector(options);
  const int64_t total = generator.style_space().total_channels();
  const at::Tensor delta = 0.1 * at::randn({1, total});
  double decode = 0, find = 0, invert = 0, synthesis = 0, paste = 0, encode = 0;
  for (auto _ : state) {
    auto t = Clock::now();
    const image::Image photo = face::decode_photo(jpeg.data(), jpeg.size(), "bench.jpg");
    decode += ms_since(t);
    t = Clock::now();
    const std::vector<face::DetectedFace> faces = detector.find_faces(photo);
    const face::AlignedFace aligned = face::align_face(photo, faces.at(0).landmarks, face::kE4eAlign);
    find += ms_since(t);
    t = Clock::now();
    at::Tensor crop = at::from_blob(const_cast<uint8_t*>(aligned.image.rgb.data()), {1, 256, 256, 3}, at::kByte);
    const at::Tensor wplus = e4e.encode_aligned(crop);
    invert += ms_since(t);
    t = Clock::now();
    const at::Tensor s = generator.style_space().flatten(generator.styles_from_ws(wplus));
    const at::Tensor codes = at::cat({s, s + 4.0 * delta});  // reconstruction, edit
    const at::Tensor images = generator.synthesize(generator.style_space().split(codes), stylegan2::NoiseMode::kConst);
    std::vector<image::Image> faces_out = image::images_from_tensor(images, image::Quantize::kStyleClip);
    synthesis += ms_since(t);
    t = Clock::now();
    std::vector<image::Image> pasted;
    for (const image::Image& f : faces_out) pasted.push_back(face::paste_face(photo, f, aligned.quad));
    paste += ms_since(t);
    t = Clock::now();
    for (const image::Image& p : pasted) benchmark::DoNotOptimize(image::encode_jpeg(p, 92));
    encode += ms_since(t);
  }
  const double n = static_cast<double>(state.iterations());
  state.counters["decode_ms"] = decode / n;
  state.counters["find_align_ms"] = find / n;
  state.counters["e4e_ms"] = invert / n;
  state.counters["synthesis2_ms"] = synthesis / n;
  state.counters["paste2_ms"] = paste / n;
  state.counters["encode2_ms"] = encode / n;
}
BENCHMARK(BM_PhotoToEditedPhoto1024)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);

}  // namespace
