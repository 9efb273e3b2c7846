#include "service/frames.h"

#include <zlib.h>

#include <cstring>

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "feu's wire and disk formats are little-endian; add byte swapping for this target");

namespace feu::service {

void put_u32(std::string* out, uint32_t value) { out->append(reinterpret_cast<const char*>(&value), 4); }
void put_u64(std::string* out, uint64_t value) { out->append(reinterpret_cast<const char*>(&value), 8); }

uint32_t get_u32(const char* data) {
  uint32_t value;
  std::memcpy(&value, data, 4);
  return value;
}

uint64_t get_u64(const char* data) {
  uint64_t value;
  std::memcpy(&value, data, 8);
  return value;
}

uint32_t crc32_of(const char* data, size_t size) {
  uLong crc = crc32(0L, Z_NULL, 0);
  // zlib takes uInt lengths: feed large buffers in pieces.
  while (size > 0) {
    uInt piece = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(data), piece);
    data += piece;
    size -= piece;
  }
  return static_cast<uint32_t>(crc);
}

std::string pack_frames(const std::vector<Frame>& frames) {
  size_t total = 4;
  for (const auto& f : frames) total += 4 + f.size();
  std::string out;
  out.reserve(total);
  put_u32(&out, static_cast<uint32_t>(frames.size()));
  for (const auto& f : frames) {
    put_u32(&out, static_cast<uint32_t>(f.size()));
    out += f;
  }
  return out;
}

bool unpack_frames(const char* data, size_t size, std::vector<Frame>* frames) {
  frames->clear();
  if (size < 4) return false;
  uint32_t count = get_u32(data);
  size_t pos = 4;
  // Each frame needs at least its 4-byte length: bounds the count before reserving.
  if (count > (size - pos) / 4) return false;
  frames->reserve(count);
  for (uint32_t i = 0; i < count; ++i) {
    if (size - pos < 4) return false;
    uint32_t length = get_u32(data + pos);
    pos += 4;
    if (length > size - pos) return false;
    frames->emplace_back(data + pos, length);
    pos += length;
  }
  return pos == size;
}

}  // namespace feu::service
