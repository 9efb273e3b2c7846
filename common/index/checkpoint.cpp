#include "index/checkpoint.h"

#include "core/files.h"

namespace feu::index {

std::string checkpoint_digest(std::initializer_list<ByteSpan> parts) {
  std::string bytes;
  for (const ByteSpan& part : parts) bytes.append(static_cast<const char*>(part.data), part.size);
  return sha256_bytes(bytes.data(), bytes.size());
}

}  // namespace feu::index
