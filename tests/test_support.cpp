#include "test_support.h"

#include <sys/wait.h>
#include <unistd.h>

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

}  // namespace feu::test
