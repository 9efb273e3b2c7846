// feu: the command-line client of feu-daemon.
//
//   feu edit "blond hair" --seed 42 -o out.png [--server ADDR] [--timeout S] [--retries N]
//   feu edit "smiling" --image photo.jpg [--face K] [--paste] -o out.png   (a photo: e4e inversion)
//            [--alphas -3,0,3] [--method global --neutral "face"] [--grid] [--format jpeg]
//   feu edit --local --config C "blond hair" --seed 42 -o out.png   (engine in-process)
//   feu status | feu ping | feu retrieve TEXT -k N | feu result ID -o OUT | feu cancel ID
//   feu keygen --out PREFIX [--force]   (CURVE keypair: PREFIX.key secret, PREFIX.pub public)
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <atomic>
#include <cmath>
#include <mutex>
#include <thread>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>

#include "core/cli.h"
#include "core/files.h"
#include "core/h5.h"
#include "core/text.h"
#include "service/client.h"
#include "service/curve_keys.h"
#include "service/endpoint_probe.h"
#ifdef FEU_CLIENT_LOCAL
#include "local_edit.h"
#include "tensor/latent_file.h"
#endif

namespace feu {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

struct Common {
  std::string server = "tcp://127.0.0.1:5555";
  double timeout_s = 60;
  int retries = 3;
  std::string curve_server_key;
  std::string curve_client_key;  // prefix or secret key file; public = same name with .pub
  bool json_output = false;

  service::ClientOptions options() const {
    service::ClientOptions o;
    o.server = server;
    o.timeout_ms = static_cast<int>(timeout_s * 1000);
    o.retries = retries;
    if (!curve_server_key.empty()) {
      if (fs::exists(curve_server_key)) {
        o.curve_server_key = service::read_public_key_file(curve_server_key, "--curve-server-key");
      } else {
        service::z85_decode_key(curve_server_key, "--curve-server-key (a Z85 key or a .pub file)");
        o.curve_server_key = curve_server_key;
      }
      check(!curve_client_key.empty(), ErrorCode::kInvalidArgument,
            "--curve-server-key needs --curve-client-key (a secret key file from `feu keygen`)");
      o.curve_secret_key = service::read_secret_key_file(curve_client_key, "--curve-client-key");
      o.curve_public_key = service::curve_public_key(o.curve_secret_key);
    }
    return o;
  }

  // A client of the daemon, after a quick check that something listens there
  // (a stopped daemon fails in seconds, not after every timeout and retry).
  service::Client connect() const {
    service::ClientOptions o = options();
    o.probe_timeout_ms = std::min(2000, o.timeout_ms);
    return service::Client(o);
  }
};

// Error and busy replies become feu-style errors: "feu: error [code]: message".
void throw_reply_error(const service::Message& reply) {
  try {
    service::Client::throw_if_error(reply);
  } catch (const service::ProtocolError& e) {
    std::cerr << "feu: error [" << e.code() << "]: " << e.what() << std::endl;
    std::exit(2);
  }
}

struct Job {
  edit::EditRequest request;
  std::string output;   // image path (write_images adds alpha suffixes)
  std::string latents;  // --save-latents path, or ""
  std::string face;     // in a batch's messages: "seed 7", "latent 3", or ""
};

// "Blond hair!" -> "blond_hair": file-name safe, for batch outputs.
std::string slug(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c)) out += static_cast<char>(std::tolower(c));
    else if (!out.empty() && out.back() != '_') out += '_';
    if (out.size() >= 48) break;
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out.empty() ? "edit" : out;
}

std::string with_suffix(const std::string& path, const std::string& suffix) {
  const fs::path p(path);
  return (p.parent_path() / (p.stem().string() + suffix + p.extension().string())).string();
}

// One instruction per line; blank lines and lines starting with # skipped.
std::vector<std::string> read_instructions(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file(path);
  std::vector<std::string> out;
  std::string line;
  auto flush = [&] {
    const size_t first = line.find_first_not_of(" \t\r");
    const size_t last = line.find_last_not_of(" \t\r");
    if (first != std::string::npos && line[first] != '#') out.push_back(line.substr(first, last - first + 1));
    line.clear();
  };
  for (uint8_t byte : bytes) {
    if (byte == '\n') flush();
    else line += static_cast<char>(byte);
  }
  flush();
  check(!out.empty(), ErrorCode::kInvalidArgument, "--instructions " + path + " lists no instruction");
  return out;
}

