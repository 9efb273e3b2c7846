// The HTTP front (service/http_front.h) against the daemon program on free
// loopback ports: feu-daemon-fake is the real daemon_app (config, HTTP
// listener, ZeroMQ server, journal) around the test double backend, so every
// endpoint, error status and limit is exercised end to end in seconds. Every
// JSON response is recorded and checked against daemon/openapi.json
// (check_openapi.py, python3-jsonschema).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <regex>
#include <thread>

#include "../service/fake_backend.h"
#include "core/config.h"
#include "core/files.h"
#include "core/h5.h"
#include "image/codec.h"
#include "image/pillow_resample.h"
#include "service/client.h"
#include "service/curve_keys.h"
#include "service/server_config.h"
#include "test_support.h"

namespace feu::service {
namespace {
namespace fs = std::filesystem;
using nlohmann::json;

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// feu-daemon-fake with an HTTP front on a free port; killed on destruction.
class Daemon {
 public:
  Daemon(const test::TempDir& dir, const std::string& config, std::vector<std::string> extra = {},
         const std::string& name = "daemon")
      : url_file_(dir.file(name + ".url")), log_file_(dir.file(name + ".log")) {
    std::vector<std::string> args = {std::string(FEU_TEST_BINARY_DIR) + "/feu-daemon-fake", "--config", config,
                                     "--http-url-file", url_file_};
    args.insert(args.end(), extra.begin(), extra.end());
    pid_ = test::spawn(std::move(args), log_file_);
  }
  ~Daemon() { test::stop(pid_); }
  // "http://HOST:PORT" once the front listens (and, with `ready`, the daemon
  // serves); "" if the daemon exited first (exit code in *code).
  std::string url(int* exit_code = nullptr, bool ready = true) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {  // a /readyz may itself take seconds
      std::string text = slurp(url_file_);
      if (!text.empty() && text.back() == '\n') {
        std::string url = text.substr(0, text.size() - 2);  // no trailing '/'
        auto readyz = httplib::Client(url).Get("/readyz");
        if (!ready || (readyz && readyz->status == 200)) return url;
      }
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        if (exit_code) *exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128;
        return "";
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return "";
  }
  std::string log() const { return slurp(log_file_); }

 private:
  std::string url_file_, log_file_;
  pid_t pid_ = -1;
};

// A corpus image with detail along both axes, so that resampling shows.
image::Image pattern_image(int width, int height) {
  image::Image out{width, height, {}};
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < 3; ++c)
        out.rgb.push_back(static_cast<uint8_t>((x * 7 + y * 3 + c * 80 + (x * y) % 29 * 4) % 256));
  return out;
}
constexpr int64_t kPngId = 5, kJpegId = 6, kNotAnImageId = 7, kGoneId = 8;

// One artifact version whose corpus holds a 300x200 PNG (id 5), a 150x260
// JPEG (6), a file that is no image (7) and one that is gone (8).
std::string write_artifacts(const test::TempDir& dir) {
  fs::create_directories(dir.file("images"));
  fs::create_directories(dir.file("artifacts/v7/corpus"));
  image::write_image(dir.file("images/a.png"), pattern_image(300, 200));
  image::write_image(dir.file("images/b.jpg"), pattern_image(150, 260));
  std::ofstream(dir.file("images/c.png"), std::ios::binary) << "\x89PNG\r\n\x1a\nno image after all";
  h5::File file = h5::File::create(dir.file("artifacts/v7/corpus/corpus.h5"));
  std::vector<int64_t> ids = {kPngId, kJpegId, kNotAnImageId, kGoneId};
  file.write_int64("ids", ids.data(), {4});
  file.write_strings("paths", {"a.png", "b.jpg", "c.png", "gone.png"});
  file.set_attr("/", "corpus_root", dir.file("images"));
  file.close();
  fs::create_directory_symlink("v7", dir.file("artifacts/current"));
  return "artifacts:\n  root: " + dir.file("artifacts") + "\n";
}

std::string write_config(const test::TempDir& dir, const std::string& daemon_extra = "",
                         const std::string& top = "") {
  std::string path = dir.file("config.yaml");
  std::ofstream(path) << top << "daemon:\n  bind: \"tcp://127.0.0.1:*\"\n  journal_dir: state\n" << daemon_extra;
  return path;
}

// A client that records each response for the OpenAPI check.
class Api {
 public:
  explicit Api(const std::string& url) : client_(url) { client_.set_read_timeout(30, 0); }

  httplib::Result get(const std::string& path, const std::string& templ, httplib::Headers headers = {}) {
    return record("GET", templ, client_.Get(path.c_str(), headers));
  }
  httplib::Result post(const std::string& path, const std::string& templ, const std::string& body,
                       httplib::Headers headers = {}) {
    return record("POST", templ, client_.Post(path.c_str(), headers, body, "application/json"));
  }
  httplib::Result post_form(const std::string& path, const std::string& templ,
                            const httplib::MultipartFormDataItems& items) {
    return record("POST", templ, client_.Post(path.c_str(), items));
  }
  httplib::Result del(const std::string& path, const std::string& templ) {
    return record("DELETE", templ, client_.Delete(path.c_str()));
  }

  // Runs check_openapi.py over everything recorded.
  void check_against_openapi(const test::TempDir& dir) {
    std::string file = dir.file("responses.json");
    std::ofstream(file) << recorded_.dump();
    std::string out;
    int rc = test::run_command(std::string("python3 ") + FEU_HTTP_TEST_DIR + "/check_openapi.py " + FEU_OPENAPI +
                                   " " + file,
                               &out);
    if (rc == 77) {
      std::cout << "[ SKIPPED  ] OpenAPI check: python3-jsonschema is not installed\n";
      return;
    }
    EXPECT_EQ(rc, 0) << out;
  }

