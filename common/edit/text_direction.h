// Text directions in CLIP space (StyleCLIP MapTS.py zeroshot_classifier/GetDt)
// and the cache of per-text embeddings. Plain C++: the CLIP forward pass
// happens in the engine; this is the math around it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "edit/lru_cache.h"
#include "edit/templates.h"
#include "edit/vectors.h"

namespace feu::edit {

// T(x) = unit(mean over prompts of unit(raw embedding)).
//   raw: [count, dim] row-major, the CLIP text encoder's raw outputs of prompts_for(x).
std::vector<float> template_embedding(const float* raw, int64_t count, int64_t dim);

// The global-directions Δt = unit(T(target) - T(neutral)) (both already unit).
// Identical target and neutral embeddings are an invalid_argument error.
std::vector<float> global_direction(const std::vector<float>& target, const std::vector<float>& neutral);

// LRU cache of T(x), keyed by (text, template set, CLIP fingerprint) so that a
// model or template change never serves a stale embedding. Thread-safe.
class TextEmbeddingCache {
 public:
  explicit TextEmbeddingCache(size_t capacity  // entries kept; 0 disables caching
                              )
      : cache_(capacity) {}

  std::optional<std::vector<float>> get(const std::string& text, TemplateSet templates,
                                        const std::string& clip_fingerprint) {
    return cache_.get(key_of(text, templates, clip_fingerprint));
  }
  void put(const std::string& text, TemplateSet templates, const std::string& clip_fingerprint,
           std::vector<float> embedding) {
    cache_.put(key_of(text, templates, clip_fingerprint), std::move(embedding));
  }
  void clear() { cache_.clear(); }

  size_t size() const { return cache_.size(); }
  size_t capacity() const { return cache_.capacity(); }
  uint64_t hits() const { return cache_.hits(); }
  uint64_t misses() const { return cache_.misses(); }

 private:
  static std::string key_of(const std::string& text, TemplateSet templates, const std::string& fingerprint);
  LruCache<std::vector<float>> cache_;
};

}  // namespace feu::edit
