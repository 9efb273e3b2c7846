#include "index/corpus.h"

#include <faiss/Index.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <faiss/index_io.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>

#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"

#ifdef FEU_FAISS_GPU
#include <faiss/gpu/GpuCloner.h>
#include <faiss/gpu/StandardGpuResources.h>
#include <faiss/gpu/utils/DeviceUtils.h>
#endif

namespace feu::index {
namespace fs = std::filesystem;

namespace {

// Unit-normalizes `dim` floats in place; returns false for a zero/non-finite vector.
bool normalize(float* v, int64_t dim) {
  double norm2 = 0;
  for (int64_t i = 0; i < dim; ++i) norm2 += double(v[i]) * v[i];
  if (!(norm2 > 0) || !std::isfinite(norm2)) return false;
  const float inv = static_cast<float>(1.0 / std::sqrt(norm2));
  for (int64_t i = 0; i < dim; ++i) v[i] *= inv;
  return true;
}

std::vector<float> normalized_query(const float* query, int64_t dim) {
  check(query != nullptr, ErrorCode::kInvalidArgument, "corpus query is null");
  std::vector<float> q(query, query + dim);
  check(normalize(q.data(), dim), ErrorCode::kInvalidArgument,
        "corpus query has zero (or non-finite) norm; expected a non-zero embedding of " + std::to_string(dim) +
            " floats");
  return q;
}

// Dot products of q with every stored row.
std::vector<float> scan_scores(const std::vector<float>& embeddings, int64_t dim, const float* q) {
  const int64_t n = dim ? static_cast<int64_t>(embeddings.size()) / dim : 0;
  std::vector<float> scores(n);
#pragma omp parallel for if (n > 4096)
  for (int64_t r = 0; r < n; ++r) {
    const float* e = embeddings.data() + r * dim;
    float s = 0;
    for (int64_t i = 0; i < dim; ++i) s += e[i] * q[i];
    scores[r] = s;
  }
  return scores;
}

#ifdef FEU_FAISS_GPU
// One set of GPU resources (streams, scratch memory) for the process.
faiss::gpu::StandardGpuResources& gpu_resources() {
  static faiss::gpu::StandardGpuResources resources;
  return resources;
}
#endif

}  // namespace

IndexKind parse_index_kind(const std::string& name) {
  if (name == "flat") return IndexKind::kFlat;
  if (name == "ivf") return IndexKind::kIvf;
  if (name == "hnsw") return IndexKind::kHnsw;
  throw Error(ErrorCode::kInvalidArgument, "unknown index kind '" + name + "' (expected flat, ivf or hnsw)");
}

const char* index_kind_name(IndexKind kind) {
  switch (kind) {
    case IndexKind::kFlat: return "flat";
    case IndexKind::kIvf: return "ivf";
    case IndexKind::kHnsw: return "hnsw";
  }
  return "?";
}

std::string faiss_version() {
  return std::to_string(FAISS_VERSION_MAJOR) + "." + std::to_string(FAISS_VERSION_MINOR) + "." +
         std::to_string(FAISS_VERSION_PATCH);
}

CorpusIndex::CorpusIndex(CorpusIndex&&) noexcept = default;
CorpusIndex& CorpusIndex::operator=(CorpusIndex&&) noexcept = default;
CorpusIndex::~CorpusIndex() = default;

CorpusIndex CorpusIndex::build(std::vector<CorpusEntry> entries, std::vector<float> embeddings, int64_t dim,
                               const IndexOptions& options, CorpusProvenance provenance) {
  check(dim > 0, ErrorCode::kInvalidArgument, "corpus embedding dimension must be positive");
  check(!entries.empty(), ErrorCode::kInvalidArgument, "corpus is empty: no image could be indexed");
  check(static_cast<int64_t>(embeddings.size()) == static_cast<int64_t>(entries.size()) * dim,
        ErrorCode::kShapeMismatch,
        "corpus embeddings hold " + std::to_string(embeddings.size()) + " floats; expected " +
            std::to_string(entries.size()) + " x " + std::to_string(dim));
  CorpusIndex index;
  index.dim_ = dim;
  index.options_ = options;
  index.provenance_ = std::move(provenance);
  index.entries_ = std::move(entries);
  index.embeddings_ = std::move(embeddings);
  for (int64_t r = 0; r < index.size(); ++r)
    check(normalize(index.embeddings_.data() + r * dim, dim), ErrorCode::kInvalidArgument,
          "embedding of " + index.entries_[r].path + " has zero norm; cannot index it");
  index.index_ids();
  index.build_faiss();
  return index;
}

void CorpusIndex::index_ids() {
  std::vector<int64_t> order(entries_.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return entries_[a].id < entries_[b].id; });
  sorted_ids_.resize(order.size());
  row_by_sorted_ = order;
  for (size_t i = 0; i < order.size(); ++i) {
    sorted_ids_[i] = entries_[order[i]].id;
    check(i == 0 || sorted_ids_[i] != sorted_ids_[i - 1], ErrorCode::kCorruptFile,
          "corpus id " + std::to_string(sorted_ids_[i]) + " appears twice");
  }
}

