// Service counters and latency percentiles for the `status` request.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace feu::service {

// The last `capacity` samples of one latency; percentiles over that window so
// that status reflects current behaviour, not the daemon's whole life.
class LatencyWindow {
 public:
  explicit LatencyWindow(size_t capacity = 4096) : capacity_(capacity) {}
  void add(double ms);
  // {"count", "mean", "p50", "p95", "p99", "max"} over the window; count is lifetime.
  nlohmann::json summary() const;
  // Nearest-rank percentile (q in [0,1]) of the window; 0 when empty.
  double percentile(double q) const;

 private:
  size_t capacity_;
  std::vector<double> samples_;
  size_t next_ = 0;
  int64_t count_ = 0;
};

// Lifetime counts of samples at or below each bound (cumulative, as
// Prometheus histograms are), for /metrics: windows forget, rates need totals.
class Histogram {
 public:
  explicit Histogram(std::vector<double> upper_bounds);
  void add(double value);
  // {"le": [bounds...], "counts": [cumulative per bound...], "count", "sum"}; +Inf is "count".
  nlohmann::json to_json() const;

 private:
  std::vector<double> bounds_;
  std::vector<int64_t> counts_;  // per bucket, not cumulative
  int64_t count_ = 0;
  double sum_ = 0;
};

// Bucket bounds in ms for latencies (1 ms to 2 min), and powers of two for
// batch sizes (the stage named "batch_size").
const std::vector<double>& latency_buckets_ms();
const std::vector<double>& batch_size_buckets();

// Thread-safe named counters and per-stage latency windows and histograms.
class ServiceStats {
 public:
  void count(const std::string& name, int64_t n = 1);
  void observe(const std::string& stage, double ms);
  int64_t counter(const std::string& name) const;
  double percentile(const std::string& stage, double q) const;
  // {"counters": {...}, "latency_ms": {stage: summary}, "histograms": {stage: Histogram::to_json}}
  nlohmann::json to_json() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, int64_t> counters_;
  std::map<std::string, LatencyWindow> stages_;
  std::map<std::string, Histogram> histograms_;
};

}  // namespace feu::service