 private:
  httplib::Result record(const std::string& method, const std::string& templ, httplib::Result result) {
    if (!result) {
      ADD_FAILURE() << method << " " << templ << ": no response (" << httplib::to_string(result.error()) << ")";
      return result;
    }
    json body = nullptr;
    if (result->get_header_value("Content-Type").rfind("application/json", 0) == 0)
      body = json::parse(result->body, nullptr, false);
    recorded_.push_back({{"method", method}, {"path", templ}, {"status", result->status},
                         {"content_type", result->get_header_value("Content-Type")}, {"body", body}});
    return result;
  }

  httplib::Client client_;
  json recorded_ = json::array();
};

json body_of(const httplib::Result& result) { return json::parse(result->body); }

std::string code_of(const httplib::Result& result) { return body_of(result)["error"]["code"]; }

// The value of one sample ("name{labels}") in Prometheus text; -1 when absent.
double metric_value(const std::string& text, const std::string& sample) {
  std::regex line("(^|\n)" + std::regex_replace(sample, std::regex(R"([{}\[\]().+*?^$|\\])"), R"(\$&)") +
                  " ([^\n]+)");
  std::smatch m;
  return std::regex_search(text, m, line) ? std::stod(m[2]) : -1.0;
}

image::Image decoded(const httplib::Result& result) {
  return image::decode_bytes(reinterpret_cast<const uint8_t*>(result->body.data()), result->body.size(),
                             "the served thumbnail");
}

ServerConfig http_config(const std::string& http_yaml) {
  ConfigMap root = ConfigMap::parse("daemon:\n  http: " + http_yaml + "\n", "test.yaml");
  return ServerConfig::from_config(root.child("daemon"));
}

TEST(HttpConfig, ShortAndLongFormsAndTheirMistakes) {
  EXPECT_EQ(http_config("\"127.0.0.1:9464\"").http.bind, "127.0.0.1:9464");
  const std::string hash(64, 'a');
  ServerConfig full =
      http_config("{bind: \"[::1]:0\", token_sha256: [" + hash + "], max_body_bytes: 1000, max_wait_s: 5}");
  EXPECT_EQ(full.http.bind, "[::1]:0");
  EXPECT_EQ(full.http.token_sha256, std::vector<std::string>{hash});
  EXPECT_EQ(full.http.max_body_bytes, 1000u);
  EXPECT_EQ(full.http.max_wait_s, 5);
  EXPECT_EQ(full.http.thumbnail_px, 128);
  EXPECT_EQ(full.http.thumbnail_cache, 512u);
  ServerConfig small = http_config("{bind: \"127.0.0.1:0\", thumbnail_px: 64, thumbnail_cache: 0}");
  EXPECT_EQ(small.http.thumbnail_px, 64);
  EXPECT_EQ(small.http.thumbnail_cache, 0u);
  EXPECT_FALSE(ServerConfig().http.enabled());

  test::expect_error([] { http_config("\"localhost:9464\""); }, ErrorCode::kConfigError,
                     {"not a loopback", "token_sha256"});
  test::expect_error([] { http_config("\"0.0.0.0:9464\""); }, ErrorCode::kConfigError,
                     {"0.0.0.0:9464", "token_sha256"});
  test::expect_error([] { http_config("\"127.0.0.1\""); }, ErrorCode::kConfigError, {"HOST:PORT"});
  test::expect_error([] { http_config("\"::1:9464\""); }, ErrorCode::kConfigError, {"HOST:PORT"});
  test::expect_error([] { http_config("\"127.0.0.1:70000\""); }, ErrorCode::kConfigError, {"HOST:PORT"});
  test::expect_error([] { http_config("{bind: \"0.0.0.0:1\", token_sha256: [s3cret]}"); }, ErrorCode::kConfigError,
                     {"not a sha256", "never the token itself"});
  test::expect_error([] { http_config("{bind: \"127.0.0.1:1\", colour: red}"); }, ErrorCode::kConfigError, {"colour"});
  test::expect_error([] { http_config("{bind: \"127.0.0.1:1\", max_body_bytes: -1}"); }, ErrorCode::kConfigError,
                     {"max_body_bytes"});
  for (const char* side : {"8", "4096", "-1"})
    test::expect_error([side] { http_config(std::string("{bind: \"127.0.0.1:1\", thumbnail_px: ") + side + "}"); },
                       ErrorCode::kConfigError, {"daemon.http.thumbnail_px is " + std::string(side), "16..1024"});
  test::expect_error([] { http_config("{bind: \"127.0.0.1:1\", thumbnail_px: big}"); }, ErrorCode::kConfigError,
                     {"thumbnail_px", "integer"});
  test::expect_error([] { http_config("{bind: \"127.0.0.1:1\", thumbnail_cache: -1}"); }, ErrorCode::kConfigError,
                     {"thumbnail_cache", "non-negative"});
}

// CMakeLists.txt checks the link graph at configure time; this checks the
// binaries as the loader sees them: the front resizes thumbnails with
// feu_codec, and nothing may pull the ATen half of image/ (feu_image) in.
TEST(HttpLinks, TheDaemonProgramAndThisTestLoadNoTorch) {
  for (const std::string& binary : {fs::read_symlink("/proc/self/exe").string(),
                                    std::string(FEU_TEST_BINARY_DIR) + "/feu-daemon-fake"}) {
    std::string libraries;
    ASSERT_EQ(test::run_command("ldd " + binary, &libraries), 0) << libraries;
    EXPECT_NE(libraries.find("libc.so"), std::string::npos) << libraries;  // ldd did list them
    for (const char* torch : {"libtorch", "libc10"})
      EXPECT_EQ(libraries.find(torch), std::string::npos) << binary << " loads " << torch << ":\n" << libraries;
  }
}

TEST(Http, EveryEndpointAndItsErrorsMatchTheOpenApiDocument) {
  test::TempDir dir;
  Daemon daemon(dir, write_config(dir, "  http: \"127.0.0.1:0\"\n", write_artifacts(dir)));
  std::string url = daemon.url();
  ASSERT_FALSE(url.empty()) << daemon.log();
  Api api(url);

  auto health = api.get("/healthz", "/healthz");
  EXPECT_EQ(health->status, 200);
  EXPECT_EQ(api.get("/readyz", "/readyz")->status, 200);
  auto openapi = api.get("/v1/openapi.json", "/v1/openapi.json");
  EXPECT_EQ(openapi->status, 200);
  EXPECT_EQ(openapi->body, slurp(FEU_OPENAPI));
  auto page = httplib::Client(url).Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->body.find("<html"), std::string::npos);

