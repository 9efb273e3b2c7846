#include "index/shard.h"

#include <algorithm>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"

namespace feu::index {

std::string Shard::text() const { return std::to_string(index) + "/" + std::to_string(count); }

Shard parse_shard(const std::string& text) {
  const size_t slash = text.find('/');
  Shard shard;
  bool valid = slash != std::string::npos && slash > 0 && slash + 1 < text.size() &&
               text.find_first_not_of("0123456789/") == std::string::npos && text.size() < 20 &&
               text.find('/', slash + 1) == std::string::npos;
  if (valid) {
    shard.index = std::stoll(text.substr(0, slash));
    shard.count = std::stoll(text.substr(slash + 1));
    valid = shard.count >= 1 && shard.index >= 1 && shard.index <= shard.count;
  }
  check(valid, ErrorCode::kInvalidArgument,
        "invalid shard '" + text + "' (expected K/N with 1 <= K <= N, e.g. 2/8)");
  return shard;
}

std::pair<int64_t, int64_t> shard_part(const Shard& shard, int64_t units) {
  if (!shard.active()) return {0, units};
  return {(shard.index - 1) * units / shard.count, shard.index * units / shard.count};
}

namespace {

std::map<std::string, std::string> settings_map(const std::string& text) {
  std::map<std::string, std::string> values;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) values[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return values;
}

}  // namespace

void check_same_shard_settings(const std::string& a_path, const std::string& a, const std::string& b_path,
                         const std::string& b) {
  if (a == b) return;
  const auto a_values = settings_map(a), b_values = settings_map(b);
  std::string key;
  for (const auto& [name, value] : a_values) {
    auto it = b_values.find(name);
    if (it == b_values.end() || it->second != value) {
      key = name;
      break;
    }
  }
  if (key.empty())
    for (const auto& [name, value] : b_values)
      if (!a_values.count(name)) key = name;
  const char* kind = key == "generator_sha256" || key == "clip_sha256" ? "different models"
                     : key == "stats_sha256"                           ? "different statistics"
                     : key == "listing_sha256"                         ? "different corpora"
                                                                       : "different settings";
  auto value_of = [&](const std::map<std::string, std::string>& values) {
    auto it = values.find(key);
    return it == values.end() ? std::string("<unset>") : it->second;
  };
  throw Error(ErrorCode::kArtifactMismatch, "shards of " + std::string(kind) + ": " + a_path + " has " + key + "=" +
                                                value_of(a_values) + " but " + b_path + " has " + key + "=" +
                                                value_of(b_values));
}

std::vector<ShardPiece> check_shard_cover(std::vector<ShardPiece> pieces, int64_t total, const std::string& what) {
  check(!pieces.empty(), ErrorCode::kInvalidArgument, "no " + what + " shards to merge");
  const ShardPiece& first = pieces.front();
  std::set<int64_t> seen;
  for (const ShardPiece& p : pieces) {
    check(p.shard.count == first.shard.count, ErrorCode::kInvalidArgument,
          p.origin + " is shard " + p.shard.text() + " but " + first.origin + " is shard " + first.shard.text() +
              " (shards of one " + what + " run share N)");
    if (!seen.insert(p.shard.index).second) {
      const auto twice = std::find_if(pieces.begin(), pieces.end(),
                                      [&](const ShardPiece& q) { return q.shard.index == p.shard.index; });
      throw Error(ErrorCode::kInvalidArgument, "shard " + p.shard.text() + " is given twice (" + twice->origin +
                                                   " and " + p.origin + ")");
    }
  }
  std::stable_sort(pieces.begin(), pieces.end(),
            [](const ShardPiece& a, const ShardPiece& b) { return a.row_begin < b.row_begin; });
  auto rows = [](const ShardPiece& p) {
    return p.origin + " (rows " + std::to_string(p.row_begin) + "-" + std::to_string(p.row_end) + ")";
  };
  int64_t next = 0;
  const ShardPiece* previous = nullptr;
  for (const ShardPiece& p : pieces) {
    check(p.row_begin >= next || p.row_begin == p.row_end, ErrorCode::kInvalidArgument,
          rows(p) + " overlaps " + (previous ? rows(*previous) : std::string()));
    check(p.row_begin <= next || p.row_begin == p.row_end, ErrorCode::kInvalidArgument,
          "rows " + std::to_string(next) + "-" + std::to_string(p.row_begin) + " of the " + what +
              " are in no shard given (the shard before " + p.origin + " is missing)");
    if (p.row_begin != p.row_end) previous = &p;
    next = std::max(next, p.row_end);
  }
  std::string missing;
  for (int64_t k = 1; k <= first.shard.count; ++k)
    if (!seen.count(k)) missing += (missing.empty() ? "" : ", ") + std::to_string(k) + "/" + std::to_string(first.shard.count);
  check(next == total && missing.empty(), ErrorCode::kInvalidArgument,
        "the " + what + " shards given cover rows 0-" + std::to_string(next) + " of " + std::to_string(total) +
            (missing.empty() ? std::string() : "; missing shard(s) " + missing));
  return pieces;
}

}  // namespace feu::index