void CorpusIndex::build_faiss() {
  const int64_t n = size();
  const int d = static_cast<int>(dim_);
  try {
    switch (options_.kind) {
      case IndexKind::kFlat: {
        faiss_ = std::make_unique<faiss::IndexFlatIP>(d);
        break;
      }
      case IndexKind::kIvf: {
        int64_t lists = options_.ivf_lists;
        if (lists <= 0) lists = std::max<int64_t>(1, std::min<int64_t>(int64_t(4 * std::sqrt(double(n))), n / 39));
        check(lists <= n, ErrorCode::kInvalidArgument,
              "IVF needs at least as many images as lists (" + std::to_string(lists) + " lists, " +
                  std::to_string(n) + " images)");
        options_.ivf_lists = lists;
        auto* quantizer = new faiss::IndexFlatIP(d);
        auto ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer, d, static_cast<size_t>(lists),
                                                         faiss::METRIC_INNER_PRODUCT);
        ivf->own_fields = true;
        ivf->cp.seed = 1234;  // deterministic k-means: rebuilds give identical files
        ivf->nprobe = static_cast<size_t>(std::max<int64_t>(1, options_.ivf_nprobe));
        faiss_ = std::move(ivf);
        break;
      }
      case IndexKind::kHnsw: {
        auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(d, static_cast<int>(options_.hnsw_m),
                                                           faiss::METRIC_INNER_PRODUCT);
        hnsw->hnsw.efConstruction = static_cast<int>(options_.hnsw_ef_construction);
        hnsw->hnsw.efSearch = static_cast<int>(options_.hnsw_ef_search);
        faiss_ = std::move(hnsw);
        break;
      }
    }
#ifdef FEU_FAISS_GPU
    if (options_.use_gpu && options_.kind != IndexKind::kHnsw && faiss::gpu::getNumDevices() > 0) {
      // Train and add on the GPU; keep a CPU clone for saving.
      std::shared_ptr<faiss::Index> gpu(faiss::gpu::index_cpu_to_gpu(&gpu_resources(), 0, faiss_.get()));
      if (!gpu->is_trained) gpu->train(n, embeddings_.data());
      gpu->add(n, embeddings_.data());
      faiss_.reset(faiss::gpu::index_gpu_to_cpu(gpu.get()));
      gpu_ = std::move(gpu);
      gpu_mutex_ = std::make_shared<std::mutex>();
      return;
    }
#endif
    if (!faiss_->is_trained) faiss_->train(n, embeddings_.data());
    faiss_->add(n, embeddings_.data());
  } catch (const faiss::FaissException& e) {
    throw Error(ErrorCode::kInternal, std::string("FAISS failed to build the corpus index: ") + e.what());
  }
}

void CorpusIndex::attach_gpu() {
#ifdef FEU_FAISS_GPU
  if (options_.use_gpu && options_.kind != IndexKind::kHnsw && faiss::gpu::getNumDevices() > 0) {
    gpu_.reset(faiss::gpu::index_cpu_to_gpu(&gpu_resources(), 0, faiss_.get()));
    gpu_mutex_ = std::make_shared<std::mutex>();
  }
#endif
}