  // Submit, then poll with ?wait: the same images the protocol returns.
  auto accepted = api.post("/v1/edits", "/v1/edits", R"({"instruction": "smile", "seed": 7, "alphas": [-3, 3]})");
  ASSERT_EQ(accepted->status, 202) << accepted->body;
  std::string id = body_of(accepted)["id"];
  EXPECT_EQ(accepted->get_header_value("Location"), "/v1/edits/" + id);
  auto done = api.get("/v1/edits/" + id + "?wait=10", "/v1/edits/{id}");
  ASSERT_EQ(done->status, 200);
  json edit = body_of(done);
  ASSERT_EQ(edit["state"], "done") << edit.dump();
  ASSERT_EQ(edit["images"].size(), 2u);
  EXPECT_EQ(edit["images"][1]["alpha"], 3.0);
  auto image = api.get(edit["images"][1]["url"], "/v1/edits/{id}/images/{k}");
  ASSERT_EQ(image->status, 200);
  edit::EditRequest request;
  request.instruction = "smile";
  request.seed = 7;
  EXPECT_EQ(image->body, test::fake_image_bytes(request, 3, "v7"));
  EXPECT_EQ(image->get_header_value("Content-Type"), "image/png");
  EXPECT_EQ(api.get("/v1/edits/" + id + "/images/2", "/v1/edits/{id}/images/{k}")->status, 404);
  EXPECT_EQ(api.get("/v1/edits/" + id + "/images/original", "/v1/edits/{id}/images/{k}")->status, 404);

  // ?wait on the POST itself; the id is the client's, idempotent as on ZeroMQ.
  auto waited = api.post("/v1/edits?wait=10", "/v1/edits", R"({"id": "mine-1", "instruction": "blond hair"})");
  ASSERT_EQ(waited->status, 200) << waited->body;
  EXPECT_EQ(body_of(waited)["state"], "done");
  auto again = api.post("/v1/edits", "/v1/edits", R"({"id": "mine-1", "instruction": "blond hair"})");
  EXPECT_EQ(again->status, 200);
  EXPECT_EQ(body_of(again)["duplicate"], true);
  auto conflict = api.post("/v1/edits", "/v1/edits", R"({"id": "mine-1", "instruction": "red hair"})");
  EXPECT_EQ(conflict->status, 409);
  EXPECT_EQ(code_of(conflict), "id_conflict");
  auto keyed = api.post("/v1/edits?wait=10", "/v1/edits", R"({"instruction": "beard"})",
                        {{"Idempotency-Key", "key-1"}});
  EXPECT_EQ(body_of(keyed)["id"], "key-1");

  // A job that fails in the engine is a finished edit with its error.
  auto failed = api.post("/v1/edits?wait=10", "/v1/edits", R"({"instruction": "fail:no_channels"})");
  ASSERT_EQ(failed->status, 200);
  EXPECT_EQ(body_of(failed)["state"], "failed");
  EXPECT_EQ(body_of(failed)["error"]["code"], "no_channels");

  // The protocol's validation, with its codes, as HTTP statuses.
  struct Bad {
    std::string body, code;
    int status;
  };
  for (const Bad& bad : {Bad{"{not json", "bad_request", 400}, Bad{"[1]", "bad_request", 400},
                         Bad{R"({"instruction": "x", "colour": 1})", "unknown_field", 400},
                         Bad{R"({"instruction": ""})", "bad_request", 400},
                         Bad{R"({"instruction": "x", "alphas": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]})",
                             "payload_too_large", 413},
                         Bad{R"({"instruction": "x", "type": "ping"})", "unknown_field", 400},
                         Bad{R"({"instruction": "x", "latent": {}})", "bad_request", 400},
                         Bad{R"({"instruction": "x", "latent_values": [1, 2]})", "bad_request", 400}}) {
    auto r = api.post("/v1/edits", "/v1/edits", bad.body);
    EXPECT_EQ(r->status, bad.status) << bad.body << " -> " << r->body;
    EXPECT_EQ(code_of(r), bad.code) << bad.body;
  }
  auto misplaced = api.post("/v1/edits", "/v1/edits", R"({"instruction": "x", "latent_values": [1, 2]})");
  EXPECT_NE(misplaced->body.find(R"('latent_values' is only valid with latent w, wplus or s (got latent \"seed\"))"),
            std::string::npos)
      << misplaced->body;
  EXPECT_EQ(api.post("/v1/edits?wait=soon", "/v1/edits", R"({"instruction": "x"})")->status, 400);
  EXPECT_EQ(api.post("/v1/edits?wait=100000", "/v1/edits", R"({"instruction": "x"})")->status, 400);
  EXPECT_EQ(api.post("/v1/edits?wait=nan", "/v1/edits", R"({"instruction": "x"})")->status, 400);
  // A denormal is a number (std::stod throws on its underflow).
  EXPECT_EQ(api.post("/v1/edits?wait=2.2250738585e-313", "/v1/edits", R"({"instruction": "x"})")->status, 202);
  auto unknown = api.get("/v1/edits/nobody", "/v1/edits/{id}");
  EXPECT_EQ(unknown->status, 404);
  EXPECT_EQ(code_of(unknown), "not_found");
  EXPECT_EQ(api.del("/v1/edits/nobody", "/v1/edits/{id}")->status, 404);
  auto finished = api.del("/v1/edits/mine-1", "/v1/edits/{id}");
  EXPECT_EQ(finished->status, 200);
  EXPECT_EQ(body_of(finished)["cancelled"], false);

