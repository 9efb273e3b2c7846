// feu-indexer commands of the e4e encoder: encode-face (aligned faces or
// photos -> W+ codes).
#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>
#include <memory>

#include "commands.h"
#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "face/e4e.h"
#include "face/faces.h"
#include "tensor/tensor_h5.h"

namespace feu::indexer {
namespace {

struct EncodeFaceOptions {
  std::string e4e;
  std::string aligned;
  std::vector<std::string> images;
  std::string predictor = face::kDefaultPredictorPath;
  std::string out;
  std::string device = "auto";
  int64_t batch = 8;
};

// The aligned faces of the photos, every face in the detector's order; a
// photo without a face is skipped with a warning. `sources` names each row.
at::Tensor align_photos(const EncodeFaceOptions& o, std::vector<std::string>* sources) {
  face::DetectorOptions detector_options;
  detector_options.predictor_path = o.predictor;
  face::FaceDetector detector(detector_options);
  std::vector<at::Tensor> faces;
  for (const std::string& path : o.images) {
    const image::Image photo = face::load_photo(path);
    std::vector<face::Face> found;
    try {
      found = face::align_faces(detector, photo, path, face::kE4eAlign);
    } catch (const Error& e) {
      if (e.code() != ErrorCode::kNoFace) throw;
      std::fprintf(stderr, "encode-face: warning: %s\n", e.what());
      continue;
    }
    for (size_t k = 0; k < found.size(); ++k) {
      const image::Image& aligned = found[k].aligned.image;
      faces.push_back(at::from_blob(const_cast<uint8_t*>(aligned.rgb.data()), {aligned.height, aligned.width, 3},
                                    at::kByte)
                          .clone());
      sources->push_back(std::filesystem::path(path).filename().string() + "#" + std::to_string(k));
    }
  }
  check(!faces.empty(), ErrorCode::kNoFace, "no face was found in any of the " + std::to_string(o.images.size()) +
                                                " photos given (expected at least one frontal face)");
  return at::stack(faces);
}

at::Tensor read_aligned(const std::string& path) {
  h5::File in = h5::File::open_read(path);
  check(in.has("aligned"), ErrorCode::kNotFound, path + " has no dataset 'aligned' (expected [N, 256, 256, 3] uint8)");
  h5::Shape shape;
  std::vector<uint8_t> bytes = in.read_uint8("aligned", &shape);
  check(shape.size() == 4 && shape[1] == 256 && shape[2] == 256 && shape[3] == 3 && shape[0] > 0,
        ErrorCode::kShapeMismatch, path + ": 'aligned' has shape " + h5::shape_string(shape) +
                                       ", expected [N, 256, 256, 3] (e4e's aligned faces)");
  return at::from_blob(bytes.data(), {shape[0], 256, 256, 3}, at::kByte).clone();
}

void encode_face(const EncodeFaceOptions& o) {
  check(o.aligned.empty() != o.images.empty(), ErrorCode::kInvalidArgument,
        "give either --aligned IN.h5 or --images FILE... (exactly one)");
  check(o.batch > 0, ErrorCode::kInvalidArgument, "--batch must be positive");
  std::vector<std::string> sources;
  const at::Tensor faces = o.aligned.empty() ? align_photos(o, &sources) : read_aligned(o.aligned);
  const face::E4eEncoder encoder = face::E4eEncoder::load(o.e4e, resolve_device(o.device));
  std::vector<at::Tensor> codes;
  for (int64_t begin = 0; begin < faces.size(0); begin += o.batch)
    codes.push_back(encoder.encode_aligned(faces.narrow(0, begin, std::min(o.batch, faces.size(0) - begin))).cpu());
  const at::Tensor wplus = at::cat(codes);
  AtomicFile out(o.out);
  {
    h5::File file = h5::File::create(out.temp_path());
    write_tensor(file, "wplus", wplus);
    if (!sources.empty()) file.write_strings("source", sources);
    file.set_attr("/", "e4e_sha256", sha256_file(o.e4e));
    file.close();
  }
  out.commit();
  std::printf("%s: wplus [%ld, %ld, %ld] from %ld faces\n", o.out.c_str(), long(wplus.size(0)), long(wplus.size(1)),
              long(wplus.size(2)), long(faces.size(0)));
}

}  // namespace

void register_e4e_commands(CLI::App& app) {
  auto o = std::make_shared<EncodeFaceOptions>();
  CLI::App* cmd = app.add_subcommand("encode-face", "Invert aligned faces (or the faces of photos) into W+ with e4e");
  cmd->add_option("--e4e", o->e4e, "e4e checkpoint (e4e_ffhq_encode.pt)")->required()->check(CLI::ExistingFile);
  cmd->add_option("--aligned", o->aligned, "HDF5 with 'aligned' [N, 256, 256, 3] uint8 (feu-indexer align --size 256)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--images", o->images, "photos: every face is found, aligned and encoded")->check(CLI::ExistingFile);
  cmd->add_option("--predictor", o->predictor, "dlib 68-point shape predictor (with --images)")->capture_default_str();
  cmd->add_option("--out", o->out, "HDF5 to write: 'wplus' [N, styles, w_dim] float32 (+ 'source' for --images)")
      ->required();
  cmd->add_option("--device", o->device, "cpu | cuda | auto")->capture_default_str();
  cmd->add_option("--batch", o->batch, "faces per encoder call")->capture_default_str();
  cmd->callback([o] { encode_face(*o); });
}

}  // namespace feu::indexer