const faiss::Index& CorpusIndex::searcher() const { return gpu_ ? *gpu_ : *faiss_; }

void CorpusIndex::save(const std::string& dir) const {
  check(fs::is_directory(dir), ErrorCode::kNotFound, "corpus output directory does not exist: " + dir);
  {
    AtomicFile out(dir + "/" + kCorpusH5File);
    {
      h5::File file = h5::File::create(out.temp_path());
      const int64_t n = size();
      file.write_float("embeddings", embeddings_.data(), {n, dim_}, std::min<int64_t>(n, 1024));
      std::vector<int64_t> ids(n), sizes(n), mtimes(n);
      std::vector<std::string> paths(n);
      for (int64_t r = 0; r < n; ++r) {
        ids[r] = entries_[r].id;
        sizes[r] = entries_[r].size;
        mtimes[r] = entries_[r].mtime_ns;
        paths[r] = entries_[r].path;
      }
      file.write_int64("ids", ids.data(), {n});
      file.write_int64("sizes", sizes.data(), {n});
      file.write_int64("mtimes_ns", mtimes.data(), {n});
      file.write_strings("paths", paths);
      file.set_attr("/", "format", int64_t{1});
      file.set_attr("/", "count", n);
      file.set_attr("/", "dim", dim_);
      file.set_attr("/", "normalization", "l2 (every row is a unit vector; scores are cosines)");
      file.set_attr("/", "index_kind", index_kind_name(options_.kind));
      file.set_attr("/", "ivf_lists", options_.ivf_lists);
      file.set_attr("/", "ivf_nprobe", options_.ivf_nprobe);
      file.set_attr("/", "hnsw_m", options_.hnsw_m);
      file.set_attr("/", "hnsw_ef_construction", options_.hnsw_ef_construction);
      file.set_attr("/", "hnsw_ef_search", options_.hnsw_ef_search);
      file.set_attr("/", "clip_sha256", provenance_.clip_sha256);
      file.set_attr("/", "preprocessing", provenance_.preprocessing);
      file.set_attr("/", "corpus_root", provenance_.corpus_root);
      file.set_attr("/", "created", provenance_.created);
      file.set_attr("/", "tool_version", provenance_.tool_version);
      file.set_attr("/", "faiss_version", provenance_.faiss_version);
      file.set_attr("/", "torch_version", provenance_.torch_version);
      int64_t next_id = provenance_.next_id;
      for (const CorpusEntry& e : entries_) next_id = std::max(next_id, e.id + 1);
      file.set_attr("/", "next_id", next_id);
      file.close();
    }
    out.commit();
  }
  AtomicFile out(dir + "/" + kCorpusFaissFile);
  try {
    faiss::write_index(faiss_.get(), out.temp_path().c_str());
  } catch (const faiss::FaissException& e) {
    throw Error(ErrorCode::kIoError, "cannot write " + out.final_path() + ": " + e.what());
  }
  out.commit();
}

