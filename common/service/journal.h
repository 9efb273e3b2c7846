// The write-ahead journal that makes `accepted` a promise: an edit is appended
// and fsynced here before the client hears `accepted`, so a daemon killed with
// -9 finds every unfinished job again when it restarts.
//
// File <dir>/journal.log: records [u32 magic "FEJ2"][u32 kind][u32 length]
// [u32 crc32 of kind, length and body][body]. An `accepted` record holds the
// request as received; a `done` record its id. Replay checks every record and,
// past a damaged one, resynchronizes on the next record whose magic and CRC
// hold, so one bad byte costs one record, not the rest of the file. A damaged
// file is copied aside (journal.log.corrupt-<utc>) before the journal is
// compacted. An unreadable tail is what a crash mid-append leaves (its client
// never got `accepted`). Records of the first format ("FEUJ", CRC over the
// body only) still replay.
//
// A failed append (disk full, I/O error) truncates the file back to its last
// good length before throwing, so later records never land behind a partial
// one; while even that fails, every append throws io_error.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "service/frames.h"

namespace feu::service {

// What replay found, for the log and `status`.
struct JournalReplay {
  size_t records = 0;                 // valid records read
  size_t corrupt_regions = 0;         // damaged stretches skipped between valid records
  uint64_t corrupt_bytes = 0;         // their bytes
  uint64_t tail_bytes = 0;            // unreadable bytes at the end (a crash mid-append, or damage)
  std::string quarantined_path;       // the damaged file's copy ("" when nothing was damaged)
};

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
  // rewritten to hold exactly those. Errors: io_error naming the path and the
  // reason (not a regular file, unreadable, unwritable).
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
  // Bytes dropped at replay (corrupt regions and the tail).
  uint64_t dropped_bytes() const { return replay_.corrupt_bytes + replay_.tail_bytes; }
  const JournalReplay& replay() const { return replay_; }
  const std::string& path() const { return path_; }

 private:
  // Appends `bytes` (and syncs when asked); on failure restores the file to
  // its last good length and throws io_error. Caller holds mutex_.
  void append(const std::string& bytes, bool sync);
  // Truncates the file to size_ after a failed append; false when that failed too.
  bool restore_length();

  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;       // bytes of valid records in the file
  bool damaged_ = false;    // a failed append could not be undone: the tail holds garbage
  JournalReplay replay_;
  mutable std::mutex mutex_;
};

}  // namespace feu::service
