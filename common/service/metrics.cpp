#include "service/metrics.h"

#include <cmath>
#include <deque>
#include <map>
#include <sstream>
#include <vector>

namespace feu::service {
namespace {

using nlohmann::json;

// One metric family: its samples are written together under one HELP/TYPE,
// as the format requires.
class Family {
 public:
  Family(std::string name, std::string type, std::string help)
      : name_(std::move(name)), type_(std::move(type)), help_(std::move(help)) {}
  void sample(double value, const std::string& labels = "", const std::string& suffix = "") {
    lines_ << name_ << suffix;
    if (!labels.empty()) lines_ << '{' << labels << '}';
    lines_ << ' ' << number(value) << '\n';
  }
  bool empty() const { return lines_.str().empty(); }
  void write(std::ostringstream& out) const {
    if (empty()) return;
    out << "# HELP " << name_ << ' ' << help_ << "\n# TYPE " << name_ << ' ' << type_ << '\n' << lines_.str();
  }

  static std::string number(double value) {
    if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
    if (std::isnan(value)) return "NaN";
    std::ostringstream text;
    text.precision(15);
    text << value;
    return text.str();
  }

 private:
  std::string name_, type_, help_;
  std::ostringstream lines_;
};

std::string label(const std::string& name, const std::string& value) {
  return name + "=\"" + prometheus_label(value) + "\"";
}

double number_at(const json& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_number() ? it->get<double>() : 0.0;
}

const json& object_at(const json& object, const char* key) {
  static const json empty = json::object();
  auto it = object.find(key);
  return it != object.end() && it->is_object() ? *it : empty;
}

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

// A histogram from ServiceStats (bounds in `scale` units of the exposed unit).
void histogram(Family& family, const json& h, const std::string& labels, double scale) {
  const json& le = h.at("le");
  const json& counts = h.at("counts");
  std::string prefix = labels.empty() ? "" : labels + ",";
  for (size_t i = 0; i < le.size() && i < counts.size(); ++i)
    family.sample(counts[i].get<double>(), prefix + label("le", Family::number(le[i].get<double>() * scale)),
                  "_bucket");
  family.sample(number_at(h, "count"), prefix + label("le", "+Inf"), "_bucket");
  family.sample(number_at(h, "sum") * scale, labels, "_sum");
  family.sample(number_at(h, "count"), labels, "_count");
}

}  // namespace

std::string prometheus_label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string prometheus_text(const json& status, const json& http) {
  std::deque<Family> families;  // references stay valid as families are added
  auto family = [&families](const std::string& name, const std::string& type, const std::string& help) -> Family& {
    families.emplace_back(name, type, help);
    return families.back();
  };
  const json& server = object_at(status, "server");
  const json& counters = object_at(status, "counters");
  auto counter = [&](const char* key) { return number_at(counters, key); };

  family("feu_up", "gauge", "1 while the daemon serves").sample(1);
  family("feu_build_info", "gauge", "feu version and wire protocol of this daemon")
      .sample(1, label("version", server.value("version", std::string())) + "," +
                     label("protocol", std::to_string(server.value("protocol", 0))));
  family("feu_artifact_info", "gauge", "the artifact version being served")
      .sample(1, label("version", status.value("artifact_version", std::string())));
  family("feu_uptime_seconds", "gauge", "seconds since the daemon started").sample(number_at(server, "uptime_s"));
  family("feu_draining", "gauge", "1 while the daemon drains after SIGTERM (no new jobs)")
      .sample(server.value("draining", false) ? 1 : 0);

  family("feu_requests_total", "counter", "protocol requests received (ZeroMQ, the HTTP front's included)")
      .sample(counter("requests"));
  family("feu_jobs_accepted_total", "counter", "edits journaled and queued").sample(counter("accepted"));
  family("feu_jobs_done_total", "counter", "edits finished with images").sample(counter("jobs.done"));
  Family& failed = family("feu_jobs_failed_total", "counter", "edits finished with an error, by error code");
  Family& rejected = family("feu_requests_rejected_total", "counter", "requests refused before queueing, by code");
  Family& retrieves = family("feu_retrieves_total", "counter", "retrieve requests finished, by outcome");
  Family& busy = family("feu_busy_total", "counter", "requests answered busy, by the bound that was full");
  Family& reloads = family("feu_reloads_total", "counter", "artifact reloads, by result");
  Family& other = family("feu_events_total", "counter", "other service counters, by name");
  for (const auto& [name, value] : counters.items()) {
    if (!value.is_number()) continue;
    double n = value.get<double>();
    if (name == "requests" || name == "accepted" || name == "jobs.done") continue;
    if (starts_with(name, "jobs.error.")) failed.sample(n, label("code", name.substr(11)));
    else if (starts_with(name, "rejected.")) rejected.sample(n, label("code", name.substr(9)));
    else if (name == "retrieves.done") retrieves.sample(n, label("outcome", "done"));
    else if (starts_with(name, "retrieves.error.")) retrieves.sample(n, label("outcome", name.substr(16)));
    else if (name == "busy") busy.sample(n, label("bound", "jobs"));
    else if (name == "busy.bytes") busy.sample(n, label("bound", "bytes"));
    else if (starts_with(name, "reloads.")) reloads.sample(n, label("result", name.substr(8)));
    else other.sample(n, label("name", name));
  }

  const json& queue = object_at(status, "queue");
  family("feu_queue_depth", "gauge", "jobs waiting in the queue").sample(number_at(queue, "depth"));
  family("feu_queue_running", "gauge", "jobs taken by the worker and not finished").sample(number_at(queue, "running"));
  family("feu_queue_capacity", "gauge", "waiting jobs before busy").sample(number_at(queue, "capacity"));
  family("feu_queue_bytes", "gauge", "request bytes held by unfinished jobs").sample(number_at(queue, "bytes"));
  // A fleet (redis queue): every live worker with the artifact version it serves, so that a
  // scraper sees a worker left on an old version after a publish.
  const auto workers = queue.find("worker_list");
  if (workers != queue.end() && workers->is_array()) {
    family("feu_fleet_workers", "gauge", "live workers (a heartbeat within worker_timeout_ms)")
        .sample(static_cast<double>(workers->size()));
    Family& info = family("feu_fleet_worker_info", "gauge", "a live worker and the artifact version it serves");
    for (const json& worker : *workers) {
      if (!worker.is_object()) continue;
      info.sample(1, label("consumer", worker.value("consumer", std::string())) + "," +
                         label("host", worker.value("host", std::string())) + "," +
                         label("pid", std::to_string(worker.value("pid", int64_t{0}))) + "," +
                         label("version", worker.value("artifact_version", std::string())));
    }
  }
  const json& results = object_at(status, "results");
  family("feu_results_stored", "gauge", "finished results kept for fetch by id").sample(number_at(results, "stored"));
  family("feu_results_bytes", "gauge", "bytes of stored results").sample(number_at(results, "bytes"));
  family("feu_results_awaiting_storage", "gauge", "finished jobs whose result could not be stored yet")
      .sample(number_at(results, "awaiting_storage"));
  family("feu_journal_bytes", "gauge", "size of the job journal")
      .sample(number_at(object_at(status, "journal"), "bytes"));
  const json& memory = object_at(status, "memory");
  family("feu_process_resident_memory_bytes", "gauge", "resident memory of the daemon")
      .sample(number_at(memory, "rss_bytes"));

  Family& stages = family("feu_stage_duration_seconds", "histogram",
                          "time per stage: queue, run (per batch), total, retrieve, engine.<stage> (text, retrieval, "
                          "svm, mapping, latent, synthesis, encoding) from each result's diagnostics");
  Family& batch = family("feu_batch_size", "histogram", "edits synthesized together per batch");
  for (const auto& [stage, h] : object_at(status, "histograms").items()) {
    if (!h.is_object() || !h.contains("le") || !h.contains("counts")) continue;
    if (stage == "batch_size") histogram(batch, h, "", 1.0);
    else histogram(stages, h, label("stage", stage), 1e-3);
  }

  const json& engine = object_at(status, "engine");
  Family& hits = family("feu_cache_hits_total", "counter",
                         "cache hits: the engine's (text embeddings, FEU directions, inversions) and the HTTP "
                         "front's corpus thumbnails");
  Family& misses = family("feu_cache_misses_total", "counter", "cache misses");
  Family& entries = family("feu_cache_entries", "gauge", "entries held by each cache");
  auto cache_samples = [&](const json& c, const std::string& name) {
    if (c.empty()) return;
    hits.sample(number_at(c, "hits"), label("cache", name));
    misses.sample(number_at(c, "misses"), label("cache", name));
    entries.sample(number_at(c, "size"), label("cache", name));
  };
  for (const char* cache : {"text_cache", "direction_cache", "inversion_cache"})
    cache_samples(object_at(engine, cache), std::string(cache).substr(0, std::string(cache).size() - 6));
  cache_samples(object_at(http, "thumbnail_cache"), "thumbnail");
  // Large CPU blocks reused instead of fresh from the kernel (tensor/cpu_allocation_cache.h).
  const json& allocations = object_at(engine, "cpu_allocation_cache");
  if (!allocations.empty()) {
    hits.sample(number_at(allocations, "hits"), label("cache", "cpu_allocation"));
    misses.sample(number_at(allocations, "misses"), label("cache", "cpu_allocation"));
    family("feu_cpu_allocation_cache_bytes", "gauge", "freed CPU blocks held for reuse (synthesis activations)")
        .sample(number_at(allocations, "cached_bytes"));
  }
  const json& reload = object_at(status, "reload");
  family("feu_reload_state", "gauge", "the artifact reload state (1 for the current one)")
      .sample(1, label("state", reload.value("state", std::string("idle"))));

  Family& responses = family("feu_http_responses_total", "counter", "HTTP responses sent, by status");
  for (const auto& [code, n] : object_at(http, "responses").items())
    if (n.is_number()) responses.sample(n.get<double>(), label("status", code));

  std::ostringstream out;
  for (const Family& f : families) f.write(out);
  return out.str();
}

}  // namespace feu::service