  // Retrieval and the thumbnails its hits link to.
  auto retrieved = api.post("/v1/retrieve", "/v1/retrieve", R"({"text": "smiling", "k": 3})");
  ASSERT_EQ(retrieved->status, 200) << retrieved->body;
  EXPECT_EQ(body_of(retrieved)["hits"].size(), 3u);
  EXPECT_EQ(body_of(retrieved)["hits"][0]["thumbnail"], "/v1/corpus/0/thumbnail");
  EXPECT_EQ(api.post("/v1/retrieve", "/v1/retrieve", R"({"text": "fail", "k": 3})")->status, 404);
  EXPECT_EQ(api.post("/v1/retrieve", "/v1/retrieve", R"({"text": 3})")->status, 400);
  const std::string thumbnail_path = "/v1/corpus/{id}/thumbnail";
  auto thumbnail = api.get("/v1/corpus/6/thumbnail", thumbnail_path);
  ASSERT_EQ(thumbnail->status, 200) << thumbnail->body;
  EXPECT_EQ(thumbnail->get_header_value("Content-Type"), "image/jpeg");
  const std::string etag = thumbnail->get_header_value("ETag");
  EXPECT_EQ(etag.size(), 34u) << etag;
  auto unchanged = api.get("/v1/corpus/6/thumbnail", thumbnail_path, {{"If-None-Match", "\"other\", W/" + etag}});
  EXPECT_EQ(unchanged->status, 304);
  EXPECT_TRUE(unchanged->body.empty());
  EXPECT_EQ(api.get("/v1/corpus/6/thumbnail", thumbnail_path, {{"If-None-Match", "\"other\""}})->status, 200);
  for (auto [id, status, code] : std::vector<std::tuple<int64_t, int, std::string>>{
           {99, 404, "not_found"}, {kGoneId, 404, "not_found"}, {kNotAnImageId, 500, "corrupt_file"}}) {
    auto refused = api.get("/v1/corpus/" + std::to_string(id) + "/thumbnail", thumbnail_path);
    EXPECT_EQ(refused->status, status) << id << ": " << refused->body;
    EXPECT_EQ(code_of(refused), code) << refused->body;
  }
  EXPECT_EQ(api.get("/v1/corpus/1234567890123456789/thumbnail", thumbnail_path)->status, 400);

  // An id the daemon refuses to echo (over max_id_bytes) is still answered at once, with its error.
  const std::string long_id(129, 'i');
  for (const std::string& path : {"/v1/edits/" + long_id, "/v1/edits/" + long_id + "/wplus"}) {
    auto too_long = api.get(path, path == "/v1/edits/" + long_id ? "/v1/edits/{id}" : "/v1/edits/{id}/wplus");
    EXPECT_EQ(too_long->status, 413) << too_long->body;
    EXPECT_NE(too_long->body.find("field 'id' is 129 bytes (limit 128)"), std::string::npos) << too_long->body;
  }
  auto long_edit = api.post("/v1/edits", "/v1/edits", R"({"instruction": "x", "id": ")" + long_id + R"("})");
  EXPECT_EQ(long_edit->status, 413) << long_edit->body;

  // A route the API does not have: JSON 404 too; a path it has, asked with
  // another method: 405 with the methods it takes.
  auto nowhere = httplib::Client(url).Get("/v2/nothing");
  EXPECT_EQ(nowhere->status, 404);
  EXPECT_EQ(code_of(nowhere), "not_found");
  httplib::Client raw(url);
  EXPECT_EQ(raw.Put("/v2/nothing", "", "text/plain")->status, 404);
  for (const auto& [method, path, allow] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"PUT", "/v1/retrieve", "POST"},
           {"GET", "/v1/retrieve", "POST"},
           {"PATCH", "/v1/edits/abc", "DELETE, GET, HEAD"},
           {"DELETE", "/v1/edits/abc/images/0", "GET, HEAD"},
           {"OPTIONS", "/metrics", "GET, HEAD"},
           {"POST", "/", "GET, HEAD"}}) {
    httplib::Request request;
    request.method = method;
    request.path = path;
    auto refused = raw.send(request);
    ASSERT_TRUE(refused) << method << " " << path;
    EXPECT_EQ(refused->status, 405) << method << " " << path << ": " << refused->body;
    EXPECT_EQ(refused->get_header_value("Allow"), allow) << method << " " << path;
    EXPECT_EQ(code_of(refused), "method_not_allowed") << refused->body;
  }

  api.check_against_openapi(dir);
}