CorpusIndex CorpusIndex::load(const std::string& dir) {
  const std::string h5_path = dir + "/" + kCorpusH5File;
  const std::string faiss_path = dir + "/" + kCorpusFaissFile;
  check(fs::exists(h5_path), ErrorCode::kNotFound, "corpus metadata not found: " + h5_path);
  check(fs::exists(faiss_path), ErrorCode::kNotFound, "corpus index not found: " + faiss_path);
  CorpusIndex index;
  h5::File file = h5::File::open_read(h5_path);
  h5::Shape shape;
  index.embeddings_ = file.read_float("embeddings", &shape);
  check(shape.size() == 2, ErrorCode::kCorruptFile,
        h5_path + ": 'embeddings' has shape " + h5::shape_string(shape) + "; expected [N, dim]");
  const int64_t n = shape[0];
  index.dim_ = shape[1];
  std::vector<int64_t> ids = file.read_int64("ids");
  std::vector<int64_t> sizes = file.read_int64("sizes");
  std::vector<int64_t> mtimes = file.read_int64("mtimes_ns");
  std::vector<std::string> paths = file.read_strings("paths");
  check(int64_t(ids.size()) == n && int64_t(sizes.size()) == n && int64_t(mtimes.size()) == n &&
            int64_t(paths.size()) == n,
        ErrorCode::kCorruptFile, h5_path + ": ids/paths/sizes/mtimes_ns do not all have " + std::to_string(n) + " rows");
  index.entries_.resize(n);
  for (int64_t r = 0; r < n; ++r) index.entries_[r] = CorpusEntry{ids[r], paths[r], sizes[r], mtimes[r]};
  auto attr = [&](const char* name) { return file.has_attr("/", name) ? file.attr_string("/", name) : std::string(); };
  index.options_.kind = parse_index_kind(attr("index_kind").empty() ? "flat" : attr("index_kind"));
  auto attr_int = [&](const char* name, int64_t fallback) {
    return file.has_attr("/", name) ? file.attr_int("/", name) : fallback;
  };
  index.options_.ivf_lists = attr_int("ivf_lists", 0);
  index.options_.ivf_nprobe = attr_int("ivf_nprobe", index.options_.ivf_nprobe);
  index.options_.hnsw_m = attr_int("hnsw_m", index.options_.hnsw_m);
  index.options_.hnsw_ef_construction = attr_int("hnsw_ef_construction", index.options_.hnsw_ef_construction);
  index.options_.hnsw_ef_search = attr_int("hnsw_ef_search", index.options_.hnsw_ef_search);
  index.provenance_.clip_sha256 = attr("clip_sha256");
  index.provenance_.preprocessing = attr("preprocessing");
  index.provenance_.corpus_root = attr("corpus_root");
  index.provenance_.created = attr("created");
  index.provenance_.tool_version = attr("tool_version");
  index.provenance_.faiss_version = attr("faiss_version");
  index.provenance_.torch_version = attr("torch_version");
  index.provenance_.next_id = attr_int("next_id", 0);
  file.close();
  index.index_ids();

  faiss::Index* raw = nullptr;
  try {
    raw = faiss::read_index(faiss_path.c_str());
  } catch (const faiss::FaissException& e) {
    throw Error(ErrorCode::kCorruptFile, "cannot read FAISS index " + faiss_path + ": " + e.what());
  }
  index.faiss_.reset(raw);
  check(index.faiss_->ntotal == n && index.faiss_->d == index.dim_, ErrorCode::kArtifactMismatch,
        faiss_path + " holds " + std::to_string(index.faiss_->ntotal) + " vectors of dim " +
            std::to_string(index.faiss_->d) + " but corpus.h5 has " + std::to_string(n) + " of dim " +
            std::to_string(index.dim_));
  check(index.faiss_->metric_type == faiss::METRIC_INNER_PRODUCT, ErrorCode::kCorruptFile,
        faiss_path + " is not an inner-product index");
  if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index.faiss_.get()))
    ivf->nprobe = static_cast<size_t>(std::max<int64_t>(1, index.options_.ivf_nprobe));
  if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index.faiss_.get()))
    hnsw->hnsw.efSearch = static_cast<int>(index.options_.hnsw_ef_search);
  index.attach_gpu();
  return index;
}

void CorpusIndex::search(const float* q, int64_t k, float* distances, int64_t* labels) const {
  static_assert(sizeof(faiss::Index::idx_t) == sizeof(int64_t), "FAISS labels are 64-bit");
  auto* out = reinterpret_cast<faiss::Index::idx_t*>(labels);
  if (gpu_mutex_) {
    std::lock_guard<std::mutex> lock(*gpu_mutex_);
    searcher().search(1, q, k, distances, out);
  } else {
    searcher().search(1, q, k, distances, out);
  }
}

std::vector<CorpusIndex::Hit> CorpusIndex::top_k(const float* query, int64_t k) const {
  k = std::min<int64_t>(k, size());
  if (k <= 0) return {};
  std::vector<float> q = normalized_query(query, dim_);
  std::vector<float> distances(k);
  std::vector<faiss::Index::idx_t> labels(k);
  search(q.data(), k, distances.data(), labels.data());
  std::vector<Hit> hits;
  hits.reserve(k);
  for (int64_t i = 0; i < k; ++i)
    if (labels[i] >= 0) hits.push_back(Hit{entries_[labels[i]].id, distances[i]});
  return hits;
}

