// `feu-indexer embed`: decode in parallel threads, CLIP-encode in batches,
// checkpoint, build the FAISS index.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <sys/stat.h>
#include <torch/csrc/api/include/torch/version.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "clip/model.h"
#include "clip/preprocess.h"
#include "core/error.h"
#include "core/files.h"
#include "core/h5.h"
#include "image/codec.h"
#include "index/artifacts.h"
#include "index/pipeline.h"
#include "index/checkpoint.h"
#include "index/embed_shard.h"
#include "index/progress.h"
#include "tensor/tensor_h5.h"

namespace feu::index {
namespace fs = std::filesystem;

std::string torch_version() { return TORCH_VERSION; }

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

bool is_image_name(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg";
}

const char* kCheckpointFile = "embed.checkpoint.h5";
const char* kPreprocessing =
    "CLIP _transform: Pillow bicubic (antialiased) resize of the short side, center crop, /255, "
    "normalize with OpenAI CLIP mean/std; fp32 encode_image; L2-normalized";

// Identifies one embed job, so a checkpoint is only resumed by the same job.
std::string job_fingerprint(const std::string& clip_sha, const std::vector<CorpusEntry>& work, int64_t batch) {
  std::ostringstream text;
  text << clip_sha << "\n" << batch << "\n";
  for (const CorpusEntry& e : work) text << e.path << "\t" << e.size << "\t" << e.mtime_ns << "\n";
  const std::string s = text.str();
  return sha256_bytes(s.data(), s.size());
}

// Results of the first `done` work items (embeddings of the readable ones).
struct Checkpoint {
  int64_t done = 0;
  std::vector<uint8_t> ok;                // [done]
  std::vector<float> embeddings;          // [done, dim] (zeros where !ok)
  std::vector<std::string> reasons;       // [done] ("" where ok)
};

// What a resume takes from the checkpoint (index/checkpoint.h).
std::string checkpoint_digest(const Checkpoint& cp) {
  std::string reasons;
  for (const std::string& reason : cp.reasons) reasons += reason + '\0';
  return index::checkpoint_digest({{cp.ok.data(), cp.ok.size()},
                                   {cp.embeddings.data(), cp.embeddings.size() * sizeof(float)},
                                   {reasons.data(), reasons.size()}});
}

void write_checkpoint(const std::string& path, const std::string& fingerprint, const Checkpoint& cp, int64_t dim) {
  AtomicFile out(path);
  {
    h5::File file = h5::File::create(out.temp_path());
    file.set_attr("/", "job", fingerprint);
    file.set_attr("/", "done", cp.done);
    file.set_attr("/", "dim", dim);
    file.set_attr("/", "sha256", checkpoint_digest(cp));
    file.write_uint8("ok", cp.ok.data(), {cp.done});
    file.write_float("embeddings", cp.embeddings.data(), {cp.done, dim});
    file.write_strings("reasons", cp.reasons);
    file.close();
  }
  out.commit();
}

bool read_checkpoint(const std::string& path, const std::string& fingerprint, int64_t dim, Checkpoint* cp) {
  if (!fs::exists(path)) return false;
  try {
    h5::File file = h5::File::open_read(path);
    if (file.attr_string("/", "job") != fingerprint || file.attr_int("/", "dim") != dim) return false;
    cp->done = file.attr_int("/", "done");
    if (cp->done == 0) return false;
    cp->ok = file.read_uint8("ok");
    cp->embeddings = file.read_float("embeddings");
    cp->reasons = file.read_strings("reasons");
    if (int64_t(cp->ok.size()) != cp->done || int64_t(cp->embeddings.size()) != cp->done * dim ||
        !file.has_attr("/", "sha256") || file.attr_string("/", "sha256") != checkpoint_digest(*cp))
      return discard_checkpoint("embed", path, "it fails its checksum: damaged");
    return true;
  } catch (const Error& e) {
    return discard_checkpoint("embed", path, e.what());
  }
}

// A decoded, preprocessed image or the reason it could not be read.
struct Decoded {
  at::Tensor pixels;  // [3,R,R]
  std::string error;
};

}  // namespace

