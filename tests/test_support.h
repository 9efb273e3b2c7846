// Helpers shared by the test binaries.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <csignal>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"

namespace feu::test {

// Path of a file under the shared fixtures directory ($FEU_SHARED_DIR, else
// the build's default ../shared), or "" when it is absent.
std::string shared_file(const std::string& relative);

// A fresh empty directory, removed with the object.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Runs `fn` and expects a feu::Error with `code` whose message contains every
// one of `needles` (what was wrong, the file it concerns...).
void expect_error(const std::function<void()>& fn, ErrorCode code, const std::vector<std::string>& needles);

// Path of a built program (build/bin/<name>).
std::string program(const std::string& name);

// Writes a zip of (name, bytes) entries, stored uncompressed as PyTorch writes them.
void write_zip(const std::string& path,
               const std::vector<std::pair<std::string, std::string>>& entries);

// Runs a shell command; returns its exit status and, when asked, its combined
// stdout+stderr.
int run_command(const std::string& command, std::string* output = nullptr);

// Starts `argv` as a child process (argv[0] searched in PATH when it has no '/') with its stdout
// and stderr appended to `log_path` ("" leaves them the test's). With `parent_death_signal`, the
// child gets that signal when the forking thread dies, so a crashed test leaves no server behind.
// Returns its pid.
pid_t spawn(std::vector<std::string> argv, const std::string& log_path = "", int parent_death_signal = 0);

// Sends `signal` to a spawned child and reaps it; nothing for pid <= 0.
void stop(pid_t pid, int signal = SIGKILL);

}  // namespace feu::test

// Skips the test (or fails it when FEU_REQUIRE_SHARED=1, as in CI) when a
// shared fixture is missing. Declares `var` with the file's path.
#define FEU_SHARED_FILE_OR_SKIP(var, relative)                                              \
  const std::string var = ::feu::test::shared_file(relative);                               \
  if (var.empty()) {                                                                        \
    const char* require = std::getenv("FEU_REQUIRE_SHARED");                                \
    if (require && std::string(require) == "1")                                             \
      FAIL() << "shared fixture " << (relative) << " is missing and FEU_REQUIRE_SHARED=1";  \
    GTEST_SKIP() << "shared fixture " << (relative)                                         \
                 << " not found (set FEU_SHARED_DIR to the directory that holds parity/ and clip/)"; \
  }