std::vector<CorpusIndex::Hit> CorpusIndex::exact_top_k(const float* query, int64_t k) const {
  k = std::min<int64_t>(k, size());
  if (k <= 0) return {};
  std::vector<float> q = normalized_query(query, dim_);
  std::vector<float> scores = scan_scores(embeddings_, dim_, q.data());
  std::vector<int64_t> rows(scores.size());
  std::iota(rows.begin(), rows.end(), 0);
  std::partial_sort(rows.begin(), rows.begin() + k, rows.end(), [&](int64_t a, int64_t b) {
    return scores[a] != scores[b] ? scores[a] > scores[b] : a < b;
  });
  std::vector<Hit> hits;
  for (int64_t i = 0; i < k; ++i) hits.push_back(Hit{entries_[rows[i]].id, scores[rows[i]]});
  return hits;
}

std::vector<CorpusIndex::Hit> CorpusIndex::bottom_k(const float* query, int64_t k) const {
  k = std::min<int64_t>(k, size());
  if (k <= 0) return {};
  std::vector<float> q = normalized_query(query, dim_);
  if (options_.kind == IndexKind::kFlat) {
    // The least similar to q are the most similar to −q, exactly.
    for (float& v : q) v = -v;
    std::vector<float> distances(k);
    std::vector<faiss::Index::idx_t> labels(k);
    search(q.data(), k, distances.data(), labels.data());
    std::vector<Hit> hits;
    for (int64_t i = 0; i < k; ++i)
      if (labels[i] >= 0) hits.push_back(Hit{entries_[labels[i]].id, -distances[i]});
    return hits;
  }
  std::vector<float> scores = scan_scores(embeddings_, dim_, q.data());
  std::vector<int64_t> rows(scores.size());
  std::iota(rows.begin(), rows.end(), 0);
  std::partial_sort(rows.begin(), rows.begin() + k, rows.end(), [&](int64_t a, int64_t b) {
    return scores[a] != scores[b] ? scores[a] < scores[b] : a < b;
  });
  std::vector<Hit> hits;
  for (int64_t i = 0; i < k; ++i) hits.push_back(Hit{entries_[rows[i]].id, scores[rows[i]]});
  return hits;
}

const float* CorpusIndex::embedding(int64_t row) const {
  check(row >= 0 && row < size(), ErrorCode::kNotFound,
        "corpus row " + std::to_string(row) + " is out of range (corpus has " + std::to_string(size()) + " images)");
  return embeddings_.data() + row * dim_;
}

int64_t CorpusIndex::row_of(int64_t id) const {
  auto it = std::lower_bound(sorted_ids_.begin(), sorted_ids_.end(), id);
  check(it != sorted_ids_.end() && *it == id, ErrorCode::kNotFound,
        "corpus has no image with id " + std::to_string(id));
  return row_by_sorted_[it - sorted_ids_.begin()];
}

const std::string& CorpusIndex::path_of(int64_t id) const { return entries_[row_of(id)].path; }

double CorpusIndex::recall_at_k(int64_t k, int64_t num_queries) const {
  k = std::min<int64_t>(k, size());
  num_queries = std::min<int64_t>(num_queries, size());
  if (k <= 0 || num_queries <= 0) return 1.0;
  double total = 0;
  for (int64_t qi = 0; qi < num_queries; ++qi) {
    const int64_t row = qi * size() / num_queries;
    std::vector<Hit> approx = top_k(embedding(row), k);
    std::vector<Hit> exact = exact_top_k(embedding(row), k);
    std::vector<int64_t> exact_ids;
    for (const Hit& h : exact) exact_ids.push_back(h.id);
    std::sort(exact_ids.begin(), exact_ids.end());
    int64_t found = 0;
    for (const Hit& h : approx) found += std::binary_search(exact_ids.begin(), exact_ids.end(), h.id);
    total += double(found) / double(k);
  }
  return total / double(num_queries);
}

}  // namespace feu::index