#ifdef FEU_CLIENT_LOCAL
// The generator's latent shapes from an engine's info() (in-process, or the
// daemon's status "engine"). The engine maps no z (it has no z requests).
latents::Shapes latent_shapes(const json& engine_info) {
  const json generator = engine_info.is_object() ? engine_info.value("generator", json::object()) : json::object();
  check(generator.contains("w_dim") && generator.contains("num_ws") && generator.contains("layers"),
        ErrorCode::kUnsupported,
        "--latent-file needs the engine's latent shapes (generator w_dim, num_ws, layers), which this daemon's "
        "status does not state (older than this client?)");
  latents::Shapes shapes;
  shapes.w_dim = generator["w_dim"].get<int64_t>();
  shapes.num_ws = generator["num_ws"].get<int64_t>();
  for (const json& layer : generator["layers"]) {
    shapes.layer_names.push_back(layer["name"].get<std::string>());
    shapes.layer_channels.push_back(layer["channels"].get<int64_t>());
  }
  return shapes;
}
#endif

#ifndef FEU_CLIENT_LOCAL
// --local: the engine (libtorch) lives in the sibling program feu-local, so
// that plain client calls start in milliseconds instead of seconds; this
// replaces the process with it, same arguments.
[[noreturn]] void exec_local_program(char** argv) {
  std::string local_program = (fs::read_symlink("/proc/self/exe").parent_path() / "feu-local").string();
  check(fs::exists(local_program), ErrorCode::kUnsupported,
        "--local needs " + local_program + " (built with the edit engine), which is missing");
  argv[0] = local_program.data();
  execv(local_program.c_str(), argv);
  throw Error(ErrorCode::kIoError, "cannot run " + local_program + ": " + std::strerror(errno));
}
#endif

// One number of option `flag`, e.g. --beta 0.1; the message names the flag.
double parse_number(const std::string& text, const std::string& flag, const std::string& example) {
  try {
    size_t used = 0;
    double value = std::stod(text, &used);
    if (used == text.size() && std::isfinite(value)) return value;
  } catch (const std::exception&) {
  }
  throw Error(ErrorCode::kInvalidArgument, flag + ": " + quote_text(text) + " is not a number (expected e.g. " +
                                               example + ")");
}

std::vector<double> parse_alphas(const std::string& text) {
  std::vector<double> alphas;
  // A sweep FROM:TO:COUNT, evenly spaced with both ends included (numpy's linspace).
  if (const size_t colon = text.find(':'); colon != std::string::npos) {
    const size_t second = text.find(':', colon + 1);
    check(second != std::string::npos && text.find(':', second + 1) == std::string::npos, ErrorCode::kInvalidArgument,
          "--alphas " + quote_text(text) + ": a sweep is FROM:TO:COUNT, e.g. -4:4:9");
    const double from = parse_number(text.substr(0, colon), "--alphas", "-4:4:9");
    const double to = parse_number(text.substr(colon + 1, second - colon - 1), "--alphas", "-4:4:9");
    const std::vector<int64_t> count = parse_int_list(text.substr(second + 1), "--alphas COUNT");
    check(count.size() == 1 && count[0] >= 1 && count[0] <= 16, ErrorCode::kInvalidArgument,
          "--alphas " + quote_text(text) + ": COUNT must be one number in 1..16");
    for (int64_t i = 0; i < count[0]; ++i)
      alphas.push_back(count[0] == 1 ? from : from + (to - from) * static_cast<double>(i) / (count[0] - 1));
    return alphas;
  }
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    alphas.push_back(parse_number(item, "--alphas", "-3,0,3"));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return alphas;
}

