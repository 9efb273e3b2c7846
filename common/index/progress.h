// Progress reporting and Ctrl-C handling for long indexer runs.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <mutex>
#include <string>

namespace feu::index {

// A progress bar with rate and ETA on a terminal ("\r" redraws, at most 5 per
// second); plain lines every `plain_interval_s` otherwise (logs, CI). Writes to
// a FILE* (stderr by default). Thread-safe.
class Progress {
 public:
  Progress(std::string label,          // "embed", "directions", ...
           int64_t total,              // units of work (images, channels)
           std::string unit,           // "img", "ch"
           int64_t already_done = 0,   // units done before a resume (not counted in the rate)
           FILE* out = stderr,
           double plain_interval_s = 10.0);
  ~Progress();

  void advance(int64_t units = 1);
  // Prints the final line.
  void finish();
  // Rate of this run so far (units per second).
  double rate() const;

  // "1h02m", "3m05s", "12s".
  static std::string format_duration(double seconds);

 private:
  void print(bool final_line);

  std::string label_;
  std::string unit_;
  int64_t total_;
  int64_t start_done_;
  FILE* out_;
  bool tty_;
  double plain_interval_s_;
  std::chrono::steady_clock::time_point start_, last_print_;
  std::atomic<int64_t> done_;
  std::mutex mutex_;
  bool finished_ = false;
};

// Cooperative interruption: SIGINT/SIGTERM set a flag that long loops poll so
// they can write a checkpoint and stop cleanly. A second SIGINT kills as usual.
class Interrupt {
 public:
  static void install_handlers();
  static bool requested();
  static void request();  // tests and the --stop-after option use this
  static void reset();
};

}  // namespace feu::index
