// Prometheus text exposition (format 0.0.4) of the daemon's status: what an
// operator's scraper reads at /metrics (service/http_front.h).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace feu::service {

// `status`: Server::status_json() (counters, histograms, queue, results,
// journal, engine caches, artifact version). `http`: the HTTP front's own
// counters, {"responses": {"200": n, ...}, "thumbnail_cache": {"hits",
// "misses", "size"}} (may be empty). Every family has HELP and TYPE lines;
// counters end in _total; durations are in seconds.
std::string prometheus_text(const nlohmann::json& status, const nlohmann::json& http);

// A label value escaped for the text format (backslash, double quote, newline).
std::string prometheus_label(const std::string& value);

}  // namespace feu::service
