// Checkpoints of the long indexer jobs (embed, directions): a damaged one must
// be discarded and its work redone, never resumed into wrong results.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <string>

namespace feu::index {

struct ByteSpan {
  const void* data;
  size_t size;
};

// sha256 over the parts a resume takes from a checkpoint, in order.
std::string checkpoint_digest(std::initializer_list<ByteSpan> parts);

// Says on stderr that `tool`'s checkpoint at `path` is discarded and why; the
// caller then redoes its work. Returns false (the checkpoint is not resumed).
bool discard_checkpoint(const char* tool, const std::string& path, const std::string& why);

}  // namespace feu::index