// The output's extension decides the format (.png, .jpg, .jpeg, any case);
// --format, when given, must agree with it: a file never holds bytes its name
// does not promise.
edit::ImageFormat format_for(const std::string& format, const std::string& output) {
  std::string ext = fs::path(output).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  edit::ImageFormat by_name;
  if (ext == ".png") by_name = edit::ImageFormat::kPng;
  else if (ext == ".jpg" || ext == ".jpeg") by_name = edit::ImageFormat::kJpeg;
  else
    throw Error(ErrorCode::kInvalidArgument, "-o " + output + ": unknown image extension " + quote_text(ext) +
                                                 " (expected .png, .jpg or .jpeg)");
  if (!format.empty()) {
    const edit::ImageFormat asked = edit::parse_image_format(format);
    check(asked == by_name, ErrorCode::kInvalidArgument,
          "--format " + format + " disagrees with -o " + output + " (its extension says " +
              edit::image_format_name(by_name) + ")");
  }
  return by_name;
}

// Checked before any work is sent: like other tools, an output in a missing
// directory is an error, not a reason to create directories.
void check_output_directory(const std::string& output) {
  fs::path directory = fs::path(output).parent_path();
  check(directory.empty() || fs::is_directory(directory), ErrorCode::kNotFound,
        "-o " + output + ": the directory " + directory.string() + " does not exist");
}

// out.png for one image; out_alpha-3.png, out_alpha0.png, ... for several.
std::vector<std::string> write_images(const edit::EditResult& result, const std::string& output) {
  std::vector<std::string> written;
  fs::path out(output);
  auto name_for = [&](const std::string& suffix) {
    return (out.parent_path() / (out.stem().string() + suffix + out.extension().string())).string();
  };
  for (const auto& image : result.images) {
    std::string path = output;
    if (result.images.size() > 1) {
      char suffix[64];
      snprintf(suffix, sizeof suffix, "_alpha%g", image.alpha);
      path = name_for(suffix);
    }
    write_file_atomic(path, image.bytes.data(), image.bytes.size());
    written.push_back(path);
  }
  if (result.original) {
    // A photo's unedited image is the generator's reconstruction of it.
    std::string path = name_for(result.wplus.empty() ? "_original" : "_reconstruction");
    write_file_atomic(path, result.original->bytes.data(), result.original->bytes.size());
    written.push_back(path);
  }
  return written;
}

// `seconds`: the client's wait, when it made the request (not for `result`).
void print_edit_summary(const edit::EditResult& result, const std::vector<std::string>& written,
                        std::optional<double> seconds) {
  const json& d = result.diagnostics;
  const bool grid = d.is_object() && d.value("grid", false);
  const bool photo = !result.wplus.empty();
  for (size_t i = 0; i < written.size(); ++i) {
    const auto& image = i < result.images.size() ? result.images[i] : *result.original;
    char what[96];
    if (i >= result.images.size()) snprintf(what, sizeof what, photo ? "reconstruction" : "original");
    else if (grid) snprintf(what, sizeof what, photo ? "grid: reconstruction and edits" : "grid: original and edits");
    else snprintf(what, sizeof what, "alpha %g", image.alpha);
    std::cout << "wrote " << fs::absolute(written[i]).string() << " (" << image.width << "x" << image.height << ", "
              << what << ")\n";
  }
  if (d.is_object()) {
    if (d.contains("face")) {
      const json& f = d["face"];
      std::cout << "face: " << f.value("face", 0) << " of " << f.value("faces_found", 0) << " found (inversion "
                << f.value("inversion_cache", std::string("?")) << ")\n";
    }
    if (d.contains("channels_changed")) std::cout << "channels changed: " << d["channels_changed"] << "\n";
    if (d.contains("artifact_version") && d["artifact_version"].is_string())
      std::cout << "artifact version: " << d["artifact_version"].get<std::string>() << "\n";
  }
  if (seconds) std::printf("elapsed: %.3f s\n", *seconds);
}

// --save-latents: the edited S codes ([alphas, channels], kind s) and, for a
// photo, the W+ it was inverted to (kind wplus), each with its kind named.
void save_latents(const std::string& path, const edit::EditResult& result) {
  AtomicFile out(path);
  {
    h5::File file = h5::File::create(out.temp_path());
    const int64_t channels = result.total_channels;
    const int64_t values = static_cast<int64_t>(result.edited_styles.size());
    check(channels > 0 && !result.edited_styles.empty(), ErrorCode::kInternal, "the result carries no style codes");
    file.write_float("s", result.edited_styles.data(), {values / channels, channels});
    file.set_attr("s", "kind", "s");
    std::vector<double> alphas;
    for (const auto& image : result.images) alphas.push_back(image.alpha);
    if (static_cast<int64_t>(alphas.size()) * channels == values) file.set_attr("s", "alphas", alphas);
    if (!result.wplus.empty()) {
      const int64_t rows = std::max<int64_t>(result.wplus_rows, 1);
      file.write_float("wplus", result.wplus.data(), {rows, static_cast<int64_t>(result.wplus.size()) / rows});
      file.set_attr("wplus", "kind", "wplus");
    }
  }
  out.commit();
}

}  // namespace
}  // namespace feu

