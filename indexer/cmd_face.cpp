// feu-indexer commands of the face module: align.
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "face/faces.h"

namespace feu::indexer {
namespace {
namespace fs = std::filesystem;

struct AlignOptions {
  std::string predictor = face::kDefaultPredictorPath;
  int size = 256;
  int transform = 0;  // 0: the output size (e4e); FFHQ's own crops use --size 1024 --transform 4096
  int upsample = 1;
  int64_t detect_max_pixels = 0;
  int64_t max_pixels = image::kDefaultMaxPixels;
  std::string out;
  std::vector<std::string> images;
};

bool names_directory(const std::string& path) {
  return (!path.empty() && path.back() == '/') || fs::is_directory(path);
}

// Photos are named by their file's base name: two inputs with the same one
// would overwrite each other's results.
std::vector<std::string> unique_names(const std::vector<std::string>& images, bool stems) {
  std::map<std::string, std::string> seen;
  std::vector<std::string> names;
  for (const std::string& image : images) {
    const fs::path path(image);
    const std::string name = stems ? path.stem().string() : path.filename().string();
    check(!name.empty(), ErrorCode::kInvalidArgument, "align: " + image + " does not name a file");
    const auto [it, inserted] = seen.emplace(name, image);
    check(inserted, ErrorCode::kInvalidArgument,
          "align: " + it->second + " and " + image + " would both be written as '" + name +
              "' (expected distinct file names)");
    names.push_back(name);
  }
  return names;
}

// Aligned faces of one photo; a photo without a face is reported and gives none.
std::vector<face::Face> faces_of(face::FaceDetector& detector, const std::string& path,
                                 const AlignOptions& opt, const face::AlignSettings& settings) {
  const image::Image photo = face::load_photo(path, opt.max_pixels);
  try {
    return face::align_faces(detector, photo, path, settings);
  } catch (const Error& e) {
    if (e.code() != ErrorCode::kNoFace) throw;
    std::cerr << "feu-indexer align: warning [" << e.code_name() << "]: " << e.what() << std::endl;
    return {};
  }
}

void write_group(h5::File& file, const std::string& group, const std::vector<face::Face>& faces, int size) {
  const int64_t n = static_cast<int64_t>(faces.size());
  std::vector<int32_t> landmarks, boxes;
  std::vector<float> scores, quads;
  std::vector<uint8_t> aligned;
  for (const face::Face& f : faces) {
    for (const face::Point& p : f.landmarks) {
      landmarks.push_back(p.x);
      landmarks.push_back(p.y);
    }
    for (long v : {f.box.left, f.box.top, f.box.right, f.box.bottom}) boxes.push_back(static_cast<int32_t>(v));
    scores.push_back(static_cast<float>(f.box.confidence));
    for (double v : f.aligned.quad.xy) quads.push_back(static_cast<float>(v));
    aligned.insert(aligned.end(), f.aligned.image.rgb.begin(), f.aligned.image.rgb.end());
  }
  file.create_group(group);
  file.write_int32(group + "/landmarks", landmarks.data(), {n, face::kLandmarkCount, 2});
  file.write_uint8(group + "/aligned", aligned.data(), {n, size, size, 3});
  file.write_int32(group + "/boxes", boxes.data(), {n, 4});
  file.write_float(group + "/scores", scores.data(), {n});
  file.write_float(group + "/quads", quads.data(), {n, 4, 2});
}

void run_align(const AlignOptions& opt) {
  check(!opt.images.empty(), ErrorCode::kInvalidArgument, "align: no image given");
  const face::AlignSettings settings{opt.size, opt.transform > 0 ? opt.transform : opt.size, true};
  check(settings.output_size > 0 && settings.output_size <= 4096 && settings.transform_size >= settings.output_size &&
            settings.transform_size <= 8192,
        ErrorCode::kInvalidArgument,
        "align: expected 0 < --size <= --transform <= 8192 and --size <= 4096, got " + std::to_string(opt.size) +
            " and " + std::to_string(settings.transform_size));
  face::DetectorOptions detector_options;
  detector_options.predictor_path = opt.predictor;
  detector_options.upsample = opt.upsample;
  detector_options.detect_max_pixels = opt.detect_max_pixels;
  face::FaceDetector detector(detector_options);

  if (names_directory(opt.out)) {
    const std::vector<std::string> stems = unique_names(opt.images, true);
    fs::create_directories(opt.out);
    for (size_t i = 0; i < opt.images.size(); ++i) {
      const std::vector<face::Face> faces = faces_of(detector, opt.images[i], opt, settings);
      for (size_t f = 0; f < faces.size(); ++f)
        image::write_image((fs::path(opt.out) / (stems[i] + "_" + std::to_string(f) + ".png")).string(),
                           faces[f].aligned.image);
    }
    return;
  }
  const std::vector<std::string> names = unique_names(opt.images, false);
  AtomicFile out(opt.out);
  {
    h5::File file = h5::File::create(out.temp_path());
    file.set_attr("/", "output_size", int64_t{settings.output_size});
    file.set_attr("/", "transform_size", int64_t{settings.transform_size});
    file.set_attr("/", "upsample", int64_t{opt.upsample});
    file.set_attr("/", "predictor", opt.predictor);
    for (size_t i = 0; i < opt.images.size(); ++i)
      write_group(file, names[i], faces_of(detector, opt.images[i], opt, settings), settings.output_size);
    file.close();
  }
  out.commit();
}

}  // namespace

void register_face_commands(CLI::App& app) {
  auto opt = std::make_shared<AlignOptions>();
  CLI::App* align = app.add_subcommand(
      "align", "Find every face in photos (dlib HOG + 68 landmarks) and align it as FFHQ/e4e do");
  align->add_option("--predictor", opt->predictor,
                    "dlib 68-point shape predictor (.dat); Debian's is trained on iBUG 300-W, "
                    "which excludes commercial use")
      ->capture_default_str();
  align->add_option("--size", opt->size, "side of the aligned faces (e4e: 256, FFHQ: 1024)")->capture_default_str();
  align->add_option("--transform", opt->transform,
                    "side of the QUAD transform before the Lanczos resize (default: --size; FFHQ: 4096)");
  align->add_option("--upsample", opt->upsample, "HOG detector upsampling (e4e: 1)")->capture_default_str();
  align->add_option("--detect-max-pixels", opt->detect_max_pixels,
                    "detect on a copy of larger photos scaled to this many pixels (0: off, exact)")
      ->capture_default_str();
  align->add_option("--max-pixels", opt->max_pixels, "refuse photos with more pixels (decompression bombs)")
      ->capture_default_str();
  align->add_option("--out", opt->out,
                    "HDF5 file (one group per photo: landmarks, aligned, boxes, scores, quads) or a "
                    "directory (DIR/: PNGs <stem>_<face>.png)")
      ->required();
  align->add_option("images", opt->images, "photos (PNG or JPEG)")->required();
  align->callback([opt] { run_align(*opt); });
}

}  // namespace feu::indexer
