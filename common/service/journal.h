// The write-ahead journal that makes `accepted` a promise: an edit is appended
// and fsynced here before the client hears `accepted`, so a daemon killed with
// -9 finds every unfinished job again when it restarts.
//
// File <dir>/journal.log: records [u32 magic][u32 kind][u32 length][u32 crc32]
// [body]. An `accepted` record holds the request as received; a `done` record
// its id. A torn tail (a crash mid-append) fails its length or CRC check and is
// dropped: the client of that record never got `accepted`.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "service/frames.h"

namespace feu::service {

struct JournalEntry {
  std::string id;
  std::string digest;        // request digest (idempotency check)
  int64_t accepted_ms = 0;   // unix ms
  int64_t deadline_ms = 0;   // unix ms; 0 = none
  std::vector<Frame> frames; // the request's frames (header first)
};

class Journal {
 public:
  // Opens (creating) `dir`/journal.log and replays it: `unfinished` receives
  // the accepted-but-not-done entries in acceptance order, and the file is
  // rewritten to hold exactly those. Errors: io_error.
  Journal(const std::string& dir, std::vector<JournalEntry>* unfinished);
  ~Journal();
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;

  // Appends all entries with one write and one fdatasync (group commit: a
  // burst of requests pays for one disk flush). Errors: io_error.
  void append_accepted(const std::vector<JournalEntry>& entries);
  // Appends a done record without syncing: the result store's fsynced file is
  // the durable proof of completion, this record only keeps replay short.
  void append_done(const std::string& id);
  // Atomically rewrites the journal to hold only `unfinished` (bounds its size).
  void compact(const std::vector<JournalEntry>& unfinished);

  uint64_t size_bytes() const;
  // Bytes dropped at replay as a torn or corrupt tail.
  uint64_t dropped_bytes() const { return dropped_bytes_; }
  const std::string& path() const { return path_; }

 private:
  void write_all(const std::string& bytes);

  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
  uint64_t dropped_bytes_ = 0;
  mutable std::mutex mutex_;
};

}  // namespace feu::service