// The thumbnail is Pillow's Image.thumbnail of the corpus image: its size,
// and the pixels pillow_resample's BICUBIC gives at that size. The second
// request is a cache hit (the metrics count it) with the same bytes.
TEST(HttpThumbnail, PillowsThumbnailOfTheCorpusImageThenFromTheCache) {
  test::TempDir dir;
  Daemon daemon(dir, write_config(dir, "  http: \"127.0.0.1:0\"\n", write_artifacts(dir)));
  std::string url = daemon.url();
  ASSERT_FALSE(url.empty()) << daemon.log();
  Api api(url);
  auto metric = [&](const std::string& counter) {
    auto scrape = httplib::Client(url).Get("/metrics");
    return scrape ? metric_value(scrape->body, counter + "{cache=\"thumbnail\"}") : -2.0;
  };
  const std::string path = "/v1/corpus/{id}/thumbnail";
  EXPECT_EQ(metric("feu_cache_misses_total"), 0);

  auto first = api.get("/v1/corpus/" + std::to_string(kPngId) + "/thumbnail", path);
  ASSERT_EQ(first->status, 200) << first->body;
  EXPECT_EQ(first->get_header_value("Content-Type"), "image/png");
  const image::Image thumbnail = decoded(first);
  EXPECT_EQ(thumbnail.width, 128);  // 300x200, the longer side 128: 128 / 1.5 = 85.3
  EXPECT_EQ(thumbnail.height, 85);
  const image::Image original = image::decode_file(dir.file("images/a.png"));
  EXPECT_TRUE(thumbnail.rgb == image::pillow_resize(original, 128, 85, image::PillowFilter::kBicubic).rgb);
  EXPECT_EQ(metric("feu_cache_misses_total"), 1);
  EXPECT_EQ(metric("feu_cache_hits_total"), 0);

  auto second = api.get("/v1/corpus/" + std::to_string(kPngId) + "/thumbnail", path);
  ASSERT_EQ(second->status, 200);
  EXPECT_TRUE(second->body == first->body);
  EXPECT_EQ(metric("feu_cache_hits_total"), 1);
  EXPECT_EQ(metric("feu_cache_misses_total"), 1);
  EXPECT_EQ(metric("feu_cache_entries"), 1);

  // A JPEG's thumbnail is a JPEG: 150x260 -> 74x128 (128 * 150 / 260 = 73.8),
  // the same resize encoded at image::encode_jpeg's default quality.
  auto jpeg = api.get("/v1/corpus/" + std::to_string(kJpegId) + "/thumbnail", path);
  ASSERT_EQ(jpeg->status, 200) << jpeg->body;
  EXPECT_EQ(jpeg->get_header_value("Content-Type"), "image/jpeg");
  const image::Image small = decoded(jpeg);
  EXPECT_EQ(small.width, 74);
  EXPECT_EQ(small.height, 128);
  const std::vector<uint8_t> expected = image::encode_jpeg(
      image::pillow_resize(image::decode_file(dir.file("images/b.jpg")), 74, 128, image::PillowFilter::kBicubic));
  EXPECT_TRUE(jpeg->body == std::string(expected.begin(), expected.end()));
  api.check_against_openapi(dir);
}

TEST(HttpThumbnail, ConfiguredSideAndNoCache) {
  test::TempDir dir;
  Daemon daemon(dir, write_config(dir, "  http: {bind: \"127.0.0.1:0\", thumbnail_px: 64, thumbnail_cache: 0}\n",
                                  write_artifacts(dir)));
  std::string url = daemon.url();
  ASSERT_FALSE(url.empty()) << daemon.log();
  httplib::Client client(url);
  for (int i = 0; i < 2; ++i) {
    auto r = client.Get("/v1/corpus/" + std::to_string(kPngId) + "/thumbnail");
    ASSERT_EQ(r->status, 200) << r->body;
    const image::Image thumbnail = decoded(r);
    EXPECT_EQ(thumbnail.width, 64);  // 64 / 1.5 = 42.7: 43 keeps the aspect closer
    EXPECT_EQ(thumbnail.height, 43);
  }
  std::string metrics = client.Get("/metrics")->body;
  EXPECT_EQ(metric_value(metrics, "feu_cache_misses_total{cache=\"thumbnail\"}"), 2) << metrics;
  EXPECT_EQ(metric_value(metrics, "feu_cache_hits_total{cache=\"thumbnail\"}"), 0) << metrics;
}

TEST(Http, PhotoUploadIsTheProtocolsPhotoLatent) {
  test::TempDir dir;
  Daemon daemon(dir, write_config(dir, "  http: \"127.0.0.1:0\"\n"));
  std::string url = daemon.url();
  ASSERT_FALSE(url.empty()) << daemon.log();
  Api api(url);
  std::string photo = "\xFF\xD8\xFF" "a photo's bytes";
  auto r = api.post_form("/v1/edits?wait=10", "/v1/edits",
                         {{"request", R"({"instruction": "smile", "face": 0, "paste": true})", "", "application/json"},
                          {"photo", photo, "me.jpg", "image/jpeg"}});
  if (r->status == 400 && r->body.find("is not a latent kind") != std::string::npos)
    GTEST_SKIP() << "this daemon's protocol has no photo latent yet: " << r->body;
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(body_of(r)["state"], "done");
  auto unknown_part = api.post_form("/v1/edits", "/v1/edits",
                                    {{"request", R"({"instruction": "smile"})", "", "application/json"},
                                     {"selfie", photo, "me.jpg", "image/jpeg"}});
  EXPECT_EQ(unknown_part->status, 400);
  // A photo that is no image is the request's fault (400), not the server's (500).
  auto not_an_image = api.post_form("/v1/edits", "/v1/edits",
                                    {{"request", R"({"instruction": "smile"})", "", "application/json"},
                                     {"photo", "GIF89a...", "me.gif", "image/gif"}});
  EXPECT_EQ(not_an_image->status, 400) << not_an_image->body;
  EXPECT_EQ(code_of(not_an_image), "corrupt_file") << not_an_image->body;
  api.check_against_openapi(dir);
}

