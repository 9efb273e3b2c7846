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

// Reads only the first `count` frames of a packed file (the index needs the
// id, digest and time, not the images). False when the file is malformed.
bool read_leading_frames(const std::string& path, size_t count, std::vector<Frame>* frames) {
  std::ifstream in(path, std::ios::binary);
  char word[4];
  if (!in.read(word, 4)) return false;
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

ResultStore::ResultStore(std::string dir, int64_t retention_ms)
    : dir_(std::move(dir)), retention_ms_(retention_ms) {
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
    entries_[head[0]] = Entry{path, head[1], static_cast<int64_t>(get_u64(head[2].data()))};
  }
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
    std::string bytes = pack_frames(frames);
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
    if (::rename(temps[i].c_str(), finals[i].c_str()) != 0) fail("cannot rename", temps[i]);
  fsync_path(dir_);
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < items.size(); ++i) entries_[items[i].id] = Entry{finals[i], items[i].digest, finished};
}

std::optional<Message> ResultStore::get(const std::string& id) const {
  std::string file;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return std::nullopt;
    file = it->second.file;
  }
  std::vector<uint8_t> bytes;
  try {
    bytes = read_file(file);
  } catch (const Error&) {
    return std::nullopt;  // pruned meanwhile
  }
  std::vector<Frame> frames;
  if (!unpack_frames(reinterpret_cast<const char*>(bytes.data()), bytes.size(), &frames) || frames.size() < 4)
    throw Error(ErrorCode::kCorruptFile, "result file " + file + " is corrupt");
  return from_frames(std::vector<Frame>(frames.begin() + 3, frames.end()));
}

bool ResultStore::contains(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return entries_.count(id) > 0;
}

std::string ResultStore::digest_of(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = entries_.find(id);
  return it == entries_.end() ? std::string() : it->second.digest;
}

size_t ResultStore::prune(int64_t now_ms) {
  std::vector<std::string> files;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = entries_.begin(); it != entries_.end();) {
      if (it->second.finished_ms + retention_ms_ < now_ms) {
        files.push_back(it->second.file);
        it = entries_.erase(it);
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

}  // namespace feu::service
