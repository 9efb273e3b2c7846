// The feu daemon's service: a ROUTER socket in front of a durable job queue
// (QueueBackend: this machine's journal, or a fleet's Redis stream; see
// queue_backend.h) and a worker that runs its batches on a Backend.
//
// Threads: the I/O thread (run()) owns the socket, the queue's client side
// (admission, commit, result, cancel, delivery) and every reply; the worker
// thread takes batches from the queue, runs them and hands their replies back
// to it; the retrieve thread answers retrievals (they need no durability, so
// they never enter the queue); a short-lived reload thread loads a new
// artifact version; with CURVE, a ZAP thread checks client keys. Finished jobs
// come back through the queue (take_finished), retrievals through a
// mutex-guarded list, both with an inproc wake-up socket (ZeroMQ sockets never
// cross threads). With the redis queue, the role decides which parts run: a
// front serves clients, a worker runs jobs.
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
#include "service/client.h"
#include "service/curve_keys.h"
#include "service/job_queue.h"
#include "service/protocol.h"
#include "service/queue_backend.h"
#include "service/server_config.h"
#include "service/stats.h"

namespace feu::service {

class Server {
 public:
  // Opens the queue backend (local: the journal and result store under
  // config.journal_dir, re-queueing every unfinished journaled job) and binds
  // the socket (a worker alone binds none: endpoint() is "").
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
  // How a client inside this process (the HTTP front) reaches the socket:
  // the endpoint and, under daemon.curve, the daemon's public key and a
  // client keypair made at bind and allowed beside the allow-list file.
  const ClientOptions& local_client() const { return local_client_; }
  // Jobs recovered from the journal at construction.
  size_t recovered_jobs() const { return queue_->recovered_jobs(); }
  nlohmann::json status_json() const;

 private:
  struct Route {
    std::string identity;    // ROUTER routing id; empty = nobody to answer (recovered job)
    bool delimiter = false;  // the client sent an empty delimiter frame (REQ-style): echo it
  };
  // Every client waiting for an id: the submitter, retries, pollers.
  struct Waiting {
    std::vector<Route> routes;
    void add_route(const Route& route);
  };

  void bind_router();
  // A batch the worker took, its model work done; finish() encodes its images
  // (Backend::start_edit_batch) and returns one reply per job, timings final.
  struct RenderedJobs {
    std::vector<JobPtr> jobs;
    std::function<std::vector<Message>()> finish;
  };
  void worker_loop();
  // The model part of a batch the queue handed out (the worker's render thread).
  RenderedJobs start_batch(const std::vector<TakenJob>& batch);
  // Counts and logs a finished job. Any thread.
  void record_outcome(const JobPtr& job, const Message& reply);
  void retrieve_loop();
  void run_retrieve(const JobPtr& job);
  void deliver_finished();

  void receive_burst();
  void handle_message(const Route& route, std::vector<Frame>& frames, bool too_many_frames);
  void handle_edit(const Route& route, Request& request, std::vector<Frame>& frames);
  void handle_retrieve(const Route& route, Request& request);
  // Sends the queue's answer, counts it and, when the client waits, remembers it.
  void answer(const Route& route, const std::string& id, QueueAnswer answer);
  void commit_staged();
  bool send(const Route& route, const Message& message);

  void maintenance();
  void start_reload(const std::string& version_dir, const std::string& why);
  void zap_loop(std::vector<std::string> allowed_keys);

  ServerConfig config_;
  Backend& backend_;
  std::function<std::string()> resolve_current_;
  std::chrono::steady_clock::time_point started_;
  ServiceStats stats_;
  std::unique_ptr<QueueBackend> queue_;  // after stats_: it counts into them from its constructor on
  // The backend runs one call at a time (an edit batch or a retrieval).
  std::mutex engine_mutex_;

  zmq::context_t context_;
  zmq::socket_t zap_;
  zmq::socket_t router_;
  zmq::socket_t wake_;
  std::string wake_endpoint_;
  std::string endpoint_;
  ClientOptions local_client_;

  // I/O thread only.
  std::unordered_map<std::string, Waiting> waiting_;
  std::vector<std::pair<Route, std::string>> staged_;  // admissions answered at the next commit: route, id
  int64_t last_maintenance_ms_ = 0;
  int64_t last_reload_poll_ms_ = 0;

  JobQueue retrieves_;
  std::mutex retrieved_mutex_;
  std::deque<std::pair<Route, Message>> retrieved_;

  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> reload_requested_{false};
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> drain_deadline_ms_{0};
  std::atomic<bool> worker_done_{false};
  std::atomic<bool> retriever_done_{false};
  std::atomic<bool> zap_stop_{false};
  std::thread worker_;
  std::thread retriever_;
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
