#include "service/journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include <spdlog/spdlog.h>

#include "core/error.h"
#include "core/files.h"

namespace feu::service {
namespace fs = std::filesystem;
namespace {

constexpr uint32_t kMagic = 0x324a4546;        // "FEJ2": CRC over kind, length and body
constexpr uint32_t kMagicV1 = 0x4a554546;      // "FEUJ": the first format, CRC over the body only
constexpr uint32_t kAccepted = 1;
constexpr uint32_t kDone = 2;
constexpr size_t kRecordHeader = 16;

uint32_t record_crc(uint32_t kind, uint32_t length, const char* body) {
  std::string covered;
  covered.reserve(8 + length);
  put_u32(&covered, kind);
  put_u32(&covered, length);
  covered.append(body, length);
  return crc32_of(covered.data(), covered.size());
}

std::string record(uint32_t kind, const std::string& body) {
  std::string out;
  out.reserve(kRecordHeader + body.size());
  put_u32(&out, kMagic);
  put_u32(&out, kind);
  put_u32(&out, static_cast<uint32_t>(body.size()));
  put_u32(&out, record_crc(kind, static_cast<uint32_t>(body.size()), body.data()));
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

[[noreturn]] void io_fail(const std::string& what, const std::string& path, int error) {
  throw Error(ErrorCode::kIoError, what + " " + path + ": " + std::strerror(error));
}

// One record parsed at `pos`, or nothing when the bytes there are not a whole,
// intact record of a known kind.
struct Parsed {
  uint32_t kind = 0;
  size_t size = 0;  // header + body
  JournalEntry accepted;
  std::string done_id;
};

std::optional<Parsed> parse_record(const char* data, size_t size, size_t pos) {
  if (size - pos < kRecordHeader) return std::nullopt;
  const uint32_t magic = get_u32(data + pos), kind = get_u32(data + pos + 4);
  const uint32_t length = get_u32(data + pos + 8), crc = get_u32(data + pos + 12);
  if ((magic != kMagic && magic != kMagicV1) || length > size - pos - kRecordHeader) return std::nullopt;
  const char* body = data + pos + kRecordHeader;
  if ((magic == kMagic ? record_crc(kind, length, body) : crc32_of(body, length)) != crc) return std::nullopt;
  Parsed parsed;
  parsed.kind = kind;
  parsed.size = kRecordHeader + length;
  if (kind == kAccepted) {
    std::vector<Frame> parts;
    if (!unpack_frames(body, length, &parts) || parts.size() < 4 || parts[2].size() != 16) return std::nullopt;
    parsed.accepted.id = parts[0];
    parsed.accepted.digest = parts[1];
    parsed.accepted.accepted_ms = static_cast<int64_t>(get_u64(parts[2].data()));
    parsed.accepted.deadline_ms = static_cast<int64_t>(get_u64(parts[2].data() + 8));
    parsed.accepted.frames.assign(parts.begin() + 3, parts.end());
  } else if (kind == kDone) {
    parsed.done_id.assign(body, length);
  } else {
    return std::nullopt;
  }
  return parsed;
}

// The next offset after `from` where an intact record starts, or npos.
size_t next_record(const char* data, size_t size, size_t from) {
  for (size_t pos = from; pos + kRecordHeader <= size; ++pos) {
    const uint32_t magic = get_u32(data + pos);
    if ((magic == kMagic || magic == kMagicV1) && parse_record(data, size, pos)) return pos;
  }
  return std::string::npos;
}

}  // namespace

Journal::Journal(const std::string& dir, std::vector<JournalEntry>* unfinished) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::kIoError, "cannot create journal directory " + dir + ": " + ec.message());
  path_ = (fs::path(dir) / "journal.log").string();

  unfinished->clear();
  if (fs::exists(fs::symlink_status(path_))) {
    if (!fs::is_regular_file(path_))
      throw Error(ErrorCode::kIoError, "the journal " + path_ + " is not a regular file (expected the file " +
                                           "feu-daemon writes; move it away)");
    std::vector<uint8_t> bytes;
    try {
      bytes = read_file(path_);
    } catch (const Error& e) {
      throw Error(ErrorCode::kIoError, std::string("cannot read the journal: ") + e.what() + ": " +
                                           std::strerror(errno));
    }
    const char* data = reinterpret_cast<const char*>(bytes.data());
    std::vector<JournalEntry> accepted;
    std::map<std::string, size_t> done_count;
    size_t pos = 0;
    while (pos < bytes.size()) {
      std::optional<Parsed> parsed = parse_record(data, bytes.size(), pos);
      if (!parsed) {
        const size_t next = next_record(data, bytes.size(), pos + 1);
        if (next == std::string::npos) {
          replay_.tail_bytes = bytes.size() - pos;
          break;
        }
        replay_.corrupt_regions++;
        replay_.corrupt_bytes += next - pos;
        pos = next;
        continue;
      }
      replay_.records++;
      if (parsed->kind == kAccepted) accepted.push_back(std::move(parsed->accepted));
      else done_count[parsed->done_id]++;
      pos += parsed->size;
    }
    if (replay_.corrupt_regions > 0) {
      // Kept for inspection: the compaction below rewrites journal.log.
      replay_.quarantined_path = path_ + ".corrupt-" + utc_timestamp();
      fs::copy_file(path_, replay_.quarantined_path, fs::copy_options::overwrite_existing, ec);
      if (ec) replay_.quarantined_path = "(could not copy: " + ec.message() + ")";
    }
    // A done record cancels the latest accepted record of its id before it.
    for (auto it = accepted.rbegin(); it != accepted.rend(); ++it) {
      auto d = done_count.find(it->id);
      if (d != done_count.end() && d->second > 0) {
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

bool Journal::restore_length() {
  if (::ftruncate(fd_, static_cast<off_t>(size_)) != 0) return false;
  damaged_ = false;
  return true;
}

void Journal::append(const std::string& bytes, bool sync) {
  if (damaged_ && !restore_length())
    io_fail("cannot append to the journal (an earlier failed append could not be undone)", path_, errno);
  const char* p = bytes.data();
  size_t left = bytes.size();
  int error = 0;
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = errno;
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (error == 0 && sync && ::fdatasync(fd_) != 0) error = errno;
  if (error != 0) {
    // Nothing may follow a partial record: cut the file back to its last good length.
    damaged_ = !restore_length();
    if (damaged_)
      spdlog::error("journal {}: cannot truncate to {} bytes after a failed append: {}", path_, size_,
                    std::strerror(errno));
    io_fail("cannot append to the journal", path_, error);
  }
  size_ += bytes.size();
}

void Journal::append_accepted(const std::vector<JournalEntry>& entries) {
  if (entries.empty()) return;
  std::string bytes;
  for (const auto& entry : entries) bytes += accepted_record(entry);
  std::lock_guard<std::mutex> lock(mutex_);
  append(bytes, /*sync=*/true);
}

void Journal::append_done(const std::string& id) {
  std::string bytes = record(kDone, id);
  std::lock_guard<std::mutex> lock(mutex_);
  append(bytes, /*sync=*/false);
}

void Journal::compact(const std::vector<JournalEntry>& unfinished) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string bytes;
  for (const auto& entry : unfinished) bytes += accepted_record(entry);
  write_file_atomic(path_, bytes.data(), bytes.size());
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) io_fail("cannot open journal", path_, errno);
  size_ = bytes.size();
  damaged_ = false;
}

uint64_t Journal::size_bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return size_;
}

}  // namespace feu::service
