// feu: the command-line client of feu-daemon.
//
//   feu edit "blond hair" --seed 42 -o out.png [--server ADDR] [--timeout S] [--retries N]
//            [--alphas -3,0,3] [--method global --neutral "face"] [--grid] [--format jpeg]
//   feu edit --local --config C "blond hair" --seed 42 -o out.png   (engine in-process)
//   feu status | feu ping | feu retrieve TEXT -k N | feu result ID -o OUT | feu cancel ID
//   feu keygen --out PREFIX [--force]   (CURVE keypair: PREFIX.key secret, PREFIX.pub public)
#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <iostream>

#include "core/cli.h"
#include "core/files.h"
#include "service/client.h"
#include "service/curve_keys.h"
#ifdef FEU_CLIENT_LOCAL
#include "local_edit.h"
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

std::vector<double> parse_alphas(const std::string& text) {
  std::vector<double> alphas;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    try {
      size_t used = 0;
      alphas.push_back(std::stod(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw Error(ErrorCode::kInvalidArgument, "--alphas: '" + item + "' is not a number (expected e.g. -3,0,3)");
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return alphas;
}

edit::ImageFormat format_for(const std::string& format, const std::string& output) {
  std::string f = format;
  if (f.empty()) {
    std::string ext = fs::path(output).extension().string();
    f = (ext == ".jpg" || ext == ".jpeg") ? "jpeg" : "png";
  }
  if (f == "png") return edit::ImageFormat::kPng;
  if (f == "jpeg" || f == "jpg") return edit::ImageFormat::kJpeg;
  throw Error(ErrorCode::kInvalidArgument, "--format '" + f + "' is not png or jpeg");
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
    std::string path = name_for("_original");
    write_file_atomic(path, result.original->bytes.data(), result.original->bytes.size());
    written.push_back(path);
  }
  return written;
}

void print_edit_summary(const edit::EditResult& result, const std::vector<std::string>& written, double seconds,
                        bool grid) {
  for (size_t i = 0; i < written.size(); ++i) {
    const auto& image = i < result.images.size() ? result.images[i] : *result.original;
    char what[64];
    if (i >= result.images.size()) snprintf(what, sizeof what, "original");
    else if (grid) snprintf(what, sizeof what, "grid: original and edits");
    else snprintf(what, sizeof what, "alpha %g", image.alpha);
    std::cout << "wrote " << fs::absolute(written[i]).string() << " (" << image.width << "x" << image.height << ", "
              << what << ")\n";
  }
  const json& d = result.diagnostics;
  if (d.is_object()) {
    if (d.contains("channels_changed")) std::cout << "channels changed: " << d["channels_changed"] << "\n";
    if (d.contains("artifact_version")) std::cout << "artifact version: " << d["artifact_version"] << "\n";
  }
  std::printf("%.3f s\n", seconds);
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
                                               latent_file, latent_kind = "w", config_path;
  int64_t seed = 0, k_pos = 0, k_neg = 0, deadline_ms = 0;
  double psi = NAN;
  bool grid = false, original = false, local = false;
  edit_cmd->add_option("instruction", instruction, "e.g. \"blond hair\"")->required();
  edit_cmd->add_option("-o,--output", output, "output image (.png or .jpg)")->required();
  edit_cmd->add_option("--seed", seed, "face from numpy RandomState(seed)");
  edit_cmd->add_option("--psi", psi, "truncation for the seed's W (default from config)");
  edit_cmd->add_option("--latent-file", latent_file, "raw little-endian float32 latent instead of a seed");
  edit_cmd->add_option("--latent-kind", latent_kind, "w, wplus or s (with --latent-file)")
      ->check(CLI::IsMember({"w", "wplus", "s"}));
  edit_cmd->add_option("--alphas", alphas_text, "strengths, e.g. -3,0,3 (default from config)");
  edit_cmd->add_option("--method", method, "feu (retrieval + SVM) or global (StyleCLIP)")
      ->check(CLI::IsMember({"feu", "global"}));
  edit_cmd->add_option("--neutral", neutral, "neutral text for --method global, e.g. \"face\"");
  edit_cmd->add_option("--beta", beta_text, "threshold, a number or auto");
  edit_cmd->add_option("--k-pos", k_pos, "positives retrieved");
  edit_cmd->add_option("--k-neg", k_neg, "negatives");
  edit_cmd->add_option("--negatives", negatives, "farthest or random")->check(CLI::IsMember({"farthest", "random"}));
  edit_cmd->add_option("--format", format, "png or jpeg (default: from the output's extension)");
  edit_cmd->add_flag("--grid", grid, "one image: original and edits side by side");
  edit_cmd->add_flag("--original", original, "also write the unedited face (<output>_original)");
  edit_cmd->add_option("--id", id, "request id (default: random); resending an id never runs it twice");
  edit_cmd->add_option("--deadline-ms", deadline_ms, "give up if not started within this many ms");
  edit_cmd->add_flag("--local", local, "run the engine in this process (needs --config), no daemon");
  edit_cmd->add_option("--config", config_path, "config file for --local");
  edit_cmd->callback([&] {
    check_output_directory(output);
    edit::EditRequest request;
    request.instruction = instruction;
    request.method = method == "global" ? edit::Method::kGlobal : edit::Method::kFeu;
    request.neutral = neutral;
    request.seed = seed;
    if (!std::isnan(psi)) request.psi = psi;
    if (!latent_file.empty()) {
      std::vector<uint8_t> bytes = read_file(latent_file);
      check(bytes.size() % 4 == 0 && !bytes.empty(), ErrorCode::kInvalidArgument,
            "--latent-file " + latent_file + " is not a whole number of float32 values");
      request.latent.resize(bytes.size() / 4);
      std::memcpy(request.latent.data(), bytes.data(), bytes.size());
      request.latent_kind = latent_kind == "s"       ? edit::LatentKind::kS
                            : latent_kind == "wplus" ? edit::LatentKind::kWPlus
                                                     : edit::LatentKind::kW;
    }
    if (!alphas_text.empty()) request.alphas = parse_alphas(alphas_text);
    if (beta_text == "auto") request.beta_auto = true;
    else if (!beta_text.empty()) request.beta = parse_alphas(beta_text).at(0);
    if (k_pos > 0) request.k_pos = k_pos;
    if (k_neg > 0) request.k_neg = k_neg;
    if (!negatives.empty()) request.negatives = negatives;
    request.format = format_for(format, output);
    request.grid = grid;
    request.return_original = original;
    auto t0 = std::chrono::steady_clock::now();
    edit::EditResult result;
    if (local) {
#ifdef FEU_CLIENT_LOCAL
      check(!config_path.empty(), ErrorCode::kInvalidArgument, "--local needs --config FILE");
      result = daemon::run_local_edit(config_path, request);
#else
      // The engine (libtorch) lives in the sibling program feu-local, so that
      // plain client calls start in milliseconds instead of seconds.
      std::string local_program = (fs::read_symlink("/proc/self/exe").parent_path() / "feu-local").string();
      check(fs::exists(local_program), ErrorCode::kUnsupported,
            "--local needs " + local_program + " (built with the edit engine), which is missing");
      argv[0] = local_program.data();
      execv(local_program.c_str(), argv);
      throw Error(ErrorCode::kIoError, "cannot run " + local_program + ": " + std::strerror(errno));
#endif
    } else {
      service::Client client(common.options());
      std::string request_id = id.empty() ? service::Client::new_id() : id;
      service::Message reply =
          client.edit(request_id, request, deadline_ms > 0 ? std::optional<int64_t>(deadline_ms) : std::nullopt);
      if (common.json_output) std::cout << service::dump_json(reply.header) << "\n";
      throw_reply_error(reply);
      result = service::decode_edit_result(reply);
    }
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    print_edit_summary(result, write_images(result, output), seconds, grid);
  });

  // ---- result, cancel
  std::string result_id, result_output;
  auto* result_cmd = app.add_subcommand("result", "fetch a job's result by id");
  result_cmd->add_option("id", result_id)->required();
  result_cmd->add_option("-o,--output", result_output, "write its images here");
  result_cmd->callback([&] {
    if (!result_output.empty()) check_output_directory(result_output);
    service::Client client(common.options());
    service::Message reply = client.result(result_id);
    std::cout << service::dump_json(reply.header) << "\n";
    throw_reply_error(reply);
    if (!result_output.empty() && reply.header.value("status", "") == "done")
      print_edit_summary(service::decode_edit_result(reply),
                         write_images(service::decode_edit_result(reply), result_output), 0, false);
  });
  std::string cancel_id;
  auto* cancel_cmd = app.add_subcommand("cancel", "cancel a queued job");
  cancel_cmd->add_option("id", cancel_id)->required();
  cancel_cmd->callback([&] {
    service::Client client(common.options());
    service::Message reply = client.cancel(cancel_id);
    throw_reply_error(reply);
    std::cout << service::dump_json(reply.header) << "\n";
  });

  // ---- status, ping, retrieve
  app.add_subcommand("status", "daemon status: version, queue, counters, latency percentiles")->callback([&] {
    service::Client client(common.options());
    service::Message reply = client.status();
    throw_reply_error(reply);
    std::cout << reply.header.dump(2) << "\n";
  });
  app.add_subcommand("ping", "check that the daemon answers")->callback([&] {
    service::Client client(common.options());
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
  retrieve_cmd->callback([&] {
    service::Client client(common.options());
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
