// Length-prefixed frame lists: the on-disk encoding shared by the journal and
// the result store (a message is a list of binary frames, as on the wire).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace feu::service {

// A binary-safe frame. std::string because it owns bytes and compares/hashes
// cheaply; nothing assumes it holds text.
using Frame = std::string;

// [u32 count] then per frame [u32 length][bytes], little-endian.
std::string pack_frames(const std::vector<Frame>& frames);
// Inverse of pack_frames; false when `size` bytes are not exactly one packed
// list (truncated, trailing bytes, absurd lengths).
bool unpack_frames(const char* data, size_t size, std::vector<Frame>* frames);

// Little-endian fixed-width integers.
void put_u32(std::string* out, uint32_t value);
void put_u64(std::string* out, uint64_t value);
uint32_t get_u32(const char* data);
uint64_t get_u64(const char* data);

// zlib CRC-32 of bytes.
uint32_t crc32_of(const char* data, size_t size);

}  // namespace feu::service
