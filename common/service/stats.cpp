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

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(bounds_.size(), 0) {}

void Histogram::add(double value) {
  auto bucket = std::lower_bound(bounds_.begin(), bounds_.end(), value);
  if (bucket != bounds_.end()) ++counts_[bucket - bounds_.begin()];
  ++count_;
  sum_ += value;
}

nlohmann::json Histogram::to_json() const {
  std::vector<int64_t> cumulative(counts_.size());
  int64_t running = 0;
  for (size_t i = 0; i < counts_.size(); ++i) cumulative[i] = running += counts_[i];
  return {{"le", bounds_}, {"counts", cumulative}, {"count", count_}, {"sum", sum_}};
}

const std::vector<double>& latency_buckets_ms() {
  static const std::vector<double> bounds = {1,    2.5,  5,    10,    25,    50,    100,   250,
                                             500,  1000, 2500, 5000, 10000, 30000, 60000, 120000};
  return bounds;
}

const std::vector<double>& batch_size_buckets() {
  static const std::vector<double> bounds = {1, 2, 4, 8, 16, 32, 64, 128};
  return bounds;
}

void ServiceStats::count(const std::string& name, int64_t n) {
  std::lock_guard<std::mutex> lock(mutex_);
  counters_[name] += n;
}

void ServiceStats::observe(const std::string& stage, double ms) {
  std::lock_guard<std::mutex> lock(mutex_);
  stages_[stage].add(ms);
  auto it = histograms_.find(stage);
  if (it == histograms_.end())
    it = histograms_.emplace(stage, Histogram(stage == "batch_size" ? batch_size_buckets() : latency_buckets_ms()))
             .first;
  it->second.add(ms);
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
  nlohmann::json histograms = nlohmann::json::object();
  for (const auto& [stage, histogram] : histograms_) histograms[stage] = histogram.to_json();
  return {{"counters", counters}, {"latency_ms", latency}, {"histograms", histograms}};
}

}  // namespace feu::service
