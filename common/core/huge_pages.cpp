#include "core/huge_pages.h"

#include <cstdlib>
#include <cstring>
#include <new>

#ifdef __linux__
#include <sys/mman.h>
#endif

namespace feu {
namespace {

constexpr size_t kHugePage = size_t{2} << 20;

}  // namespace

void HugePageBuffer::Free::operator()(uint8_t* p) const { std::free(p); }

HugePageBuffer::HugePageBuffer(size_t bytes) : size_(bytes) {
  if (bytes == 0) return;
  // aligned_alloc wants a multiple of the alignment; small arrays gain
  // nothing from huge pages, so they stay on ordinary alignment.
  const bool huge = bytes >= kHugePage;
  const size_t alignment = huge ? kHugePage : alignof(std::max_align_t);
  const size_t rounded = (bytes + alignment - 1) / alignment * alignment;
  data_.reset(static_cast<uint8_t*>(std::aligned_alloc(alignment, rounded)));
  if (!data_) throw std::bad_alloc();
#ifdef __linux__
  if (huge) madvise(data_.get(), rounded, MADV_HUGEPAGE);  // advice only: failure leaves 4 KB pages
#endif
  std::memset(data_.get(), 0, bytes);
}

HugePageBuffer::HugePageBuffer(const HugePageBuffer& other) : HugePageBuffer(other.size_) {
  if (size_ > 0) std::memcpy(data_.get(), other.data_.get(), size_);
}

HugePageBuffer& HugePageBuffer::operator=(const HugePageBuffer& other) {
  if (this != &other) *this = HugePageBuffer(other);
  return *this;
}

}  // namespace feu
