#include "service/stats.h"

#include <algorithm>
#include <cmath>

namespace feu::service {

void LatencyWindow::add(double ms) {
  if (samples_.size() < capacity_) samples_.push_back(ms);
  else samples_[next_] = ms;
  next_ = (next_ + 1) % capacity_;
  ++count_;
}

double LatencyWindow::percentile(double q) const {
  if (samples_.empty()) return 0;
  std::vector<double> sorted = samples_;
  std::sort(sorted.begin(), sorted.end());
  size_t rank = static_cast<size_t>(std::ceil(q * sorted.size()));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

nlohmann::json LatencyWindow::summary() const {
  double sum = 0, max = 0;
  for (double s : samples_) {
    sum += s;
    max = std::max(max, s);
  }
  auto round3 = [](double x) { return std::round(x * 1000) / 1000; };
  return {{"count", count_},
          {"mean", round3(samples_.empty() ? 0 : sum / samples_.size())},
          {"p50", round3(percentile(0.50))},
          {"p95", round3(percentile(0.95))},
          {"p99", round3(percentile(0.99))},
          {"max", round3(max)}};
}

void ServiceStats::count(const std::string& name, int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  counters_[name] += n;
}

void ServiceStats::observe(const std::string& stage, double ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  stages_[stage].add(ms);
}

int64_t ServiceStats::counter(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = counters_.find(name);
  return it == counters_.end() ? 0 : it->second;
}

double ServiceStats::percentile(const std::string& stage, double q) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = stages_.find(stage);
  return it == stages_.end() ? 0 : it->second.percentile(q);
}

nlohmann::json ServiceStats::to_json() const {
  std::lock_guard<std::mutex> lock(mutex_);
  nlohmann::json counters = nlohmann::json::object();
  for (const auto& [name, value] : counters_) counters[name] = value;
  nlohmann::json latency = nlohmann::json::object();
  for (const auto& [stage, window] : stages_) latency[stage] = window.summary();
  return {{"counters", counters}, {"latency_ms", latency}};
}

}  // namespace feu::service
