// The corpus index: CLIP image embeddings of an image collection, searchable
// by inner product (= cosine, since every stored row is L2-normalized).
//
// On disk a corpus is a directory with two files:
//   corpus.faiss  the FAISS index (flat by default; IVF or HNSW for very large
//                 corpora), FAISS labels = row numbers
//   corpus.h5     `embeddings` [N,E] float32 (unit rows), `ids` [N] int64
//                 (stable across incremental runs), `paths` [N] (relative to
//                 the corpus root), `sizes` [N], `mtimes_ns` [N] int64, and
//                 provenance attributes on "/".
// No torch here: the engine and daemon use this header from plain C++.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace faiss {
struct Index;
}

namespace feu::index {

// How the FAISS index searches. kFlat is exact; the others are approximate and
// only worth it for corpora far larger than FFHQ's 70k images.
enum class IndexKind { kFlat, kIvf, kHnsw };

// "flat" | "ivf" | "hnsw" (errors name the accepted values).
IndexKind parse_index_kind(const std::string& name);
const char* index_kind_name(IndexKind kind);

struct IndexOptions {
  IndexKind kind = IndexKind::kFlat;
  int64_t ivf_lists = 0;         // IVF inverted lists; 0 = about 4·sqrt(N), capped by N/39
  int64_t ivf_nprobe = 32;       // IVF lists visited per query
  int64_t hnsw_m = 32;           // HNSW graph degree
  int64_t hnsw_ef_construction = 200;
  int64_t hnsw_ef_search = 256;  // HNSW candidate list length per query
  // With a GPU build of FAISS (FEU_FAISS_GPU) and a visible GPU, flat and IVF
  // indexes are trained/filled/searched on GPU 0; files are always written from
  // the CPU clone. Ignored by CPU-only FAISS (Debian's).
  bool use_gpu = true;
};

// One indexed file.
struct CorpusEntry {
  int64_t id = 0;         // stable id: kept by incremental runs, never reused
  std::string path;       // relative to the corpus root, '/' separated
  int64_t size = 0;       // bytes, for change detection
  int64_t mtime_ns = 0;   // modification time, ns since the epoch
};

// Where the embeddings came from (corpus.h5 root attributes).
struct CorpusProvenance {
  std::string clip_sha256;     // fingerprint of the CLIP weights that embedded the images
  std::string preprocessing;   // e.g. "clip bicubic-antialias 224 center-crop, openai mean/std"
  std::string corpus_root;     // absolute root the paths are relative to (informational)
  std::string created;         // UTC ISO 8601
  std::string tool_version;    // feu version
  std::string faiss_version;   // "1.7.3"
  std::string torch_version;   // libtorch that ran CLIP ("" when unknown)
  int64_t next_id = 0;         // first id never handed out (0: one past the largest id)
};

class CorpusIndex {
 public:
  struct Hit {
    int64_t id;    // CorpusEntry::id
    float score;   // inner product with the (normalized) query = cosine
  };

  // Builds from embeddings [entries.size(), dim] (row i belongs to entries[i]).
  // Rows are L2-normalized here; a zero row is an invalid_argument error.
  static CorpusIndex build(std::vector<CorpusEntry> entries, std::vector<float> embeddings, int64_t dim,
                           const IndexOptions& options, CorpusProvenance provenance);
  // Loads corpus.faiss + corpus.h5 from `dir`; checks they agree (count, dim).
  static CorpusIndex load(const std::string& dir);
  // Writes corpus.h5 and corpus.faiss into `dir` (each atomically).
  void save(const std::string& dir) const;

  CorpusIndex(CorpusIndex&&) noexcept;
  CorpusIndex& operator=(CorpusIndex&&) noexcept;
  ~CorpusIndex();

  int64_t size() const { return static_cast<int64_t>(entries_.size()); }
  int64_t dim() const { return dim_; }
  IndexKind kind() const { return options_.kind; }
  const IndexOptions& options() const { return options_; }
  const CorpusProvenance& provenance() const { return provenance_; }

  // The k most similar images to `query` (dim floats, normalized here), best
  // first. k is clamped to size(). Thread-safe (const FAISS search).
  std::vector<Hit> top_k(const float* query, int64_t k) const;
  // The k least similar images, least similar first. Exact for every index kind:
  // flat searches with the negated query; approximate kinds scan the stored
  // embeddings (an approximate index cannot find the far end reliably).
  std::vector<Hit> bottom_k(const float* query, int64_t k) const;
  // Exact top-k by a scan of the stored embeddings (the reference for recall).
  std::vector<Hit> exact_top_k(const float* query, int64_t k) const;

  // Embedding row `row` (dim unit floats); all rows: embeddings() is [N,dim].
  const float* embedding(int64_t row) const;
  const std::vector<float>& embeddings() const { return embeddings_; }
  const std::vector<CorpusEntry>& entries() const { return entries_; }
  // Row of a stable id; not_found error when absent.
  int64_t row_of(int64_t id) const;
  const std::string& path_of(int64_t id) const;
  // Embedding of a stable id.
  const float* embedding_of_id(int64_t id) const { return embedding(row_of(id)); }

  // Mean recall@k of top_k against exact_top_k over `num_queries` stored rows
  // (evenly spaced) used as queries. 1.0 for a flat index.
  double recall_at_k(int64_t k, int64_t num_queries) const;

 private:
  CorpusIndex() = default;
  void build_faiss();
  void index_ids();
  void attach_gpu();
  // The index searches run on: the GPU clone when there is one, else faiss_.
  const faiss::Index& searcher() const;
  // One query through searcher(): k (distance, row) pairs.
  void search(const float* query, int64_t k, float* distances, int64_t* labels) const;

  int64_t dim_ = 0;
  IndexOptions options_;
  CorpusProvenance provenance_;
  std::vector<CorpusEntry> entries_;
  std::vector<float> embeddings_;  // [N,dim], unit rows
  std::vector<int64_t> sorted_ids_;      // ids ascending
  std::vector<int64_t> row_by_sorted_;   // row of sorted_ids_[i]
  std::unique_ptr<faiss::Index> faiss_;      // CPU index (what is saved)
  std::shared_ptr<faiss::Index> gpu_;        // GPU clone (FEU_FAISS_GPU builds only)
  std::shared_ptr<std::mutex> gpu_mutex_;    // GPU indexes are not safe for concurrent search
};

// "1.7.3".
std::string faiss_version();
// Names of the files of a corpus directory.
inline const char* kCorpusFaissFile = "corpus.faiss";
inline const char* kCorpusH5File = "corpus.h5";

}  // namespace feu::index
