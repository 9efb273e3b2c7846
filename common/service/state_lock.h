// Exclusive ownership of a daemon's state directory (journal + results).
//
// Two daemons on one journal corrupt it: the second rewrites journal.log while
// the first keeps appending to the unlinked file, so a job the first accepted
// is lost at the next restart. Whoever holds <dir>/daemon.lock (flock) owns
// the directory for as long as the process lives; the kernel releases the lock
// when the process dies, kill -9 included, so a crash never leaves it stale.
#pragma once

#include <string>

namespace feu::service {

class StateDirLock {
 public:
  // Creates `dir` if needed and takes the lock without waiting, writing this
  // process's pid into the lock file. Errors: io_error naming the directory
  // and the pid of the process that holds it.
  explicit StateDirLock(const std::string& dir);
  ~StateDirLock();
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace feu::service
