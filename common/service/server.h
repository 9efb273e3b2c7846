// The feu daemon's service: a ROUTER socket in front of a durable job queue
// and one worker that runs batches on a Backend.
//
// Threads: the I/O thread (run()) owns the socket, the journal appends of
// accepted jobs and every reply; the worker thread pops batches, runs them and
// stores their results; a short-lived reload thread loads a new artifact
// version; with CURVE, a ZAP thread checks client keys. Jobs cross threads
// through JobQueue, completions through a mutex-guarded list plus an inproc
// wake-up socket (ZeroMQ sockets never cross threads).
#pragma once

#include <zmq.hpp>
#include <zmq_addon.hpp>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "service/backend.h"
#include "service/curve_keys.h"
#include "service/job_queue.h"
#include "service/journal.h"
#include "service/protocol.h"
#include "service/result_store.h"
#include "service/server_config.h"
#include "service/state_lock.h"
#include "service/stats.h"

namespace feu::service {

class Server {
 public:
  // Binds the socket, opens the journal and result store under
  // config.journal_dir and re-queues every unfinished journaled job.
  // `resolve_current`: returns the version dir <root>/current points to (for
  // hot reload); empty function = reload only what SIGHUP names (nothing).
  // Errors: config_error, io_error (address in use, journal unwritable).
  Server(ServerConfig config,
         Backend& backend,
         std::function<std::string()> resolve_current = nullptr);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until request_stop(), then drains (see ServerConfig::drain_timeout_ms)
  // and returns. Call once.
  void run();
  // Both only set a flag: safe to call from a signal handler or any thread.
  void request_stop() { stop_requested_.store(true); }
  void request_reload() { reload_requested_.store(true); }

  // The bound endpoint, with the real port when the config asked for "*".
  const std::string& endpoint() const { return endpoint_; }
  // Jobs recovered from the journal at construction.
  size_t recovered_jobs() const { return recovered_jobs_; }
  nlohmann::json status_json() const;

 private:
  struct Route {
    std::string identity;    // ROUTER routing id; empty = nobody to answer (recovered job)
    bool delimiter = false;  // the client sent an empty delimiter frame (REQ-style): echo it
  };
  struct Pending {
    std::vector<Route> routes;  // every client waiting for this id: the submitter, retries, pollers
    JobPtr job;
    size_t bytes = 0;           // the request's frames (admission by bytes)
    void add_route(const Route& route);
  };
  struct Completion {
    JobPtr job;
    Message reply;
  };
  // A finished job whose result could not be stored yet (disk full, no file
  // descriptors): it stays unfinished, unannounced and journaled until a
  // retry stores it.
  struct Unstored {
    JobPtr job;
    Message reply;
    int attempts = 0;
    int64_t next_try_ms = 0;
  };

  void worker_loop();
  void run_batch(const std::vector<JobPtr>& batch, zmq::socket_t& wake);
  void run_retrieve(const JobPtr& job);
  // Stores a finished edit's reply, journals it done, logs it and hands it to
  // the I/O thread for delivery. Any thread.
  void complete(const JobPtr& job, Message reply, const nlohmann::json& timings);
  // Adds total_ms to `timings` and puts them in the reply header.
  void finalize_timings(const JobPtr& job, Message& reply, const nlohmann::json& timings);
  // complete() after the result is stored: journal, stats, log, delivery.
  void finish(const JobPtr& job, Message reply);
  // Keeps a job whose result could not be stored for a later retry. Any thread.
  void defer_store(const JobPtr& job, Message reply, const std::string& why);
  // Retries the stores that are due; finishes those that succeed. Worker thread.
  void retry_unstored();
  size_t unstored_count() const;
  void deliver_completions();

  void receive_burst();
  void handle_message(const Route& route, std::vector<Frame>& frames, bool too_many_frames);
  void handle_edit(const Route& route, Request& request, std::vector<Frame>& frames);
  void handle_result(const Route& route, const Request& request);
  void handle_cancel(const Route& route, const Request& request);
  void handle_retrieve(const Route& route, Request& request);
  void commit_accepted();
  bool send(const Route& route, const Message& message);
  int64_t retry_after_ms() const;

  void maintenance();
  void start_reload(const std::string& version_dir, const std::string& why);
  void zap_loop(std::vector<std::string> allowed_keys);

  ServerConfig config_;
  StateDirLock state_lock_;  // before the journal: one daemon per state directory
  Backend& backend_;
  std::function<std::string()> resolve_current_;
  std::chrono::steady_clock::time_point started_;

  zmq::context_t context_;
  zmq::socket_t zap_;
  zmq::socket_t router_;
  zmq::socket_t wake_;
  std::string wake_endpoint_;
  std::string endpoint_;

  std::unique_ptr<Journal> journal_;
  std::unique_ptr<ResultStore> results_;
  JobQueue queue_;
  ServiceStats stats_;

  // I/O thread only.
  std::unordered_map<std::string, Pending> pending_;
  std::vector<JournalEntry> to_journal_;
  std::vector<std::pair<Route, Message>> after_commit_;
  size_t pending_bytes_ = 0;  // sum of Pending::bytes
  size_t recovered_jobs_ = 0;
  uint64_t journal_dropped_bytes_ = 0;
  int64_t last_maintenance_ms_ = 0;
  int64_t last_reload_poll_ms_ = 0;
  int64_t last_prune_ms_ = 0;

  std::mutex completions_mutex_;
  std::deque<Completion> completions_;
  mutable std::mutex unstored_mutex_;
  std::vector<Unstored> unstored_;

  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> reload_requested_{false};
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> drain_deadline_ms_{0};
  std::atomic<bool> worker_done_{false};
  std::atomic<bool> zap_stop_{false};
  std::thread worker_;
  std::thread zap_thread_;

  // Hot reload state (guarded by reload_mutex_).
  mutable std::mutex reload_mutex_;
  std::thread reload_thread_;
  bool reload_running_ = false;
  std::string reload_queued_dir_;
  std::string last_current_dir_;
  nlohmann::json reload_status_;
};

}  // namespace feu::service
