// Face module on 12 MP photos (real photos upscaled): decoding, HOG detection
// (exact, and on a scaled copy), the 68 landmarks, and the alignment alone
// (e4e 256 and FFHQ 1024). Run by hand: build/bin/bench_face.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "face/faces.h"
#include "image/pillow_resample.h"

namespace {

using namespace feu;

std::string shared_file(const std::string& relative) {
  const char* env = std::getenv("FEU_SHARED_DIR");
  const std::string path = std::string(env ? env : FEU_BENCH_SHARED_DIR) + "/" + relative;
  if (!std::filesystem::exists(path)) throw std::runtime_error("bench_face needs " + path);
  return path;
}

// Loaded before the timed loops (a second's deserialization each).
face::FaceDetector& exact_detector() {
  static face::FaceDetector detector;
  return detector;
}
face::FaceDetector& scaled_detector() {
  static face::FaceDetector detector = [] {
    face::DetectorOptions options;
    options.detect_max_pixels = 2'000'000;
    return face::FaceDetector(options);
  }();
  return detector;
}

struct Subject {
  image::Image photo;
  std::vector<face::DetectedFace> faces;  // from the scaled-copy detector
};

// A real photo upscaled (bicubic) to `width` x `height`, and its faces.
Subject make_subject(const std::string& relative, int width, int height) {
  Subject s;
  s.photo = image::pillow_resize(face::load_photo(shared_file(relative)), width, height,
                                 image::PillowFilter::kBicubic);
  s.faces = scaled_detector().find_faces(s.photo);
  if (s.faces.empty()) throw std::runtime_error("bench_face: no face in the upscaled " + relative);
  return s;
}

// Two people, faces about 750 px: 3000 x 4000.
const Subject& group_photo() {
  static Subject s = make_subject("faces/2008_001009.jpg", 3000, 4000);
  return s;
}
// A face filling the frame (FFHQ's reflect-pad branch): 2832 x 4248.
const Subject& close_up() {
  static Subject s = make_subject("faces/Tom_Cruise_avp_2014_4.jpg", 2832, 4248);
  return s;
}

void BM_DecodeJpeg12MP(benchmark::State& state) {
  const std::vector<uint8_t> jpeg = image::encode_jpeg(group_photo().photo, 92);
  for (auto _ : state) benchmark::DoNotOptimize(face::decode_photo(jpeg.data(), jpeg.size(), "bench.jpg"));
}

// e4e's setting: HOG with one upsample on the full photo (a 48 MP scan).
void BM_DetectExact12MP(benchmark::State& state) {
  face::FaceDetector& detector = exact_detector();
  const image::Image& photo = group_photo().photo;
  for (auto _ : state) benchmark::DoNotOptimize(detector.detect(photo));
}

// Detection on a 2 MP copy, boxes scaled back.
void BM_DetectScaled12MP(benchmark::State& state) {
  face::FaceDetector& detector = scaled_detector();
  const image::Image& photo = group_photo().photo;
  for (auto _ : state) benchmark::DoNotOptimize(detector.detect(photo));
}

void BM_LandmarksPerFace(benchmark::State& state) {
  const Subject& s = group_photo();
  const face::FaceDetector& detector = scaled_detector();
  for (auto _ : state) benchmark::DoNotOptimize(detector.landmarks(s.photo, s.faces[0].box));
}

// Alignment of every face of the photo from its landmarks.
void align_all(benchmark::State& state, const Subject& s, const face::AlignSettings& settings) {
  // Wall time: the alignment splits its larger passes between threads.
  for (auto _ : state)
    for (const face::DetectedFace& f : s.faces) benchmark::DoNotOptimize(face::align_face(s.photo, f.landmarks, settings));
  state.counters["faces"] = static_cast<double>(s.faces.size());
  state.counters["padded"] = face::align_face(s.photo, s.faces[0].landmarks, settings).padded;
}
void BM_AlignE4eGroup12MP(benchmark::State& state) { align_all(state, group_photo(), face::kE4eAlign); }
void BM_AlignE4eCloseUp12MP(benchmark::State& state) { align_all(state, close_up(), face::kE4eAlign); }
void BM_AlignFfhqGroup12MP(benchmark::State& state) { align_all(state, group_photo(), face::kFfhqAlign); }

// Everything for one photo: scaled detection, landmarks, e4e alignment.
void BM_FindAndAlignScaled12MP(benchmark::State& state) {
  face::FaceDetector& detector = scaled_detector();
  const image::Image& photo = group_photo().photo;
  for (auto _ : state) benchmark::DoNotOptimize(face::align_faces(detector, photo, "bench"));
}

BENCHMARK(BM_DecodeJpeg12MP)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DetectExact12MP)->Unit(benchmark::kMillisecond)->Iterations(1);
BENCHMARK(BM_DetectScaled12MP)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_LandmarksPerFace)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AlignE4eGroup12MP)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AlignE4eCloseUp12MP)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_AlignFfhqGroup12MP)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_FindAndAlignScaled12MP)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
