#include "index/progress.h"

#include <signal.h>
#include <unistd.h>

#include <cmath>

namespace feu::index {

namespace {
// The one piece of global state a signal handler needs.
std::atomic<bool> g_interrupted{false};

void on_signal(int signal_number) {
  if (g_interrupted.exchange(true)) {
    // Second signal: restore the default action and re-raise (hard stop).
    ::signal(signal_number, SIG_DFL);
    ::raise(signal_number);
  }
}
}  // namespace

void Interrupt::install_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  ::sigaction(SIGINT, &action, nullptr);
  ::sigaction(SIGTERM, &action, nullptr);
}
bool Interrupt::requested() { return g_interrupted.load(); }
void Interrupt::request() { g_interrupted.store(true); }
void Interrupt::reset() { g_interrupted.store(false); }

Progress::Progress(std::string label, int64_t total, std::string unit, int64_t already_done, FILE* out,
                   double plain_interval_s)
    : label_(std::move(label)),
      unit_(std::move(unit)),
      total_(total),
      start_done_(already_done),
      out_(out),
      tty_(out != nullptr && ::isatty(::fileno(out))),
      plain_interval_s_(plain_interval_s),
      start_(std::chrono::steady_clock::now()),
      last_print_(start_),
      done_(already_done) {}

Progress::~Progress() {
  if (!finished_ && tty_ && out_) std::fputc('\n', out_);
}

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const int64_t s = static_cast<int64_t>(seconds + 0.5);
  char buffer[32];
  if (s >= 3600)
    std::snprintf(buffer, sizeof buffer, "%ldh%02ldm", long(s / 3600), long(s / 60 % 60));
  else if (s >= 60)
    std::snprintf(buffer, sizeof buffer, "%ldm%02lds", long(s / 60), long(s % 60));
  else
    std::snprintf(buffer, sizeof buffer, "%lds", long(s));
  return buffer;
}

double Progress::rate() const {
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  return elapsed > 0 ? double(done_.load() - start_done_) / elapsed : 0.0;
}

void Progress::advance(int64_t units) {
  done_ += units;
  if (!out_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  const auto now = std::chrono::steady_clock::now();
  const double since = std::chrono::duration<double>(now - last_print_).count();
  if (since >= (tty_ ? 0.2 : plain_interval_s_)) {
    last_print_ = now;
    print(false);
  }
}

void Progress::finish() {
  if (!out_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  print(true);
}

void Progress::print(bool final_line) {
  const int64_t done = done_.load();
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double r = rate();
  const double eta = r > 0 ? double(total_ - done) / r : NAN;
  const double fraction = total_ > 0 ? std::min(1.0, double(done) / double(total_)) : 1.0;
  char stats[160];
  std::snprintf(stats, sizeof stats, "%ld/%ld %s  %.1f %s/s  elapsed %s  ETA %s", long(done), long(total_),
                unit_.c_str(), r, unit_.c_str(), format_duration(elapsed).c_str(),
                final_line ? "0s" : format_duration(eta).c_str());
  if (tty_) {
    const int width = 30;
    const int filled = static_cast<int>(fraction * width);
    std::string bar(filled, '#');
    bar.append(width - filled, '.');
    std::fprintf(out_, "\r%s [%s] %3d%% %s\033[K", label_.c_str(), bar.c_str(), int(fraction * 100), stats);
    if (final_line) std::fputc('\n', out_);
  } else {
    std::fprintf(out_, "%s: %3d%% %s\n", label_.c_str(), int(fraction * 100), stats);
  }
  std::fflush(out_);
}

}  // namespace feu::index
