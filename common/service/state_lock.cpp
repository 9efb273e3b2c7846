#include "service/state_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace feu::service {
namespace fs = std::filesystem;

StateDirLock::StateDirLock(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::kIoError, "cannot create the daemon state directory " + dir + ": " + ec.message());
  path_ = (fs::path(dir) / "daemon.lock").string();
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(ErrorCode::kIoError, "cannot open the lock file " + path_ + ": " + std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int lock_errno = errno;
    std::string holder;
    char buffer[32] = {};
    ssize_t n = ::pread(fd_, buffer, sizeof(buffer) - 1, 0);
    for (ssize_t i = 0; i < n && buffer[i] >= '0' && buffer[i] <= '9'; ++i) holder += buffer[i];
    ::close(fd_);
    fd_ = -1;
    if (lock_errno != EWOULDBLOCK)
      throw Error(ErrorCode::kIoError, "cannot lock " + path_ + ": " + std::strerror(lock_errno));
    throw Error(ErrorCode::kIoError, "the daemon state directory " + dir + " is in use by another feu-daemon (pid " +
                                         (holder.empty() ? std::string("unknown") : holder) + ", lock " + path_ +
                                         "): stop it, or give this daemon its own daemon.journal_dir");
  }
  // The pid is only for the message above: the lock, not the file's content, is the truth.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    const int write_errno = errno;
    ::close(fd_);
    fd_ = -1;
    throw Error(ErrorCode::kIoError, "cannot write the lock file " + path_ + ": " + std::strerror(write_errno));
  }
}

StateDirLock::~StateDirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

}  // namespace feu::service
