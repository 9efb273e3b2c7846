#include "index/checkpoint.h"

#include <cstdio>

#include "core/files.h"

namespace feu::index {

std::string checkpoint_digest(std::initializer_list<ByteSpan> parts) {
  std::string bytes;
  for (const ByteSpan& part : parts) bytes.append(static_cast<const char*>(part.data), part.size);
  return sha256_bytes(bytes.data(), bytes.size());
}

bool discard_checkpoint(const char* tool, const std::string& path, const std::string& why) {
  std::fprintf(stderr, "%s: warning: discarding checkpoint %s (%s); its work is redone\n", tool, path.c_str(),
               why.c_str());
  return false;
}

}  // namespace feu::index
