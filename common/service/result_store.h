// Finished jobs' replies, kept on disk for a retention period so that a client
// that lost its connection (or a daemon that restarted) can serve them by id,
// and so that resubmitting an id returns its result instead of running again.
//
// One file per job: <dir>/<sha256(id)>.res holding the packed frames
// [id, digest, u64 finished_ms, reply header JSON, reply payloads...], written
// atomically (fsync + rename): a result is either fully there or absent.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "service/protocol.h"

namespace feu::service {

class ResultStore {
 public:
  // Opens (creating) `dir` and indexes the results already there.
  // `retention_ms`: results older than this are pruned.
  ResultStore(std::string dir,
              int64_t retention_ms);

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
  // The stored reply, or nothing when the id is unknown or pruned.
  std::optional<Message> get(const std::string& id) const;
  bool contains(const std::string& id) const;
  // Digest the id was stored with ("" when unknown).
  std::string digest_of(const std::string& id) const;
  // Deletes results finished before now_ms - retention; returns how many.
  size_t prune(int64_t now_ms);
  size_t size() const;

 private:
  struct Entry {
    std::string file;
    std::string digest;
    int64_t finished_ms = 0;
  };
  std::string file_for(const std::string& id) const;

  std::string dir_;
  int64_t retention_ms_;
  mutable std::mutex mutex_;
  std::map<std::string, Entry> entries_;
};

}  // namespace feu::service