std::vector<CorpusEntry> list_images(const std::string& root) {
  check(fs::is_directory(root), ErrorCode::kNotFound, "image directory not found: " + root);
  std::vector<CorpusEntry> entries;
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    if (!it->is_regular_file() || !is_image_name(it->path())) continue;
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0) continue;
    CorpusEntry e;
    e.path = fs::relative(it->path(), root).generic_string();
    e.size = static_cast<int64_t>(st.st_size);
    e.mtime_ns = int64_t(st.st_mtim.tv_sec) * 1000000000LL + st.st_mtim.tv_nsec;
    entries.push_back(std::move(e));
  }
  std::sort(entries.begin(), entries.end(), [](const CorpusEntry& a, const CorpusEntry& b) { return a.path < b.path; });
  return entries;
}

std::string EmbedReport::text() const {
  std::ostringstream out;
  out << "embed: " << files << " images found, " << embedded << " embedded, " << reused << " reused, " << resumed
      << " resumed from checkpoint, " << dropped << " dropped (deleted), " << skipped.size() << " unreadable\n";
  char timing[256];
  std::snprintf(timing, sizeof timing,
                "time: %.1f s total; decode %.1f s and preprocess %.1f s (summed over threads), CLIP %.1f s; "
                "%.1f img/s\n",
                total_seconds, decode_seconds, preprocess_seconds, clip_seconds,
                total_seconds > 0 ? double(embedded) / total_seconds : 0.0);
  out << timing;
  for (const auto& [path, reason] : skipped) out << "unreadable: " << path << ": " << reason << "\n";
  if (interrupted) out << "interrupted: a checkpoint was written; rerun the same command to resume\n";
  return out.str();
}