// Sends `bytes` on one connection to the front at `url` and returns what
// comes back until `enough` appears, the server closes, or `wait_s` pass.
std::string exchange_raw(const std::string& url, const std::string& bytes, const std::string& enough = "",
                         int wait_s = 5) {
  const int port = std::stoi(url.substr(url.rfind(':') + 1));
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string response;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      send(fd, bytes.data(), bytes.size(), 0) == static_cast<ssize_t>(bytes.size())) {
    timeval timeout{wait_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    char buffer[4096];
    for (ssize_t n; (enough.empty() || response.find(enough) == std::string::npos) &&
                    (n = recv(fd, buffer, sizeof buffer, 0)) > 0;)
      response.append(buffer, n);
  }
  close(fd);
  return response;
}

// The Content-Length alone decides: the front answers 413 while the body is
// still unsent, so a client waiting for the answer first gets it.
TEST(Http, OversizedBodyIs413WithoutReadingIt) {
  test::TempDir dir;
  Daemon daemon(dir, write_config(dir, "  http: {bind: \"127.0.0.1:0\", max_body_bytes: 1000}\n"));
  std::string url = daemon.url();
  ASSERT_FALSE(url.empty()) << daemon.log();
  std::string head = "POST /v1/edits HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     "Content-Length: 10000000000\r\n\r\n{\"instruction\": ";
  const std::string response = exchange_raw(url, head, "payload_too_large");
  ASSERT_FALSE(response.empty()) << "no answer while the 10 GB body was unsent";
  EXPECT_EQ(response.rfind("HTTP/1.1 413", 0), 0u) << response;
  EXPECT_NE(response.find("payload_too_large"), std::string::npos) << response;

  httplib::Client client(url);
  auto small = client.Post("/v1/edits?wait=10", std::string(1000, ' ') + R"({"instruction": "smile"})",
                           "application/json");
  EXPECT_EQ(small->status, 413);  // 1024 bytes
  auto fits = client.Post("/v1/edits?wait=10", R"({"instruction": "smile"})", "application/json");
  EXPECT_EQ(fits->status, 200);
}

// A request line httplib cannot read (a method it does not know) is a 400
// naming the methods, which tells the client to close the connection (its
// body is unread); nothing after it on that connection is answered.
TEST(Http, AnUnreadableRequestLineIs400AndNothingBehindItIsAnswered) {
  test::TempDir dir;
  Daemon daemon(dir, write_config(dir, "  http: \"127.0.0.1:0\"\n"));
  std::string url = daemon.url();
  ASSERT_FALSE(url.empty()) << daemon.log();
  const std::string body = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";  // smuggled as a body
  const std::string response =
      exchange_raw(url, "QUERY /v1/retrieve HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\n\r\n" + body + "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                   "", 1);
  EXPECT_EQ(response.rfind("HTTP/1.1 400", 0), 0u) << response;
  EXPECT_NE(response.find("Connection: close"), std::string::npos) << response;
  EXPECT_NE(response.find(R"(the request line of method \"QUERY\" could not be read)"), std::string::npos)
      << response;
  EXPECT_EQ(response.find("HTTP/1.1 ", 1), std::string::npos) << "more than one response: " << response;
  EXPECT_EQ(httplib::Client(url).Get("/healthz")->status, 200);
}

// JSON nested a million levels deep parses (nlohmann's parser is iterative), but copying or
// printing it recurses once per level: such a body overflowed the HTTP thread's stack and took
// the daemon down. Every parse of outside JSON refuses more than kMaxJsonDepth levels.
TEST(Http, DeeplyNestedJsonIs400AndTheDaemonLivesOn) {
  test::TempDir dir;
  Daemon daemon(dir, write_config(dir, "  http: \"127.0.0.1:0\"\n"));
  std::string url = daemon.url();
  ASSERT_FALSE(url.empty()) << daemon.log();
  httplib::Client client(url);
  const size_t depth = 1'000'000;
  const std::string nested = std::string(depth, '[') + std::string(depth, ']');
  for (const auto& [path, body] : {std::pair<std::string, std::string>{"/v1/edits", R"({"instruction": "x", "alphas": )" + nested + "}"},
                                   {"/v1/retrieve", R"({"text": "x", "k": )" + nested + "}"}}) {
    auto r = client.Post(path, body, "application/json");
    ASSERT_TRUE(r) << path << ": no answer (the daemon died?) " << daemon.log();
    EXPECT_EQ(r->status, 400) << path << " -> " << r->body.substr(0, 300);
    EXPECT_EQ(code_of(r), "bad_request") << path;
    EXPECT_NE(r->body.find("nests deeper than 64 levels"), std::string::npos) << r->body.substr(0, 300);
  }
  auto fits = client.Post("/v1/edits?wait=10", R"({"instruction": "smile", "alphas": [1]})", "application/json");
  ASSERT_TRUE(fits) << daemon.log();
  EXPECT_EQ(fits->status, 200) << fits->body;
}

TEST(Http, BusyIs429AndCancelOfAQueuedEdit) {
  test::TempDir dir;
  Daemon daemon(dir, write_config(dir, "  http: \"127.0.0.1:0\"\n  max_queue: 2\n  max_batch: 1\n"),
                {"--fake-batch-ms", "400"});
  std::string url = daemon.url();
  ASSERT_FALSE(url.empty()) << daemon.log();
  Api api(url);
  std::vector<std::string> ids;
  std::optional<httplib::Response> busy;
  for (int i = 0; i < 6 && !busy; ++i) {
    auto r = api.post("/v1/edits", "/v1/edits", R"({"instruction": "job )" + std::to_string(i) + "\"}");
    if (r->status == 429) busy = *r;
    else ids.push_back(body_of(r)["id"]);
  }
  ASSERT_TRUE(busy) << "the queue of 2 never filled";
  EXPECT_EQ(json::parse(busy->body)["error"]["code"], "busy");
  EXPECT_FALSE(busy->get_header_value("Retry-After").empty());
  auto cancelled = api.del("/v1/edits/" + ids.back(), "/v1/edits/{id}");
  ASSERT_EQ(cancelled->status, 200);
  EXPECT_EQ(body_of(cancelled)["cancelled"], true) << cancelled->body;
  auto state = api.get("/v1/edits/" + ids.back(), "/v1/edits/{id}");
  EXPECT_EQ(body_of(state)["state"], "cancelled") << state->body;
  api.check_against_openapi(dir);
}

TEST(Http, NotReadyUntilLoadedAndMetricsMove) {
  test::TempDir dir;
  Daemon daemon(dir, write_config(dir, "  http: \"127.0.0.1:0\"\n"), {"--fake-load-ms", "1500"});
  std::string url = daemon.url(nullptr, false);
  ASSERT_FALSE(url.empty()) << daemon.log();
  Api api(url);
  EXPECT_EQ(api.get("/healthz", "/healthz")->status, 200);
  auto not_ready = api.get("/readyz", "/readyz");
  EXPECT_EQ(not_ready->status, 503);
  EXPECT_EQ(body_of(not_ready)["ready"], false);
  auto early = api.post("/v1/edits", "/v1/edits", R"({"instruction": "smile"})");
  EXPECT_EQ(early->status, 503);
  EXPECT_EQ(code_of(early), "shutting_down");

  int ready = 0;
  for (int i = 0; i < 100 && ready != 200; ++i) {
    ready = api.get("/readyz", "/readyz")->status;
    if (ready != 200) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_EQ(ready, 200);

  auto scrape = [&] {
    auto r = httplib::Client(url).Get("/metrics");
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type").rfind("text/plain; version=0.0.4", 0), 0u);
    return r->body;
  };
  auto value = metric_value;
  std::string before = scrape();
  EXPECT_EQ(value(before, "feu_jobs_done_total"), 0);
  ASSERT_EQ(api.post("/v1/edits?wait=10", "/v1/edits", R"({"instruction": "smile"})")->status, 200);
  ASSERT_EQ(api.post("/v1/edits?wait=10", "/v1/edits", R"({"instruction": "fail:no_channels"})")->status, 200);
  std::string after = scrape();
  EXPECT_EQ(value(after, "feu_jobs_done_total"), 1) << after;
  EXPECT_EQ(value(after, "feu_jobs_failed_total{code=\"no_channels\"}"), 1) << after;
  EXPECT_EQ(value(after, "feu_jobs_accepted_total"), 2) << after;
  EXPECT_EQ(value(after, "feu_stage_duration_seconds_count{stage=\"total\"}"), 2) << after;
  EXPECT_EQ(value(after, "feu_stage_duration_seconds_bucket{stage=\"total\",le=\"+Inf\"}"), 2) << after;
  EXPECT_EQ(value(after, "feu_batch_size_count"), 2) << after;
  EXPECT_EQ(value(after, "feu_artifact_info{version=\"v1\"}"), 1) << after;
  EXPECT_GE(value(after, "feu_http_responses_total{status=\"503\"}"), 1) << after;

  // The text format: HELP and TYPE before each family's samples, one sample a line.
  std::regex sample(R"([a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eEInfa]+)");
  std::set<std::string> typed;
  std::istringstream lines(after);
  for (std::string l; std::getline(lines, l);) {
    if (l.rfind("# TYPE ", 0) == 0) {
      typed.insert(l.substr(7, l.find(' ', 7) - 7));
      continue;
    }
    if (l.rfind("# HELP ", 0) == 0) continue;
    EXPECT_TRUE(std::regex_match(l, sample)) << l;
    std::string name = l.substr(0, l.find_first_of("{ "));
    bool declared = typed.count(name) > 0;
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (name.size() > strlen(suffix) && name.compare(name.size() - strlen(suffix), strlen(suffix), suffix) == 0)
        declared = declared || typed.count(name.substr(0, name.size() - strlen(suffix))) > 0;
    EXPECT_TRUE(declared) << "no TYPE line before " << l;
  }
  api.check_against_openapi(dir);
}

// 127.0.0.2 is loopback to the kernel but not to the rule: only 127.0.0.1
// and ::1 may go without tokens.
TEST(Http, NonLoopbackBindNeedsBearerTokens) {
  test::TempDir dir;
  {
    Daemon refused(dir, write_config(dir, "  http: \"127.0.0.2:0\"\n"), {}, "refused");
    int code = -1;
    EXPECT_EQ(refused.url(&code), "");
    EXPECT_EQ(code, 2) << refused.log();
    EXPECT_NE(refused.log().find("token_sha256"), std::string::npos) << refused.log();
  }
  const std::string token = "s3cret-token";
  const std::string hash = sha256_bytes(token.data(), token.size());
  Daemon daemon(dir, write_config(dir, "  http: {bind: \"127.0.0.2:0\", token_sha256: [" + hash + "]}\n"));
  std::string url = daemon.url();
  ASSERT_FALSE(url.empty()) << daemon.log();
  Api api(url);
  auto anonymous = api.get("/v1/edits/x", "/v1/edits/{id}");
  EXPECT_EQ(anonymous->status, 401);
  EXPECT_EQ(code_of(anonymous), "unauthorized");
  EXPECT_EQ(anonymous->get_header_value("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(api.get("/v1/edits/x", "/v1/edits/{id}", {{"Authorization", "Bearer wrong"}})->status, 401);
  EXPECT_EQ(api.get("/v1/edits/x", "/v1/edits/{id}", {{"Authorization", "Bearer " + token}})->status, 404);
  EXPECT_EQ(httplib::Client(url).Get("/metrics")->status, 401);
  EXPECT_EQ(api.get("/healthz", "/healthz")->status, 200);  // probes need no token
  EXPECT_EQ(api.get("/v1/openapi.json", "/v1/openapi.json")->status, 200);
}

// Under daemon.curve the front reaches the daemon with a key of its own, made
// at start and allowed beside the file's: HTTP works, ZeroMQ still wants a key.
TEST(Http, ADaemonUnderCurveServesHttpThroughItsOwnKey) {
  if (!zmq_has("curve")) GTEST_SKIP() << "libzmq without CURVE";
  test::TempDir dir;
  write_curve_keypair(dir.file("server"), false);
  const std::string client_public = write_curve_keypair(dir.file("client"), false);
  Daemon daemon(dir,
                write_config(dir, "  http: \"127.0.0.1:0\"\n  curve: {secret_key_file: server.key, "
                                  "allowed_clients_file: client.pub}\n"),
                {"--endpoint-file", dir.file("endpoint")});
  std::string url = daemon.url();  // ready: the front's ping went through CURVE
  ASSERT_FALSE(url.empty()) << daemon.log();
  Api api(url);
  auto edit = api.post("/v1/edits?wait=10", "/v1/edits", R"({"instruction": "smile", "seed": 3})");
  ASSERT_EQ(edit->status, 200) << edit->body;
  EXPECT_EQ(body_of(edit)["state"], "done");
  auto metrics = httplib::Client(url).Get("/metrics");  // the daemon's status, asked over CURVE
  ASSERT_TRUE(metrics);
  EXPECT_EQ(metrics->status, 200);
  EXPECT_GE(metric_value(metrics->body, "feu_jobs_done_total"), 1.0) << metrics->body;

  std::string endpoint = slurp(dir.file("endpoint"));
  ASSERT_FALSE(endpoint.empty());
  endpoint.pop_back();  // the newline
  ClientOptions keyless;
  keyless.server = endpoint;
  keyless.timeout_ms = 500;
  keyless.retries = 0;
  EXPECT_THROW(Client(keyless).ping(), Error);
  ClientOptions allowed = keyless;
  allowed.curve_server_key = read_public_key_file(dir.file("server.pub"), "server.pub");
  allowed.curve_public_key = client_public;
  allowed.curve_secret_key = read_secret_key_file(dir.file("client.key"), "client.key");
  EXPECT_EQ(Client(allowed).ping().header.value("type", ""), "ping");
}

// The page in headless Chromium (tests/http/page_test.py): a real photo from
// the shared faces, an instruction, the α slider, the grid and the corpus
// thumbnails (the server's, 128 px on the longer side), against the daemon
// with engine-like results; the screenshot is kept as
// build/tests/artifacts/http_page.png.
TEST(HttpPage, PhotoInstructionSliderGridAndThumbnailsInChromium) {
  std::string faces = std::string(FEU_DEFAULT_SHARED_DIR) + "/faces";
  std::string photo = faces + "/Tom_Cruise_avp_2014_4.jpg";
  if (!fs::exists(photo)) GTEST_SKIP() << "no shared photo at " << photo << " (the shared directory is absent)";
  photo = fs::canonical(photo).string();  // chromedriver uploads canonical paths only
  if (test::run_command("command -v chromium >/dev/null && command -v chromedriver >/dev/null") != 0)
    GTEST_SKIP() << "chromium and chromium-driver are not installed (scripts/install-deps.sh)";
  test::TempDir dir;
  Daemon daemon(dir, write_config(dir, "  http: \"127.0.0.1:0\"\n", write_artifacts(dir)),
                {"--fake-page-like", "--fake-batch-ms", "20"});
  std::string url = daemon.url();
  ASSERT_FALSE(url.empty()) << daemon.log();
  fs::create_directories(std::string(FEU_TEST_BINARY_DIR) + "/artifacts");
  std::string screenshot = std::string(FEU_TEST_BINARY_DIR) + "/artifacts/http_page.png";
  fs::remove(screenshot);
  std::string out;
  int rc = test::run_command(std::string("python3 ") + FEU_HTTP_TEST_DIR + "/page_test.py " + url + "/ " + photo +
                                 " " + screenshot + " 128 2>&1",
                             &out);
  if (rc == 77) GTEST_SKIP() << out;
  EXPECT_EQ(rc, 0) << out << "\n" << daemon.log();
  std::cout << out;
  EXPECT_TRUE(fs::exists(screenshot));
}

}  // namespace
}  // namespace feu::service
