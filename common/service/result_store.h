// Finished jobs' replies, kept on disk for a retention period so that a client
// that lost its connection (or a daemon that restarted) can serve them by id,
// and so that resubmitting an id returns its result instead of running again.
//
// One file per job: <dir>/<sha256(id)>.res holding "FER2", a CRC-32 of the
// rest, then the packed frames [id, digest, u64 finished_ms, reply header
// JSON, reply payloads...], written atomically (fsync + rename): a result is
// either fully there or absent, and a result damaged on disk is detected when
// read (moved aside as <file>.corrupt, reported as corrupt_file), never served.
// Files of the first format (no "FER2" header, no checksum) are still served.
//
// Bounds: results older than the retention are absent on read at once (and
// their files deleted by prune()); beyond `max_results` results or
// `max_bytes` bytes of files, the oldest are evicted when a new one is stored.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "service/protocol.h"

namespace feu::service {

class ResultStore {
 public:
  // Opens (creating) `dir` and indexes the results already there.
  ResultStore(std::string dir,
              int64_t retention_ms,   // results older than this are gone
              size_t max_results,     // the oldest are evicted beyond this many
              uint64_t max_bytes);    // ... or beyond this many bytes of files

  // Stores a job's final reply (done or error). Thread-safe. Errors: io_error.
  void put(const std::string& id, const std::string& digest, const Message& reply);
  struct Item {
    std::string id;
    std::string digest;
    const Message* reply;
  };
  // Stores a batch's replies: each file fsynced and renamed into place, then
  // one directory fsync for all (instead of one per result). Errors: io_error
  // (no result of the batch is indexed then).
  void put_many(const std::vector<Item>& items);
  // The stored reply, or nothing when the id is unknown, expired or evicted.
  // Errors: corrupt_file when the file fails its checksum (it is moved aside
  // and forgotten).
  std::optional<Message> get(const std::string& id);
  bool contains(const std::string& id) const;
  // Digest the id was stored with ("" when unknown).
  std::string digest_of(const std::string& id) const;
  // Deletes results finished before now_ms - retention; returns how many.
  size_t prune(int64_t now_ms);
  size_t size() const;
  uint64_t bytes() const;
  // Results evicted by the count and byte bounds since start.
  uint64_t evicted() const;

 private:
  struct Entry {
    std::string file;
    std::string digest;
    int64_t finished_ms = 0;
    uint64_t bytes = 0;
  };
  std::string file_for(const std::string& id) const;
  bool expired(const Entry& entry, int64_t now_ms) const;
  // Indexes a stored file. Caller holds mutex_.
  void index(const std::string& id, Entry entry);
  // Forgets an id. Caller holds mutex_.
  void forget(std::map<std::string, Entry>::iterator it);

  std::string dir_;
  int64_t retention_ms_;
  size_t max_results_;
  uint64_t max_bytes_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
  std::set<std::pair<int64_t, std::string>> by_age_;  // (finished_ms, id), oldest first
  uint64_t total_bytes_ = 0;
  uint64_t evicted_ = 0;
};

}  // namespace feu::service
