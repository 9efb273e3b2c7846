#include "index/embed_shard.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "index/artifacts.h"

namespace feu::index {
namespace fs = std::filesystem;

void EmbedShard::save(const std::string& path) const {
  const int64_t rows = row_end - row_begin;
  check(int64_t(entries.size()) == rows && int64_t(ok.size()) == rows && int64_t(reasons.size()) == rows &&
            int64_t(embeddings.size()) == rows * dim,
        ErrorCode::kInternal, "embed shard sizes disagree");
  std::vector<std::string> paths;
  std::vector<int64_t> sizes, mtimes;
  for (const CorpusEntry& e : entries) {
    paths.push_back(e.path);
    sizes.push_back(e.size);
    mtimes.push_back(e.mtime_ns);
  }
  AtomicFile out(path);
  {
    h5::File file = h5::File::create(out.temp_path());
    file.write_strings("paths", paths);
    file.write_int64("sizes", sizes.data(), {rows});
    file.write_int64("mtimes_ns", mtimes.data(), {rows});
    file.write_uint8("ok", ok.data(), {rows});
    file.write_strings("reasons", reasons);
    file.write_float("embeddings", embeddings.data(), {rows, dim});
    file.set_attr("/", "shard_index", shard.index);
    file.set_attr("/", "shard_count", shard.count);
    file.set_attr("/", "shard_row_begin", row_begin);
    file.set_attr("/", "shard_row_end", row_end);
    file.set_attr("/", "total_files", total_files);
    file.set_attr("/", "shard_settings", settings);
    file.set_attr("/", "dim", dim);
    file.set_attr("/", "clip_sha256", provenance.clip_sha256);
    file.set_attr("/", "preprocessing", provenance.preprocessing);
    file.set_attr("/", "corpus_root", provenance.corpus_root);
    file.set_attr("/", "torch_version", provenance.torch_version);
    file.close();
  }
  out.commit();
}

EmbedShard EmbedShard::load(const std::string& path) {
  h5::File file = h5::File::open_read(path);
  check(file.has_attr("/", "shard_count"), ErrorCode::kInvalidArgument,
        path + " is not an embed shard (made by `feu-indexer embed --shard K/N`)");
  EmbedShard s;
  s.shard.index = file.attr_int("/", "shard_index");
  s.shard.count = file.attr_int("/", "shard_count");
  s.row_begin = file.attr_int("/", "shard_row_begin");
  s.row_end = file.attr_int("/", "shard_row_end");
  s.total_files = file.attr_int("/", "total_files");
  s.settings = file.attr_string("/", "shard_settings");
  s.dim = file.attr_int("/", "dim");
  s.provenance.clip_sha256 = file.attr_string("/", "clip_sha256");
  s.provenance.preprocessing = file.attr_string("/", "preprocessing");
  s.provenance.corpus_root = file.attr_string("/", "corpus_root");
  s.provenance.torch_version = file.attr_string("/", "torch_version");
  const std::vector<std::string> paths = file.read_strings("paths");
  const std::vector<int64_t> sizes = file.read_int64("sizes"), mtimes = file.read_int64("mtimes_ns");
  s.ok = file.read_uint8("ok");
  s.reasons = file.read_strings("reasons");
  s.embeddings = file.read_float("embeddings");
  const int64_t rows = s.row_end - s.row_begin;
  check(rows >= 0 && s.row_end <= s.total_files && int64_t(paths.size()) == rows && int64_t(sizes.size()) == rows &&
            int64_t(mtimes.size()) == rows && int64_t(s.ok.size()) == rows && int64_t(s.reasons.size()) == rows &&
            int64_t(s.embeddings.size()) == rows * s.dim,
        ErrorCode::kCorruptFile, path + ": embed shard datasets disagree with its row range");
  for (int64_t i = 0; i < rows; ++i) s.entries.push_back(CorpusEntry{0, paths[i], sizes[i], mtimes[i]});
  return s;
}

CorpusIndex merge_embed_shards(const std::vector<std::string>& shard_paths, const IndexOptions& index_options) {
  check(!shard_paths.empty(), ErrorCode::kInvalidArgument, "merge-embeddings needs the shard files");
  std::vector<EmbedShard> shards;
  std::vector<ShardPiece> pieces;
  std::vector<std::string> origins;
  for (const std::string& given : shard_paths) {
    const std::string path = fs::is_directory(given) ? given + "/" + kEmbedShardFile : given;
    shards.push_back(EmbedShard::load(path));
    check_same_shard_settings(origins.empty() ? path : origins.front(), shards.front().settings, path,
                              shards.back().settings);
    origins.push_back(path);
    pieces.push_back(ShardPiece{path, shards.back().shard, shards.back().row_begin, shards.back().row_end});
  }
  const std::vector<ShardPiece> ordered = check_shard_cover(pieces, shards.front().total_files, "corpus");
  // Rows in listing order; ids as a fresh single run hands them out.
  std::vector<CorpusEntry> entries;
  std::vector<float> embeddings;
  const int64_t dim = shards.front().dim;
  int64_t next_id = 0;
  for (const ShardPiece& piece : ordered) {
    const EmbedShard& s = shards[std::find_if(pieces.begin(), pieces.end(),
                                              [&](const ShardPiece& p) { return p.origin == piece.origin; }) -
                                 pieces.begin()];
    for (size_t i = 0; i < s.entries.size(); ++i) {
      if (!s.ok[i]) continue;
      CorpusEntry e = s.entries[i];
      e.id = next_id++;
      entries.push_back(e);
      embeddings.insert(embeddings.end(), s.embeddings.begin() + i * dim, s.embeddings.begin() + (i + 1) * dim);
    }
  }
  check(!entries.empty(), ErrorCode::kInvalidArgument,
        "empty corpus: none of the " + std::to_string(shards.front().total_files) + " images could be read");
  CorpusProvenance provenance = shards.front().provenance;
  provenance.created = utc_timestamp();
  provenance.tool_version = tool_version();
  provenance.faiss_version = faiss_version();
  provenance.next_id = next_id;
  return CorpusIndex::build(std::move(entries), std::move(embeddings), dim, index_options, provenance);
}

}  // namespace feu::index
