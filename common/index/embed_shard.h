// One shard of a sharded `feu-indexer embed --shard K/N`: the embeddings of a
// contiguous range of the corpus listing (cut at batch boundaries, so every
// float is what a single run computes), and the merge that turns N of them
// into the corpus a single run writes. No torch here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "index/corpus.h"
#include "index/shard.h"

namespace feu::index {

inline const char* kEmbedShardFile = "corpus-shard.h5";

struct EmbedShard {
  Shard shard;
  int64_t row_begin = 0, row_end = 0;  // range of the whole listing (sorted paths)
  int64_t total_files = 0;             // size of the whole listing
  std::string settings;                // "key=value" lines the shards must share
  std::vector<CorpusEntry> entries;    // the range's files (ids unassigned)
  std::vector<uint8_t> ok;             // [rows] 1 = embedded
  std::vector<std::string> reasons;    // [rows] why a file could not be read ("" when ok)
  std::vector<float> embeddings;       // [rows, dim], zeros where !ok
  int64_t dim = 0;
  CorpusProvenance provenance;         // clip, preprocessing, corpus root, torch

  // Atomic write / load. Errors: corrupt_file.
  void save(const std::string& path) const;
  static EmbedShard load(const std::string& path);
};

// Joins the shards (files, or directories holding corpus-shard.h5) of one run
// into the corpus a single run gives (same rows, ids and embeddings) and
// builds its index. Errors: artifact_mismatch (shards of different CLIP,
// corpora or settings), invalid_argument (overlapping, missing or duplicate
// shards), invalid_argument when no image was readable.
CorpusIndex merge_embed_shards(const std::vector<std::string>& shard_paths, const IndexOptions& index_options);

}  // namespace feu::index