EmbedReport embed_corpus(const EmbedOptions& options) {
  c10::InferenceMode inference;  // no autograd bookkeeping
  const auto start = Clock::now();
  check(options.batch_size > 0, ErrorCode::kInvalidArgument, "--batch must be positive");
  check(!options.out_dir.empty(), ErrorCode::kInvalidArgument, "embed needs an output directory");
  EmbedReport report;
  std::vector<CorpusEntry> all = list_images(options.images_dir);
  report.files = static_cast<int64_t>(all.size());
  check(!all.empty(), ErrorCode::kInvalidArgument,
        "empty corpus: no .png/.jpg/.jpeg files under " + options.images_dir);
  fs::create_directories(options.out_dir);

  const at::Device device = resolve_device(options.device);
  clip::ClipModel clip = clip::ClipModel::load(options.clip_path, device);
  const std::string clip_sha = clip.fingerprint();
  const int64_t dim = clip.config().embed_dim;
  const int resolution = static_cast<int>(clip.config().image_resolution);

  // Incremental: unchanged files keep their embedding and id.
  std::unordered_map<std::string, int64_t> old_rows;
  std::unique_ptr<CorpusIndex> old;
  int64_t next_id = 0;
  const bool have_old = fs::exists(options.out_dir + "/" + kCorpusH5File);
  if (options.incremental && have_old) {
    old = std::make_unique<CorpusIndex>(CorpusIndex::load(options.out_dir));
    if (old->provenance().clip_sha256 != clip_sha || old->dim() != dim) {
      std::fprintf(stderr, "embed: the existing corpus was made with another CLIP; re-embedding everything\n");
      old.reset();
    } else {
      for (int64_t r = 0; r < old->size(); ++r) old_rows[old->entries()[r].path] = r;
      next_id = std::max(old->provenance().next_id, int64_t{0});
    }
  }

  std::vector<CorpusEntry> work;       // to embed, in path order
  std::vector<int64_t> reuse_row(all.size(), -1);
  std::unordered_map<std::string, bool> present;
  for (size_t i = 0; i < all.size(); ++i) {
    present[all[i].path] = true;
    auto it = old ? old_rows.find(all[i].path) : old_rows.end();
    if (old && it != old_rows.end() && old->entries()[it->second].size == all[i].size &&
        old->entries()[it->second].mtime_ns == all[i].mtime_ns) {
      reuse_row[i] = it->second;
      all[i].id = old->entries()[it->second].id;
      ++report.reused;
    } else {
      work.push_back(all[i]);
    }
  }
  if (old)
    for (const CorpusEntry& e : old->entries()) report.dropped += present.count(e.path) ? 0 : 1;

  // A shard embeds whole batches of the listing: batch composition, hence
  // every float, is what a single run computes.
  int64_t shard_begin = 0, shard_end = static_cast<int64_t>(work.size());
  std::string shard_settings;
  if (options.shard.active()) {
    check(!options.incremental, ErrorCode::kInvalidArgument,
          "embed --shard does not combine with --incremental (each shard embeds its part of the whole listing)");
    const int64_t files = static_cast<int64_t>(work.size());
    const auto [first, last] = shard_part(options.shard, (files + options.batch_size - 1) / options.batch_size);
    shard_begin = std::min(files, first * options.batch_size);
    shard_end = std::min(files, last * options.batch_size);
    std::ostringstream listing;
    for (const CorpusEntry& e : work) listing << e.path << "\t" << e.size << "\t" << e.mtime_ns << "\n";
    const std::string text = listing.str();
    std::ostringstream settings;
    settings << "clip_sha256=" << clip_sha << "\nlisting_sha256=" << sha256_bytes(text.data(), text.size())
             << "\nbatch=" << options.batch_size << "\nmax_image_pixels=" << options.max_image_pixels
             << "\ndevice=" << (device.is_cuda() ? "cuda" : "cpu") << "\n";
    shard_settings = settings.str();
    work = std::vector<CorpusEntry>(work.begin() + shard_begin, work.begin() + shard_end);
  }

  // Resume from a checkpoint of this exact job.
  const std::string checkpoint_path = options.out_dir + "/" + kCheckpointFile;
  const std::string fingerprint = job_fingerprint(clip_sha, work, options.batch_size);
  Checkpoint cp;
  if (read_checkpoint(checkpoint_path, fingerprint, dim, &cp)) {
    report.resumed = cp.done;
    std::fprintf(stderr, "embed: resuming after %ld of %ld images from %s\n", long(cp.done), long(work.size()),
                 checkpoint_path.c_str());
  } else {
    cp = Checkpoint{};
  }
  const int64_t total = static_cast<int64_t>(work.size());
  cp.ok.resize(total, 0);
  cp.reasons.resize(total);
  cp.embeddings.resize(total * dim, 0.0f);

  // Decoders fill `ready` (bounded by max_pending beyond the consumer); the
  // main thread takes batches in work order so batch composition (and thus
  // every float) does not depend on thread timing.
  std::mutex mutex;
  std::condition_variable cv;
  std::map<int64_t, Decoded> ready;
  std::atomic<int64_t> next_index{cp.done};
  int64_t consumed = cp.done;
  bool stop = false;
  std::atomic<int64_t> decode_ns{0}, preprocess_ns{0};
  const int threads = options.decode_threads > 0
                          ? options.decode_threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
  const int64_t max_pending = std::max(options.max_pending, options.batch_size);
  auto decoder = [&] {
    for (;;) {
      const int64_t idx = next_index++;
      if (idx >= total) return;
      {
        std::unique_lock<std::mutex> lock(mutex);
        cv.wait(lock, [&] { return stop || idx < consumed + max_pending; });
        if (stop) return;
      }
      Decoded d;
      const auto t0 = Clock::now();
      try {
        image::NativeImage img =
            image::decode_native_file(options.images_dir + "/" + work[idx].path, options.max_image_pixels);
        const auto t1 = Clock::now();
        decode_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count();
        d.pixels = clip::preprocess_image(img, resolution);
        preprocess_ns += std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t1).count();
      } catch (const std::exception& e) {
        d.error = e.what();
      }
      std::lock_guard<std::mutex> lock(mutex);
      ready.emplace(idx, std::move(d));
      cv.notify_all();
    }
  };
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) pool.emplace_back(decoder);
  auto stop_pool = [&] {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stop = true;
    }
    cv.notify_all();
    for (std::thread& t : pool)
      if (t.joinable()) t.join();
  };

  Progress progress("embed", total, "img", cp.done, options.progress ? stderr : nullptr);
  int64_t last_checkpoint = cp.done;
  double clip_seconds = 0;
  // A batch queued on the device, its embeddings not read back yet. On CUDA
  // the device works on batch k while this thread gathers and stacks batch
  // k+1 into the other of two pinned buffers (whose copy to the device is
  // then asynchronous); batch k is read back only after that. On the CPU,
  // queuing is computing: the same order, no overlap.
  struct Queued {
    int64_t begin = 0, end = 0;
    std::vector<int64_t> rows;
    at::Tensor features;  // [rows, dim] on the device; undefined when no row decoded
  };
  std::optional<Queued> queued;
  at::Tensor pinned[2];
  int next_pinned = 0;
  // Reads `batch` back into the checkpoint; true when the run stops here
  // (interrupted with images left), after a checkpoint of what is done.
  auto complete = [&](Queued& batch) {
    if (batch.features.defined()) {
      const auto t0 = Clock::now();
      const at::Tensor features = batch.features.to(at::kCPU).contiguous();
      clip_seconds += seconds_since(t0);
      const float* f = features.data_ptr<float>();
      for (size_t j = 0; j < batch.rows.size(); ++j) {
        std::copy(f + j * dim, f + (j + 1) * dim, cp.embeddings.begin() + batch.rows[j] * dim);
        cp.ok[batch.rows[j]] = 1;
      }
    }
    const int64_t end = batch.end;
    cp.done = end;
    report.embedded += static_cast<int64_t>(batch.rows.size());
    progress.advance(end - batch.begin);
    const bool interrupted =
        Interrupt::requested() || (options.stop_after >= 0 && report.embedded >= options.stop_after);
    if ((interrupted && end < total) || end - last_checkpoint >= options.checkpoint_every) {
      Checkpoint prefix;
      prefix.done = end;
      prefix.ok.assign(cp.ok.begin(), cp.ok.begin() + end);
      prefix.reasons.assign(cp.reasons.begin(), cp.reasons.begin() + end);
      prefix.embeddings.assign(cp.embeddings.begin(), cp.embeddings.begin() + end * dim);
      write_checkpoint(checkpoint_path, fingerprint, prefix, dim);
      last_checkpoint = end;
    }
    return interrupted && end < total;
  };
  try {
    for (int64_t begin = cp.done; begin < total; begin += options.batch_size) {
      const int64_t end = std::min(total, begin + options.batch_size);
      std::vector<at::Tensor> batch;
      Queued next;
      next.begin = begin;
      next.end = end;
      for (int64_t idx = begin; idx < end; ++idx) {
        Decoded d;
        {
          std::unique_lock<std::mutex> lock(mutex);
          cv.wait(lock, [&] { return ready.count(idx) > 0; });
          d = std::move(ready[idx]);
          ready.erase(idx);
        }
        if (d.error.empty()) {
          batch.push_back(d.pixels);
          next.rows.push_back(idx);
        } else {
          cp.reasons[idx] = d.error;
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex);
        consumed = end;
      }
      cv.notify_all();
      at::Tensor pixels;
      if (!batch.empty()) {
        const int64_t n = static_cast<int64_t>(batch.size());
        if (device.is_cuda()) {
          at::Tensor& buffer = pinned[next_pinned];
          next_pinned = 1 - next_pinned;
          if (!buffer.defined())
            buffer = at::empty({options.batch_size, 3, resolution, resolution},
                               at::TensorOptions().dtype(at::kFloat).pinned_memory(true));
          pixels = buffer.narrow(0, 0, n);
          at::stack_out(pixels, batch);
        } else {
          pixels = at::stack(batch);
        }
      }
      // The batch before was queued while this one was gathered: read it back
      // now (its pinned buffer is free again once it has).
      if (queued) {
        const bool stop = complete(*queued);
        queued.reset();
        if (stop) {
          report.interrupted = true;
          break;
        }
      }
      if (pixels.defined()) {
        const auto t0 = Clock::now();
        next.features = clip.encode_image(pixels.to(device, /*non_blocking=*/true));
        clip_seconds += seconds_since(t0);
      }
      queued = std::move(next);
    }
    if (queued && complete(*queued)) report.interrupted = true;
  } catch (...) {
    stop_pool();
    throw;
  }
  stop_pool();
  progress.finish();
  report.decode_seconds = double(decode_ns.load()) * 1e-9;
  report.preprocess_seconds = double(preprocess_ns.load()) * 1e-9;
  report.clip_seconds = clip_seconds;
  for (int64_t idx = 0; idx < cp.done; ++idx)
    if (!cp.ok[idx]) report.skipped.push_back({work[idx].path, cp.reasons[idx]});
  if (report.interrupted) {
    report.total_seconds = seconds_since(start);
    return report;
  }

  if (options.shard.active()) {
    EmbedShard shard;
    shard.shard = options.shard;
    shard.row_begin = shard_begin;
    shard.row_end = shard_end;
    shard.total_files = static_cast<int64_t>(all.size());
    shard.settings = shard_settings;
    shard.entries = work;
    shard.ok = cp.ok;
    shard.reasons = cp.reasons;
    shard.embeddings = cp.embeddings;
    shard.dim = dim;
    shard.provenance.clip_sha256 = clip_sha;
    shard.provenance.preprocessing = kPreprocessing;
    shard.provenance.corpus_root = fs::absolute(options.images_dir).lexically_normal().string();
    shard.provenance.torch_version = torch_version();
    shard.save(options.out_dir + "/" + kEmbedShardFile);
    std::error_code ignored;
    fs::remove(checkpoint_path, ignored);
    report.total_seconds = seconds_since(start);
    return report;
  }

  // Assemble rows in path order: reused ones from the old corpus, new ones from this run.
  std::vector<CorpusEntry> entries;
  std::vector<float> embeddings;
  entries.reserve(all.size());
  embeddings.reserve(all.size() * dim);
  int64_t max_id = next_id - 1;
  if (old)
    for (const CorpusEntry& e : old->entries()) max_id = std::max(max_id, e.id);
  next_id = max_id + 1;
  size_t w = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (reuse_row[i] >= 0) {
      entries.push_back(all[i]);
      const float* e = old->embedding(reuse_row[i]);
      embeddings.insert(embeddings.end(), e, e + dim);
      continue;
    }
    const int64_t idx = static_cast<int64_t>(w++);
    if (!cp.ok[idx]) continue;
    CorpusEntry e = all[i];
    e.id = next_id++;
    entries.push_back(e);
    embeddings.insert(embeddings.end(), cp.embeddings.begin() + idx * dim, cp.embeddings.begin() + (idx + 1) * dim);
  }
  check(!entries.empty(), ErrorCode::kInvalidArgument,
        "empty corpus: none of the " + std::to_string(all.size()) + " images under " + options.images_dir +
            " could be read");
  CorpusProvenance provenance;
  provenance.clip_sha256 = clip_sha;
  provenance.preprocessing = kPreprocessing;
  provenance.corpus_root = fs::absolute(options.images_dir).lexically_normal().string();
  provenance.created = utc_timestamp();
  provenance.tool_version = tool_version();
  provenance.faiss_version = faiss_version();
  provenance.torch_version = torch_version();
  provenance.next_id = next_id;
  CorpusIndex index = CorpusIndex::build(std::move(entries), std::move(embeddings), dim, options.index, provenance);
  index.save(options.out_dir);
  std::error_code ignored;
  fs::remove(checkpoint_path, ignored);
  report.total_seconds = seconds_since(start);
  write_file_atomic(options.out_dir + "/embed-report.txt", report.text());
  return report;
}

}  // namespace feu::index
