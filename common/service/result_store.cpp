#include "service/result_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <filesystem>
#include <fstream>

#include "core/files.h"
#include "service/job_queue.h"

namespace feu::service {
namespace fs = std::filesystem;
namespace {

constexpr char kMagic[4] = {'F', 'E', 'R', '2'};
constexpr size_t kHeader = 8;  // magic + CRC-32 of the packed frames

bool has_magic(const char* data, size_t size) { return size >= kHeader && std::memcmp(data, kMagic, 4) == 0; }

// Reads only the first `count` frames of a result file (the index needs the
// id, digest and time, not the images). False when the file is malformed.
bool read_leading_frames(const std::string& path, size_t count, std::vector<Frame>* frames) {
  std::ifstream in(path, std::ios::binary);
  char word[4];
  if (!in.read(word, 4)) return false;
  if (std::memcmp(word, kMagic, 4) == 0) {  // skip the CRC: the whole file is checked when served
    if (!in.read(word, 4) || !in.read(word, 4)) return false;
  }
  uint32_t total = get_u32(word);
  if (total < count) return false;
  frames->clear();
  for (size_t i = 0; i < count; ++i) {
    if (!in.read(word, 4)) return false;
    uint32_t length = get_u32(word);
    if (length > (1u << 20)) return false;  // id, digest and time are small
    Frame frame(length, '\0');
    if (!in.read(frame.data(), length)) return false;
    frames->push_back(std::move(frame));
  }
  return true;
}

}  // namespace

ResultStore::ResultStore(std::string dir, int64_t retention_ms, size_t max_results, uint64_t max_bytes)
    : dir_(std::move(dir)), retention_ms_(retention_ms), max_results_(max_results), max_bytes_(max_bytes) {
  std::error_code ec;
  fs::create_directories(dir_, ec);
  if (ec) throw Error(ErrorCode::kIoError, "cannot create result directory " + dir_ + ": " + ec.message());
  for (const auto& item : fs::directory_iterator(dir_)) {
    const std::string path = item.path().string();
    if (item.path().extension() != ".res") {
      // Leftover temporaries of a crash mid-write: never committed, never visible.
      if (path.find(".res.tmp-") != std::string::npos) fs::remove(item.path(), ec);
      continue;
    }
    std::vector<Frame> head;
    if (!read_leading_frames(path, 3, &head) || head[2].size() != 8) {
      spdlog::warn("result store: ignoring unreadable file {}", path);
      continue;
    }
    index(head[0], Entry{path, head[1], static_cast<int64_t>(get_u64(head[2].data())), item.file_size(ec)});
  }
}

bool ResultStore::expired(const Entry& entry, int64_t now_ms) const {
  return entry.finished_ms + retention_ms_ < now_ms;
}

void ResultStore::index(const std::string& id, Entry entry) {
  if (auto old = entries_.find(id); old != entries_.end()) forget(old);
  by_age_.insert({entry.finished_ms, id});
  total_bytes_ += entry.bytes;
  entries_[id] = std::move(entry);
}

void ResultStore::forget(std::map<std::string, Entry>::iterator it) {
  by_age_.erase({it->second.finished_ms, it->first});
  total_bytes_ -= it->second.bytes;
  entries_.erase(it);
}

std::string ResultStore::file_for(const std::string& id) const {
  // Hashing keeps any client-chosen id (slashes, dots, length) a safe file name.
  return (fs::path(dir_) / (sha256_bytes(id.data(), id.size()) + ".res")).string();
}

void ResultStore::put(const std::string& id, const std::string& digest, const Message& reply) {
  put_many({Item{id, digest, &reply}});
}

void ResultStore::put_many(const std::vector<Item>& items) {
  if (items.empty()) return;
  int64_t finished = now_unix_ms();
  std::string time;
  put_u64(&time, static_cast<uint64_t>(finished));
  // Each result: temporary file, fsync, rename (never visible half-written).
  // The directory fsync is shared by the batch: a crash before it may lose a
  // rename, which only means the restarted daemon runs that job again.
  static std::atomic<uint64_t> counter{0};
  std::vector<std::string> finals, temps;
  std::vector<uint64_t> sizes;
  auto fail = [&](const std::string& what, const std::string& path) {
    std::string reason = std::strerror(errno);
    std::error_code ignored;
    for (const auto& temp : temps) fs::remove(temp, ignored);
    throw Error(ErrorCode::kIoError, what + " " + path + ": " + reason);
  };
  for (const Item& item : items) {
    std::vector<Frame> frames = {item.id, item.digest, time};
    std::vector<Frame> reply_frames = to_frames(*item.reply);
    frames.insert(frames.end(), reply_frames.begin(), reply_frames.end());
    std::string packed = pack_frames(frames);
    std::string bytes(kMagic, 4);
    put_u32(&bytes, crc32_of(packed.data(), packed.size()));
    bytes += packed;
    sizes.push_back(bytes.size());
    finals.push_back(file_for(item.id));
    temps.push_back(finals.back() + ".tmp-" + std::to_string(getpid()) + "-" + std::to_string(counter++));
    int fd = ::open(temps.back().c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) fail("cannot create", temps.back());
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::close(fd);
        fail("cannot write", temps.back());
      }
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
      ::close(fd);
      fail("cannot fsync", temps.back());
    }
    ::close(fd);
  }
  for (size_t i = 0; i < temps.size(); ++i)
    if (::rename(temps[i].c_str(), finals[i].c_str()) != 0) {
      // Renamed ones must go too: no result of a failed batch may be found.
      std::string reason = std::strerror(errno);
      std::error_code ignored;
      for (size_t k = 0; k < i; ++k) fs::remove(finals[k], ignored);
      for (size_t k = i; k < temps.size(); ++k) fs::remove(temps[k], ignored);
      throw Error(ErrorCode::kIoError, "cannot rename " + temps[i] + ": " + reason);
    }
  try {
    fsync_path(dir_);
  } catch (const Error&) {
    std::error_code ignored;
    for (const auto& file : finals) fs::remove(file, ignored);
    throw;
  }
  std::vector<std::string> evicted_files;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < items.size(); ++i) index(items[i].id, Entry{finals[i], items[i].digest, finished, sizes[i]});
    // Oldest first, never the results just stored.
    while ((entries_.size() > max_results_ || total_bytes_ > max_bytes_) && entries_.size() > items.size()) {
      auto oldest = entries_.find(by_age_.begin()->second);
      evicted_files.push_back(oldest->second.file);
      forget(oldest);
      ++evicted_;
    }
  }
  std::error_code ignored;
  for (const auto& file : evicted_files) fs::remove(file, ignored);
}

