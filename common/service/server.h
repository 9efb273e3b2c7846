// The feu daemon's service: a ROUTER socket in front of a durable job queue
// and one worker that runs batches on a Backend.
//
// Threads: the I/O thread (run()) owns the socket, the journal appends of
// accepted jobs and every reply; the worker thread pops batches, runs them and
// stores their results; a short-lived reload thread loads a new artifact
// version; with CURVE, a ZAP thread checks client keys. Jobs cross threads
// through JobQueue, completions through a mutex-guarded list plus an inproc
// wake-up socket (ZeroMQ sockets never cross threads).
//
// With daemon.queue.backend: redis (a fleet; see redis_queue.h) the journal
// and the result store are Redis's: a front's I/O thread submits accepted
// edits to the stream (one pipeline per burst) and polls the results its
// clients wait for; a worker's fleet thread reads batches with its consumer
// group, runs them on the Backend and stores their replies. Retrievals stay
// local (the local worker thread), as they need no durability. Each thread has
// its own Redis connection.
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
#include "service/redis_queue.h"
#include "service/result_store.h"
#include "service/server_config.h"
#include "service/state_lock.h"
#include "service/stats.h"

namespace feu::service {

// The id a log line or message may show: ids are client-chosen, so control
// characters and invalid UTF-8 are escaped (one line, no forged lines).
std::string printable_id(const std::string& id);

class Server {
 public:
  // Binds the socket, opens the journal and result store under
  // config.journal_dir and re-queues every unfinished journaled job. With the
  // redis queue: no journal; a worker alone binds no socket (endpoint() "").
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

  // The local queue's journal and result store, and recovery from them.
  void open_local_store();
  void bind_router();
  void worker_loop();
  void run_batch(const std::vector<JobPtr>& batch, zmq::socket_t& wake);
  // Runs edits as one batch on the backend: one reply each, timings final.
  std::vector<Message> run_edits(const std::vector<JobPtr>& live, int64_t start_ms);
  Message deadline_reply(const JobPtr& job, int64_t now_ms) const;
  // Counts and logs a finished job. Any thread.
  void record_outcome(const JobPtr& job, const Message& reply);
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

  // The redis queue (server_fleet.cpp). I/O thread: submit, results, cancel.
  void fleet_edit(const Route& route, Request& request, std::vector<Frame>& frames);
  void fleet_commit();
  void fleet_result(const Route& route, const Request& request);
  void fleet_cancel(const Route& route, const Request& request);
  void fleet_deliver();
  // A Redis call failed: refuse for a moment instead of blocking every request on it.
  void fleet_unreachable(const Error& error);
  bool fleet_reachable_now() const;
  Message fleet_unavailable_reply(const std::string& id) const;
  nlohmann::json fleet_status_json() const;
  // Fleet thread: read, claim, start, run and finish batches.
  void fleet_worker_loop();
  void fleet_run(RedisQueue& queue, const std::vector<StreamJob>& entries, std::vector<StreamJob>* unstored_entries,
                 std::vector<std::string>* unstored_replies);

  void maintenance();
  void start_reload(const std::string& version_dir, const std::string& why);
  void zap_loop(std::vector<std::string> allowed_keys);

  ServerConfig config_;
  std::unique_ptr<StateDirLock> state_lock_;  // before the journal: one daemon per state directory
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
  std::atomic<bool> fleet_worker_done_{false};
  std::thread fleet_worker_;

  // The redis queue, I/O thread's side (null with the local queue).
  struct FleetSubmission {
    Route route;
    RedisQueue::Submission job;
  };
  std::unique_ptr<RedisQueue> fleet_;
  std::vector<FleetSubmission> to_submit_;
  std::unordered_map<std::string, Pending> fleet_waiting_;  // id -> clients awaiting its result (no job)
  int64_t fleet_retry_at_ms_ = 0;  // Redis failed: until then every request is answered busy at once
  int64_t last_fleet_poll_ms_ = 0;
  std::string fleet_error_;
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
