#include "test_support.h"

#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

namespace feu::test {
namespace fs = std::filesystem;

std::string shared_file(const std::string& relative) {
  const char* env = std::getenv("FEU_SHARED_DIR");
  fs::path root = env && *env ? fs::path(env) : fs::path(FEU_DEFAULT_SHARED_DIR);
  fs::path file = root / relative;
  return fs::exists(file) ? file.string() : std::string();
}

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "feu-test-XXXXXX").string();
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (!mkdtemp(buffer.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buffer.data();
}

TempDir::~TempDir() {
  std::error_code ignored;
  fs::remove_all(path_, ignored);
}

std::string program(const std::string& name) { return std::string(FEU_BINARY_DIR) + "/" + name; }

void write_zip(const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& entries) {
  int code = 0;
  zip_t* zip = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
  if (!zip) throw std::runtime_error("cannot create zip " + path);
  for (const auto& [name, bytes] : entries) {
    // The buffers outlive zip_close, which is when libzip reads them.
    zip_source_t* source = zip_source_buffer(zip, bytes.data(), bytes.size(), 0);
    const zip_int64_t index =
        source ? zip_file_add(zip, name.c_str(), source, ZIP_FL_OVERWRITE) : -1;
    if (index < 0 && source) zip_source_free(source);
    if (index < 0 ||
        zip_set_file_compression(zip, static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0) != 0) {
      zip_discard(zip);
      throw std::runtime_error("cannot add " + name + " to zip " + path);
    }
  }
  if (zip_close(zip) != 0) {
    std::string why = zip_strerror(zip);
    zip_discard(zip);
    throw std::runtime_error("cannot write zip " + path + ": " + why);
  }
}

int run_command(const std::string& command, std::string* output) {
  std::string full = command + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) return -1;
  std::array<char, 4096> buffer;
  std::string text;
  size_t n;
  while ((n = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) text.append(buffer.data(), n);
  int status = pclose(pipe);
  if (output) *output = text;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

pid_t spawn(std::vector<std::string> argv, const std::string& log_path, int parent_death_signal) {
  const pid_t pid = fork();
  if (pid != 0) return pid;
  if (parent_death_signal != 0) prctl(PR_SET_PDEATHSIG, parent_death_signal);
  if (!log_path.empty()) {
    FILE* log = fopen(log_path.c_str(), "a");
    if (!log) _exit(126);
    dup2(fileno(log), 1);
    dup2(fileno(log), 2);
  }
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  execvp(args[0], args.data());
  _exit(127);
}

void stop(pid_t pid, int signal) {
  if (pid <= 0) return;
  kill(pid, signal);
  waitpid(pid, nullptr, 0);
}

void expect_error(const std::function<void()>& fn, ErrorCode code, const std::vector<std::string>& needles) {
  try {
    fn();
    ADD_FAILURE() << "expected a " << error_code_name(code) << " error mentioning " << needles.front();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    for (const std::string& needle : needles)
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "missing '" << needle << "' in: " << e.what();
  }
}

}  // namespace feu::test