int main(int argc, char** argv) {
  using namespace feu;
  CLI::App app{"feu: text-driven face edits from a feu-daemon (or in-process with --local)", "feu"};
  app.require_subcommand(1);
  app.fallthrough();
  Common common;
  app.add_option("--server", common.server,
                 "daemon endpoint, or a fleet's fronts comma-separated (a timeout fails over to the next, same id)")
      ->envname("FEU_SERVER")
      ->capture_default_str();
  app.add_option("--timeout", common.timeout_s, "seconds to wait for each reply before retrying")
      ->capture_default_str();
  app.add_option("--retries", common.retries, "resends (same id) after a timeout")->capture_default_str();
  app.add_option("--curve-server-key", common.curve_server_key, "daemon public key (Z85 or a .pub file): use CURVE");
  app.add_option("--curve-client-key", common.curve_client_key, "this client's secret key file (from feu keygen)");
  app.add_flag("--json", common.json_output, "print reply headers as JSON");

  // ---- edit
  auto* edit_cmd = app.add_subcommand("edit", "edit a face with a text instruction");
  std::string instruction, output, alphas_text, method = "feu", neutral, beta_text, negatives, format, id,
                                               latent_file, latent_kind, config_path;
  int64_t seed = 0, k_pos = 0, k_neg = 0, deadline_ms = 0;
  double psi = NAN;
  bool grid = false, original = false, local = false;
  std::string instructions_file, seeds_text, outdir;
  int in_flight = 8;
  edit_cmd->add_option("instruction", instruction, "e.g. \"blond hair\"");
  edit_cmd->add_option("-o,--output", output,
                       "output image (.png or .jpg); a batch adds _<instruction>_seed<N> before the extension");
  edit_cmd->add_option("--outdir", outdir, "write into this directory (created; edit.png unless -o names the file)");
  edit_cmd->add_option("--instructions", instructions_file, "a file of instructions, one per line (# comments)");
  edit_cmd->add_option("--seeds", seeds_text, "many faces: e.g. 1-100 or 1,5,7-9 (one job per seed and instruction)");
  edit_cmd->add_option("--in-flight", in_flight, "a batch's jobs sent at once to the daemon (it batches them)")
      ->check(CLI::Range(1, 64));
  edit_cmd->add_option("--seed", seed, "face from numpy RandomState(seed)");
  edit_cmd->add_option("--psi,--trunc", psi, "truncation psi for the seed's W (default from config: 0.7)");
  edit_cmd->add_option("--latent-file", latent_file,
                       "faces from latents: .h5 (w, ws, wplus, s or styles/<layer>; kind attribute), .npy "
                       "(float32/64) or e4e's latents.pt; one job per latent");
  edit_cmd->add_option("--latent-kind", latent_kind,
                       "z, w, wplus or s: what --latent-file holds where its shape leaves it open ([N, w_dim]: z or w)")
      ->check(CLI::IsMember({"z", "w", "wplus", "s"}));
  std::string image_path, save_latents_path;
  int64_t face_index = -1;
  bool paste = false;
  edit_cmd->add_option("--image", image_path, "a photo (PNG or JPEG): its face is found, aligned and inverted (e4e)");
  edit_cmd->add_option("--face", face_index, "with --image: which face, in the detector's order (default: the largest)");
  edit_cmd->add_flag("--paste", paste, "with --image: the edited face pasted back into the photo, at its size");
  edit_cmd->add_option("--save-latents", save_latents_path,
                       "write the edited S codes (and a photo's W+) to this HDF5 file");
  edit_cmd->add_option("--alphas", alphas_text,
                       "strengths, e.g. -3,0,3, or a sweep FROM:TO:COUNT such as -4:4:9 (default from config)");
  edit_cmd->add_option("--method", method, "feu (retrieval + SVM) or global (StyleCLIP)")
      ->check(CLI::IsMember({"feu", "global"}));
  edit_cmd->add_option("--neutral", neutral, "neutral text for --method global, e.g. \"face\"");
  edit_cmd->add_option("--beta", beta_text, "threshold, a number or auto");
  edit_cmd->add_option("--k-pos", k_pos, "positives retrieved");
  edit_cmd->add_option("--k-neg", k_neg, "negatives");
  edit_cmd->add_option("--negatives", negatives, "farthest or random")->check(CLI::IsMember({"farthest", "random"}));
  edit_cmd->add_option("--format", format, "png or jpeg (default: from the output's extension)");
  edit_cmd->add_flag("--grid", grid, "one image: original and edits side by side, labelled");
  int64_t preview_size = 0;
  edit_cmd->add_option("--size", preview_size,
                       "a preview: images at this power-of-two side (StyleGAN2 stops at that block), e.g. 256");
  edit_cmd->add_flag("--original", original, "also write the unedited face (<output>_original)");
  edit_cmd->add_option("--id", id, "request id (default: random); resending an id never runs it twice");
  edit_cmd->add_option("--deadline-ms", deadline_ms, "give up if not started within this many ms");
  edit_cmd->add_flag("--local", local, "run the engine in this process (needs --config), no daemon");
  edit_cmd->add_option("--config", config_path, "config file for --local");
  edit_cmd->callback([&] {
    check(!instruction.empty() || !instructions_file.empty(), ErrorCode::kInvalidArgument,
          "feu edit needs an instruction (e.g. \"blond hair\") or --instructions FILE");
    if (output.empty() && !outdir.empty()) output = (fs::path(outdir) / "edit.png").string();
    check(!output.empty(), ErrorCode::kInvalidArgument, "feu edit needs -o OUT.png (or --outdir DIR)");
    if (!outdir.empty()) {
      std::error_code error;
      fs::create_directories(outdir, error);
      check(!error, ErrorCode::kIoError, "--outdir " + outdir + ": " + error.message());
    }
    check_output_directory(output);
    edit::EditRequest request;
    request.method = method == "global" ? edit::Method::kGlobal : edit::Method::kFeu;
    request.neutral = neutral;
    const int faces_given = int(edit_cmd->count("--seed") > 0) + int(!seeds_text.empty()) +
                            int(!latent_file.empty()) + int(!image_path.empty());
    check(faces_given <= 1, ErrorCode::kInvalidArgument,
          "give one face source to edit: --seed, --seeds, --latent-file or --image, not several");
    if (faces_given == 0) std::cerr << "feu: no --seed, --seeds, --latent-file or --image given: editing seed 0\n";
    check(image_path.empty() ? (edit_cmd->count("--face") == 0 && !paste) : true, ErrorCode::kInvalidArgument,
          "--face and --paste work on a photo: add --image PHOTO");
    for (const char* flag : {"--k-pos", "--k-neg"}) {
      const int64_t value = std::string(flag) == "--k-pos" ? k_pos : k_neg;
      check(edit_cmd->count(flag) == 0 || value >= 1, ErrorCode::kInvalidArgument,
            std::string(flag) + " " + std::to_string(value) + " is out of range (expected at least 1)");
    }
    check(std::isnan(psi) || latent_file.empty(), ErrorCode::kInvalidArgument,
          "--psi truncates a seed's W; a --latent-file's latents are used as they are");
    check(latent_kind.empty() || !latent_file.empty(), ErrorCode::kInvalidArgument,
          "--latent-kind says what a --latent-file holds: add --latent-file FILE");
    request.seed = seed;
    if (!std::isnan(psi)) request.psi = psi;
    if (!image_path.empty()) {
      request.latent_kind = edit::LatentKind::kPhoto;
      request.photo = read_file(image_path);
      if (edit_cmd->count("--face")) request.face = face_index;
      request.paste = paste;
    }
    check(!local || !config_path.empty(), ErrorCode::kInvalidArgument, "--local needs --config FILE");
#ifdef FEU_CLIENT_LOCAL
    std::unique_ptr<daemon::LocalEngine> engine;  // loaded once, when first needed
#endif
    // --latent-file: one latent per row, sent as the protocol's flat latent.
    std::vector<std::vector<float>> latent_rows;
    if (!latent_file.empty()) {
#ifdef FEU_CLIENT_LOCAL
      json engine_info;
      if (local) {
        engine = std::make_unique<daemon::LocalEngine>(config_path);
        engine_info = engine->info();
      } else {
        service::Message reply = common.connect().status();
        throw_reply_error(reply);
        engine_info = reply.header.value("engine", json::object());
      }
      std::optional<latents::Kind> asked;
      if (!latent_kind.empty()) asked = latents::parse_kind(latent_kind, "--latent-kind");
      const latents::Latents read = latents::read(latent_file, latent_shapes(engine_info), asked);
      request.latent_kind = read.kind == latents::Kind::kS       ? edit::LatentKind::kS
                            : read.kind == latents::Kind::kWPlus ? edit::LatentKind::kWPlus
                                                                 : edit::LatentKind::kW;
      const size_t width = read.values.size() / static_cast<size_t>(read.count);
      for (int64_t row = 0; row < read.count; ++row)
        latent_rows.emplace_back(read.values.begin() + row * width, read.values.begin() + (row + 1) * width);
#else
      // Reading latent files takes the PyTorch-file reader (libtorch): feu-local has it.
      exec_local_program(argv);
#endif
    }
    if (!alphas_text.empty()) request.alphas = parse_alphas(alphas_text);
    if (beta_text == "auto") request.beta_auto = true;
    else if (!beta_text.empty()) request.beta = parse_number(beta_text, "--beta", "0.15 or auto");
    if (k_pos > 0) request.k_pos = k_pos;
    if (k_neg > 0) request.k_neg = k_neg;
    if (!negatives.empty()) request.negatives = negatives;
    request.format = format_for(format, output);
    request.grid = grid;
    request.return_original = original;
    if (edit_cmd->count("--size")) request.size = preview_size;
    if (!save_latents_path.empty()) {
      check_output_directory(save_latents_path);
      request.return_styles = true;
    }

    // Every instruction x every seed: one job each, models and templates
    // loaded once (--local) or kept warm in the daemon, which batches them.
    std::vector<std::string> instructions;
    if (!instruction.empty()) instructions.push_back(instruction);
    if (!instructions_file.empty()) {
      const std::vector<std::string> listed = read_instructions(instructions_file);
      instructions.insert(instructions.end(), listed.begin(), listed.end());
    }
    std::vector<int64_t> seeds = {request.seed};
    if (!seeds_text.empty()) seeds = parse_int_list(seeds_text, "--seeds");
    const size_t faces = latent_rows.empty() ? seeds.size() : latent_rows.size();
    std::vector<Job> jobs;
    const bool several = instructions.size() * faces > 1;
    for (const std::string& text : instructions) {
      for (size_t face = 0; face < faces; ++face) {
        Job job;
        job.request = request;
        job.request.instruction = text;
        std::string face_suffix;
        if (!latent_rows.empty()) {
          job.request.latent = latent_rows[face];
          if (faces > 1) {
            job.face = "latent " + std::to_string(face);
            face_suffix = "_latent" + std::to_string(face);
          }
        } else if (!seeds_text.empty()) {
          job.request.seed = seeds[face];
          job.face = "seed " + std::to_string(seeds[face]);
          face_suffix = "_seed" + std::to_string(seeds[face]);
        }
        job.output = output;
        job.latents = save_latents_path;
        if (several) {
          const std::string suffix = (instructions.size() > 1 ? "_" + slug(text) : "") + face_suffix;
          job.output = with_suffix(output, suffix);
          if (!job.latents.empty()) job.latents = with_suffix(save_latents_path, suffix);
        }
        jobs.push_back(std::move(job));
      }
    }

    auto t0 = std::chrono::steady_clock::now();
    std::vector<edit::EditResult> results(jobs.size());
    if (local) {
#ifdef FEU_CLIENT_LOCAL
      std::vector<edit::EditRequest> requests;
      for (const Job& job : jobs) requests.push_back(job.request);
      if (!engine) engine = std::make_unique<daemon::LocalEngine>(config_path);
      results = engine->edit(requests);
      if (common.json_output)
        for (const edit::EditResult& result : results)
          std::cout << service::dump_json(service::edit_done_reply("local", result, json::object()).header) << "\n";
#else
      exec_local_program(argv);
#endif
    } else if (jobs.size() == 1) {
      service::Client client = common.connect();
      std::string request_id = id.empty() ? service::Client::new_id() : id;
      service::Message reply =
          client.edit(request_id, jobs[0].request, deadline_ms > 0 ? std::optional<int64_t>(deadline_ms) : std::nullopt);
      if (common.json_output) std::cout << service::dump_json(reply.header) << "\n";
      throw_reply_error(reply);
      results[0] = service::decode_edit_result(reply);
    } else {
      check(id.empty(), ErrorCode::kInvalidArgument, "--id names one job; a batch gets one random id per job");
      common.connect();  // fail fast when nothing listens
      // Several jobs in flight, so the daemon batches them.
      std::atomic<size_t> next{0};
      std::mutex print_mutex;
      std::vector<std::thread> workers;
      for (int w = 0; w < std::min<int>(in_flight, static_cast<int>(jobs.size())); ++w) {
        workers.emplace_back([&] {
          service::Client client(common.options());
          for (size_t i = next++; i < jobs.size(); i = next++) {
            service::Message reply = client.edit(service::Client::new_id(), jobs[i].request,
                                                 deadline_ms > 0 ? std::optional<int64_t>(deadline_ms) : std::nullopt);
            if (common.json_output) {
              std::lock_guard<std::mutex> lock(print_mutex);
              std::cout << service::dump_json(reply.header) << "\n";
            }
            if (reply.header.value("status", "") == "done") {
              results[i] = service::decode_edit_result(reply);
            } else {
              const json& error = reply.header.contains("error") ? reply.header["error"] : json::object();
              results[i].error = edit::EditError{error.value("code", std::string("internal")),
                                                 error.value("message", std::string("no message"))};
            }
          }
        });
      }
      for (std::thread& worker : workers) worker.join();
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int failed = 0;
    for (size_t i = 0; i < jobs.size(); ++i) {
      if (results[i].error) {
        if (jobs.size() == 1) {
          std::cerr << "feu: error [" << results[i].error->code << "]: " << results[i].error->message << std::endl;
          std::exit(2);
        }
        std::cerr << "feu: error [" << results[i].error->code << "] in " << quote_text(jobs[i].request.instruction)
                  << (jobs[i].face.empty() ? "" : " " + jobs[i].face) << ": "
                  << results[i].error->message << "\n";
        ++failed;
        continue;
      }
      if (several) std::cout << quote_text(jobs[i].request.instruction)
                             << (jobs[i].face.empty() ? "" : " " + jobs[i].face) << ":\n";
      print_edit_summary(results[i], write_images(results[i], jobs[i].output), several ? std::nullopt
                                                                                      : std::optional<double>(seconds));
      if (!jobs[i].latents.empty()) {
        save_latents(jobs[i].latents, results[i]);
        std::cout << "wrote " << fs::absolute(jobs[i].latents).string() << " (latents: s"
                  << (results[i].wplus.empty() ? "" : ", wplus") << ")\n";
      }
    }
    if (several)
      std::printf("%zu edits, %d failed; elapsed: %.3f s\n", jobs.size(), failed, seconds);
    if (failed > 0) std::exit(2);
  });

  // ---- result, cancel
  std::string result_id, result_output;
  auto* result_cmd = app.add_subcommand("result", "fetch a job's result by id");
  result_cmd->add_option("id", result_id)->required();
  result_cmd->add_option("-o,--output", result_output, "write its images here");
  result_cmd->callback([&] {
    if (!result_output.empty()) check_output_directory(result_output);
    service::Client client = common.connect();
    service::Message reply = client.result(result_id);
    std::cout << service::dump_json(reply.header) << "\n";
    throw_reply_error(reply);
    if (!result_output.empty() && reply.header.value("status", "") == "done")
      print_edit_summary(service::decode_edit_result(reply),
                         write_images(service::decode_edit_result(reply), result_output), std::nullopt);
  });
  std::string cancel_id;
  auto* cancel_cmd = app.add_subcommand("cancel", "cancel a queued job");
  cancel_cmd->add_option("id", cancel_id)->required();
  cancel_cmd->callback([&] {
    service::Client client = common.connect();
    service::Message reply = client.cancel(cancel_id);
    throw_reply_error(reply);
    std::cout << service::dump_json(reply.header) << "\n";
  });

  // ---- status, ping, retrieve
  app.add_subcommand("status", "daemon status: version, queue, counters, latency percentiles")->callback([&] {
    service::Client client = common.connect();
    service::Message reply = client.status();
    throw_reply_error(reply);
    std::cout << reply.header.dump(2) << "\n";
  });
  app.add_subcommand("ping", "check that the daemon answers")->callback([&] {
    service::Client client = common.connect();
    auto t0 = std::chrono::steady_clock::now();
    service::Message reply = client.ping();
    throw_reply_error(reply);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    std::printf("pong from %s: artifact version %s, %.2f ms\n", common.server.c_str(),
                reply.header.value("artifact_version", std::string("?")).c_str(), ms);
  });
  std::string retrieve_text;
  int64_t retrieve_k = 10;
  auto* retrieve_cmd = app.add_subcommand("retrieve", "top-k corpus images for a text");
  retrieve_cmd->add_option("text", retrieve_text)->required();
  retrieve_cmd->add_option("-k", retrieve_k, "how many")->capture_default_str();
  std::string sheet_path, retrieve_config;
  int64_t sheet_k_pos = 0, sheet_k_neg = 0;
  int sheet_thumb = 96;
  bool retrieve_local = false;
  retrieve_cmd->add_option("--contact-sheet", sheet_path,
                           "with --local: the FEU positives (green) and negatives (red) of TEXT as thumbnails");
  retrieve_cmd->add_option("--k-pos", sheet_k_pos, "with --contact-sheet: positives (default from config)");
  retrieve_cmd->add_option("--k-neg", sheet_k_neg, "with --contact-sheet: negatives (default from config)");
  retrieve_cmd->add_option("--thumb", sheet_thumb, "thumbnail side in pixels")->check(CLI::Range(16, 512));
  retrieve_cmd->add_flag("--local", retrieve_local, "run the engine in this process (needs --config)");
  retrieve_cmd->add_option("--config", retrieve_config, "config file for --local");
  retrieve_cmd->callback([&] {
    if (retrieve_local || !sheet_path.empty()) {
      check(retrieve_local, ErrorCode::kInvalidArgument,
            "--contact-sheet reads the corpus images from disk: run it with --local --config FILE");
      check(!retrieve_config.empty(), ErrorCode::kInvalidArgument, "--local needs --config FILE");
      if (!sheet_path.empty()) {
        check_output_directory(sheet_path);
        format_for("", sheet_path);
      }
#ifdef FEU_CLIENT_LOCAL
      edit::EditRequest request;
      request.instruction = retrieve_text;
      if (sheet_k_pos > 0) request.k_pos = sheet_k_pos;
      if (sheet_k_neg > 0) request.k_neg = sheet_k_neg;
      const json explained = daemon::run_local_explain(retrieve_config, request, sheet_path, sheet_thumb);
      std::cout << explained.dump(2) << "\n";
      return;
#else
      exec_local_program(argv);
#endif
    }
    service::Client client = common.connect();
    service::Message reply = client.retrieve(retrieve_text, retrieve_k);
    throw_reply_error(reply);
    std::cout << reply.header["result"].dump(2) << "\n";
  });

  // ---- keygen
  std::string key_prefix;
  bool key_force = false;
  auto* keygen_cmd = app.add_subcommand("keygen", "make a CURVE keypair: PREFIX.key (secret) and PREFIX.pub");
  keygen_cmd->add_option("--out", key_prefix, "file prefix")->required();
  keygen_cmd->add_flag("--force", key_force, "replace an existing keypair (its holders lose access)");
  keygen_cmd->callback([&] {
    std::string public_key = service::write_curve_keypair(key_prefix, key_force);
    std::cout << "wrote " << key_prefix << ".key (secret) and " << key_prefix << ".pub: " << public_key << "\n";
  });

  return run_cli(app, argc, argv);
}