std::optional<Message> ResultStore::get(const std::string& id) {
  std::string file;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end() || expired(it->second, now_unix_ms())) return std::nullopt;
    file = it->second.file;
  }
  std::vector<uint8_t> bytes;
  try {
    bytes = read_file(file);
  } catch (const Error&) {
    return std::nullopt;  // pruned or evicted meanwhile
  }
  const char* data = reinterpret_cast<const char*>(bytes.data());
  std::vector<Frame> frames;
  bool intact;
  if (has_magic(data, bytes.size())) {
    intact = crc32_of(data + kHeader, bytes.size() - kHeader) == get_u32(data + 4) &&
             unpack_frames(data + kHeader, bytes.size() - kHeader, &frames);
  } else {
    intact = unpack_frames(data, bytes.size(), &frames);  // first format: no checksum
  }
  if (!intact || frames.size() < 4 || frames[0] != id) {
    const std::string aside = file + ".corrupt";
    std::error_code ec;
    fs::rename(file, aside, ec);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (auto it = entries_.find(id); it != entries_.end()) forget(it);
    }
    spdlog::error("result store: {} failed its checksum (damaged on disk); {}", file,
                  ec ? "could not move it aside: " + ec.message() : "moved to " + aside);
    throw Error(ErrorCode::kCorruptFile, "the stored result of this job is damaged (checksum mismatch) and was set "
                                         "aside; submit the edit again under a new id");
  }
  return from_frames(std::vector<Frame>(frames.begin() + 3, frames.end()));
}

bool ResultStore::contains(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  return it != entries_.end() && !expired(it->second, now_unix_ms());
}

std::string ResultStore::digest_of(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  return it == entries_.end() || expired(it->second, now_unix_ms()) ? std::string() : it->second.digest;
}

size_t ResultStore::prune(int64_t now_ms) {
  std::vector<std::string> files;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (expired(it->second, now_ms)) {
        files.push_back(it->second.file);
        auto gone = it++;
        forget(gone);
      } else {
        ++it;
      }
    }
  }
  std::error_code ec;
  for (const auto& file : files) fs::remove(file, ec);
  return files.size();
}

size_t ResultStore::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.size();
}

uint64_t ResultStore::bytes() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return total_bytes_;
}

uint64_t ResultStore::evicted() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return evicted_;
}

}  // namespace feu::service
