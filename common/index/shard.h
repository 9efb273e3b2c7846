// Splitting a long indexer job (directions, embed) into N shards that any
// scheduler runs apart (cron, Slurm arrays, Kubernetes Jobs), and the rule a
// merge checks: the shards' row ranges cover every row exactly once.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace feu::index {

// Shard K of N (1-based); count 0 = the whole job (not sharded).
struct Shard {
  int64_t index = 0;
  int64_t count = 0;
  bool active() const { return count > 0; }
  std::string text() const;  // "K/N"
};

// Parses "K/N" with 1 <= K <= N. Errors: invalid_argument.
Shard parse_shard(const std::string& text);

// The K-th of N contiguous, near-equal parts of [0, units): [begin, end).
std::pair<int64_t, int64_t> shard_part(const Shard& shard, int64_t units);

// Shards of one run record what they must share as "key=value" lines; this
// names the first difference as one of different models (generator_sha256,
// clip_sha256), statistics (stats_sha256), corpora (listing_sha256) or
// settings. Errors: artifact_mismatch.
void check_same_shard_settings(const std::string& a_path, const std::string& a, const std::string& b_path,
                               const std::string& b);

// One shard file as a merge sees it.
struct ShardPiece {
  std::string origin;  // file, for messages
  Shard shard;
  int64_t row_begin = 0, row_end = 0;
};

// Refuses shards of different counts, the same shard twice, overlapping
// ranges and rows no shard covers (naming the missing shards); returns the
// pieces in row order. `total` is the row count of the whole job.
std::vector<ShardPiece> check_shard_cover(std::vector<ShardPiece> pieces, int64_t total, const std::string& what);

}  // namespace feu::index
