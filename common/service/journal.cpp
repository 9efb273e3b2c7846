#include "service/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/files.h"

namespace feu::service {
namespace fs = std::filesystem;
namespace {

constexpr uint32_t kMagic = 0x4a554546;  // "FEUJ"
constexpr uint32_t kAccepted = 1;
constexpr uint32_t kDone = 2;
constexpr size_t kRecordHeader = 16;

std::string record(uint32_t kind, const std::string& body) {
  std::string out;
  out.reserve(kRecordHeader + body.size());
  put_u32(&out, kMagic);
  put_u32(&out, kind);
  put_u32(&out, static_cast<uint32_t>(body.size()));
  put_u32(&out, crc32_of(body.data(), body.size()));
  out += body;
  return out;
}

std::string accepted_record(const JournalEntry& entry) {
  std::string times;
  put_u64(&times, static_cast<uint64_t>(entry.accepted_ms));
  put_u64(&times, static_cast<uint64_t>(entry.deadline_ms));
  std::vector<Frame> parts = {entry.id, entry.digest, times};
  parts.insert(parts.end(), entry.frames.begin(), entry.frames.end());
  return record(kAccepted, pack_frames(parts));
}

[[noreturn]] void io_fail(const std::string& what, const std::string& path) {
  throw Error(ErrorCode::kIoError, what + " " + path + ": " + std::strerror(errno));
}

}  // namespace

Journal::Journal(const std::string& dir, std::vector<JournalEntry>* unfinished) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::kIoError, "cannot create journal directory " + dir + ": " + ec.message());
  path_ = (fs::path(dir) / "journal.log").string();

  unfinished->clear();
  if (fs::exists(path_)) {
    std::vector<uint8_t> bytes = read_file(path_);
    const char* data = reinterpret_cast<const char*>(bytes.data());
    size_t pos = 0;
    std::vector<JournalEntry> accepted;
    std::map<std::string, size_t> done_count;
    while (bytes.size() - pos >= kRecordHeader) {
      uint32_t magic = get_u32(data + pos), kind = get_u32(data + pos + 4);
      uint32_t length = get_u32(data + pos + 8), crc = get_u32(data + pos + 12);
      if (magic != kMagic || length > bytes.size() - pos - kRecordHeader) break;
      const char* body = data + pos + kRecordHeader;
      if (crc32_of(body, length) != crc) break;
      if (kind == kAccepted) {
        std::vector<Frame> parts;
        if (!unpack_frames(body, length, &parts) || parts.size() < 4 || parts[2].size() != 16) break;
        JournalEntry entry;
        entry.id = parts[0];
        entry.digest = parts[1];
        entry.accepted_ms = static_cast<int64_t>(get_u64(parts[2].data()));
        entry.deadline_ms = static_cast<int64_t>(get_u64(parts[2].data() + 8));
        entry.frames.assign(parts.begin() + 3, parts.end());
        accepted.push_back(std::move(entry));
      } else if (kind == kDone) {
        done_count[std::string(body, length)]++;
      } else {
        break;
      }
      pos += kRecordHeader + length;
    }
    dropped_bytes_ = bytes.size() - pos;
    // A done record cancels the latest accepted record of its id before it.
    std::map<std::string, size_t> pending_done = done_count;
    for (auto it = accepted.rbegin(); it != accepted.rend(); ++it) {
      auto d = pending_done.find(it->id);
      if (d != pending_done.end() && d->second > 0) {
        d->second--;
        it->id.clear();  // finished
      }
    }
    for (auto& entry : accepted)
      if (!entry.id.empty()) unfinished->push_back(std::move(entry));
  }
  // Start from a compact file: replay stays proportional to unfinished work.
  compact(*unfinished);
}

Journal::~Journal() {
  if (fd_ >= 0) ::close(fd_);
}

void Journal::write_all(const std::string& bytes) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      io_fail("cannot append to journal", path_);
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  size_ += bytes.size();
}

void Journal::append_accepted(const std::vector<JournalEntry>& entries) {
  if (entries.empty()) return;
  std::string bytes;
  for (const auto& entry : entries) bytes += accepted_record(entry);
  std::lock_guard<std::mutex> lock(mutex_);
  write_all(bytes);
  if (::fdatasync(fd_) != 0) io_fail("cannot fsync journal", path_);
}

void Journal::append_done(const std::string& id) {
  std::string bytes = record(kDone, id);
  std::lock_guard<std::mutex> lock(mutex_);
  write_all(bytes);
}

void Journal::compact(const std::vector<JournalEntry>& unfinished) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string bytes;
  for (const auto& entry : unfinished) bytes += accepted_record(entry);
  write_file_atomic(path_, bytes.data(), bytes.size());
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) io_fail("cannot open journal", path_);
  size_ = bytes.size();
}

uint64_t Journal::size_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return size_;
}

}  // namespace feu::service
