#include "service/server.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <set>

#include "core/files.h"
#include "core/text.h"
#include "service/curve_keys.h"

namespace feu::service {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr size_t kMaxBurst = 256;                   // requests read before one group commit
// Clients waiting on one id (submitter, Lazy Pirate retries, pollers): the
// oldest are forgotten beyond this; they can still fetch the result by id.
constexpr size_t kMaxRoutesPerJob = 16;
// Complete messages libzmq queues per connection before it stops reading that
// connection (TCP back-pressure): with ZMQ_MAXMSGSIZE this bounds what one
// peer can make the daemon hold (see daemon/PROTOCOL.md, "Resource bounds").
constexpr int kReceiveHighWaterMark = 8;

std::string short_hash(const std::string& text) { return sha256_bytes(text.data(), text.size()).substr(0, 12); }

std::string printable(const std::string& id) { return printable_id(id); }

ServerConfig validated(ServerConfig config) {
  config.validate();
  config.queue.redis.result_ttl_s = config.result_retention_s;  // one retention for both stores
  return config;
}

size_t frames_bytes(const std::vector<Frame>& frames) {
  size_t bytes = 0;
  for (const Frame& frame : frames) bytes += frame.size();
  return bytes;
}

// Resident memory now and at its peak, from /proc/self/status.
json process_memory_json() {
  json memory = json::object();
  std::ifstream in("/proc/self/status");
  for (std::string line; std::getline(in, line);) {
    for (const auto& [key, name] : {std::pair<const char*, const char*>{"VmRSS:", "rss_bytes"}, {"VmHWM:", "peak_rss_bytes"}})
      if (line.rfind(key, 0) == 0) memory[name] = std::stoll(line.substr(std::strlen(key))) * 1024;
  }
  return memory;
}

}  // namespace

void Server::Waiting::add_route(const Route& route) {
  if (route.identity.empty()) return;
  for (const Route& known : routes)
    if (known.identity == route.identity) return;
  if (routes.size() >= kMaxRoutesPerJob) routes.erase(routes.begin());
  routes.push_back(route);
}

Server::Server(ServerConfig config, Backend& backend, std::function<std::string()> resolve_current)
    : config_(validated(std::move(config))),
      backend_(backend),
      resolve_current_(std::move(resolve_current)),
      started_(std::chrono::steady_clock::now()),
      queue_(make_queue_backend(config_, stats_,
                                [this](const JobPtr& job, const Message& reply) { record_outcome(job, reply); },
                                [this] { return backend_.artifact_version(); })),
      context_(1),
      retrieves_(config_.max_queue) {
  local_client_.server.clear();  // "" = nowhere to reach, until bound
  if (config_.serves_clients()) bind_router();
  wake_ = zmq::socket_t(context_, zmq::socket_type::pair);
  wake_endpoint_ = "inproc://feu-wake-" + std::to_string(reinterpret_cast<uintptr_t>(this));
  wake_.bind(wake_endpoint_);

  if (resolve_current_) {
    try {
      last_current_dir_ = resolve_current_();
    } catch (const std::exception& e) {
      spdlog::warn("reload: cannot resolve the current artifact version: {}", e.what());
    }
  }
  reload_status_ = {{"state", "idle"}, {"version_dir", last_current_dir_}};
}

void Server::bind_router() {
  router_ = zmq::socket_t(context_, zmq::socket_type::router);
  if (config_.curve.enabled) {
    const std::string secret = read_secret_key_file(config_.curve.secret_key_file, "daemon.curve.secret_key_file");
    std::vector<std::string> allowed = read_allowed_clients(config_.curve.allowed_clients_file);
    // This process's own clients (the HTTP front) get a key made for this run.
    std::tie(local_client_.curve_public_key, local_client_.curve_secret_key) = curve_keypair();
    local_client_.curve_server_key = curve_public_key(secret);
    allowed.push_back(z85_decode_key(local_client_.curve_public_key, "the in-process client key"));
    // The ZAP handler must exist before clients can connect.
    zap_ = zmq::socket_t(context_, zmq::socket_type::rep);
    zap_.bind("inproc://zeromq.zap.01");
    zap_thread_ = std::thread(&Server::zap_loop, this, std::move(allowed));
    router_.set(zmq::sockopt::curve_server, 1);
    router_.set(zmq::sockopt::curve_secretkey, secret);
    router_.set(zmq::sockopt::zap_domain, "feu");
  }
  // Replies to a vanished client raise EHOSTUNREACH instead of vanishing
  // silently: the daemon counts them and keeps the result for fetch-by-id.
  router_.set(zmq::sockopt::router_mandatory, 1);
  router_.set(zmq::sockopt::maxmsgsize, static_cast<int64_t>(config_.max_frame_bytes()));
  router_.set(zmq::sockopt::rcvhwm, kReceiveHighWaterMark);
  router_.set(zmq::sockopt::linger, 1000);
  try {
    router_.bind(config_.bind);
  } catch (const zmq::error_t& e) {
    throw Error(ErrorCode::kIoError, "cannot bind " + config_.bind + ": " + e.what());
  }
  endpoint_ = router_.get(zmq::sockopt::last_endpoint);
  local_client_.server = endpoint_;
}

Server::~Server() {
  stop_requested_ = true;
  draining_ = true;
  drain_deadline_ms_ = 0;
  queue_->wake();
  retrieves_.wake();
  if (worker_.joinable()) worker_.join();
  if (retriever_.joinable()) retriever_.join();
  zap_stop_ = true;
  if (zap_thread_.joinable()) zap_thread_.join();
  std::thread reload;
  {
    std::lock_guard<std::mutex> lock(reload_mutex_);
    reload_queued_dir_.clear();
    reload.swap(reload_thread_);
  }
  if (reload.joinable()) reload.join();
}

// ---------------------------------------------------------------- I/O thread

void Server::run() {
  if (config_.runs_jobs()) worker_ = std::thread(&Server::worker_loop, this);
  if (config_.serves_clients()) retriever_ = std::thread(&Server::retrieve_loop, this);
  if (config_.queue.is_redis())
    spdlog::info("feu-daemon ({}) {} on queue {} stream {} group {} (artifact version '{}', max_queue {}, max_batch {})",
                 role_name(config_.role), endpoint_.empty() ? "not listening" : "listening on " + endpoint_,
                 config_.queue.redis.url, config_.queue.redis.stream, config_.queue.redis.group,
                 backend_.artifact_version(), config_.max_queue, config_.max_batch);
  else
    spdlog::info("feu-daemon listening on {} (artifact version '{}', max_queue {}, max_batch {}, {} recovered jobs)",
                 endpoint_, backend_.artifact_version(), config_.max_queue, config_.max_batch,
                 queue_->recovered_jobs());
  while (true) {
    try {
      // A worker alone has no client socket: it only waits on its wake-ups.
      zmq::pollitem_t items[] = {{wake_.handle(), 0, ZMQ_POLLIN, 0}, {router_.handle(), 0, ZMQ_POLLIN, 0}};
      zmq::poll(items, config_.serves_clients() ? 2 : 1, queue_->poll_interval());
      if (items[0].revents & ZMQ_POLLIN) {
        zmq::message_t ignored;
        while (wake_.recv(ignored, zmq::recv_flags::dontwait)) {
        }
      }
      if (config_.serves_clients() && (items[1].revents & ZMQ_POLLIN)) receive_burst();
      deliver_finished();
      int64_t now = now_unix_ms();
      if (now - last_maintenance_ms_ >= 100 || (stop_requested_ && !draining_)) {
        last_maintenance_ms_ = now;
        maintenance();
      }
      if (draining_ && (!worker_.joinable() || worker_done_) && (!retriever_.joinable() || retriever_done_)) {
        deliver_finished();
        break;
      }
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;  // a signal: its flag is checked next round
      spdlog::error("socket error: {}", e.what());
    }
  }
  if (worker_.joinable()) worker_.join();
  if (retriever_.joinable()) retriever_.join();
  std::string kept = queue_->close();
  spdlog::info("feu-daemon stopped: {} done, {}", stats_.counter("jobs.done"), kept);
}

void Server::receive_burst() {
  for (size_t n = 0; n < kMaxBurst; ++n) {
    zmq::message_t part;
    if (!router_.recv(part, zmq::recv_flags::dontwait)) break;
    Route route;
    route.identity = part.to_string();
    std::vector<Frame> frames;
    bool too_many = false;
    bool first = true;
    while (part.more()) {
      zmq::message_t next;
      (void)router_.recv(next);  // the rest of a multipart message is already here
      if (first && next.size() == 0 && next.more()) {
        route.delimiter = true;  // REQ-style envelope
      } else if (frames.size() < config_.limits.max_frames) {
        frames.emplace_back(static_cast<const char*>(next.data()), next.size());
      } else {
        too_many = true;  // drained and dropped: the limit bounds memory too
      }
      first = false;
      part = std::move(next);
    }
    handle_message(route, frames, too_many);
  }
  commit_staged();
}

void Server::handle_message(const Route& route, std::vector<Frame>& frames, bool too_many_frames) {
  stats_.count("requests");
  std::string id;
  try {
    if (too_many_frames)
      throw ProtocolError(codes::kPayloadTooLarge,
                          "message has more than " + std::to_string(config_.limits.max_frames) + " frames");
    Request request = parse_request(frames, config_.limits);
    id = request.id;
    switch (request.type) {
      case RequestType::kPing: {
        Message reply;
        reply.header = reply_header(id, status::kDone);
        reply.header["type"] = "ping";
        reply.header["protocol"] = kProtocolVersion;
        reply.header["time_ms"] = now_unix_ms();
        reply.header["artifact_version"] = backend_.artifact_version();
        send(route, reply);
        return;
      }
      case RequestType::kStatus: {
        Message reply;
        reply.header = status_json();
        reply.header.update(reply_header(id, status::kDone));
        reply.header["type"] = "status";
        send(route, reply);
        return;
      }
      case RequestType::kEdit: handle_edit(route, request, frames); return;
      case RequestType::kResult: answer(route, id, queue_->result(id)); return;
      case RequestType::kCancel: answer(route, id, queue_->cancel(id)); return;
      case RequestType::kRetrieve: handle_retrieve(route, request); return;
    }
  } catch (const ProtocolError& e) {
    if (id.empty() && !frames.empty()) id = salvage_id(frames[0], config_.limits);
    stats_.count("rejected." + e.code());
    spdlog::warn("rejected request id='{}': {}: {}", printable(id), e.code(), e.what());
    send(route, error_reply(id, e.code(), e.what()));
  } catch (const Error& e) {
    stats_.count(std::string("rejected.") + e.code_name());
    spdlog::warn("request id='{}' failed: {}: {}", printable(id), e.code_name(), e.what());
    send(route, error_reply(id, e.code_name(), e.what()));
  } catch (const std::exception& e) {
    stats_.count("rejected.internal");
    spdlog::error("request id='{}' failed unexpectedly: {}", printable(id), e.what());
    send(route, error_reply(id, error_code_name(ErrorCode::kInternal), e.what()));
  }
}

void Server::handle_edit(const Route& route, Request& request, std::vector<Frame>& frames) {
  const std::string& id = request.id;
  // Idempotency: a known id is answered from its result or its job, never run again.
  Admission known = queue_->admit_known(id, request.digest);
  if (known.kind == Admission::Kind::kAnswered) return answer(route, id, std::move(known.answer));
  if (known.kind == Admission::Kind::kStaged) {
    staged_.emplace_back(route, id);
    return;
  }
  if (draining_) {
    send(route, error_reply(id, codes::kShuttingDown, "the daemon is shutting down and accepts no new jobs"));
    return;
  }
  // Everything the engine would refuse is refused now, before the request
  // costs a durable write and a place in the queue (throws: a typed error reply).
  backend_.validate(request.edit);
  auto job = std::make_shared<Job>();
  job->id = id;
  job->type = RequestType::kEdit;
  job->edit = std::move(request.edit);
  job->digest = request.digest;
  job->frames = std::move(frames);
  job->accepted_ms = now_unix_ms();
  int64_t deadline = request.deadline_ms.value_or(config_.default_deadline_ms);
  job->deadline_ms = deadline > 0 ? job->accepted_ms + deadline : 0;
  const size_t bytes = frames_bytes(job->frames);
  Admission admission = queue_->admit(std::move(job), bytes);
  if (admission.kind == Admission::Kind::kAnswered) return answer(route, id, std::move(admission.answer));
  staged_.emplace_back(route, id);
}

void Server::commit_staged() {
  std::vector<QueueAnswer> answers = queue_->commit();
  for (size_t i = 0; i < staged_.size() && i < answers.size(); ++i)
    answer(staged_[i].first, staged_[i].second, std::move(answers[i]));
  staged_.clear();
}

void Server::answer(const Route& route, const std::string& id, QueueAnswer answer) {
  if (!answer.stat.empty()) stats_.count(answer.stat);
  if (answer.wait) {
    waiting_[id].add_route(route);
    queue_->watch(id);
  }
  send(route, answer.reply);
}

void Server::handle_retrieve(const Route& route, Request& request) {
  if (draining_) {
    send(route, error_reply(request.id, codes::kShuttingDown, "the daemon is shutting down"));
    return;
  }
  auto job = std::make_shared<Job>();
  job->id = request.id;
  job->type = RequestType::kRetrieve;
  job->text = request.text;
  job->k = request.k;
  job->accepted_ms = now_unix_ms();
  job->route = route.identity;
  job->route_delimiter = route.delimiter;
  // Retrieval is answered directly with `done` (no journal: it is cheap to ask again).
  if (!retrieves_.push(job)) {
    stats_.count("busy");
    send(route, busy_reply(request.id, 100, retrieves_.size()));
  }
}

bool Server::send(const Route& route, const Message& message) {
  if (route.identity.empty()) return false;
  std::vector<Frame> frames = to_frames(message);
  try {
    if (!router_.send(zmq::buffer(route.identity), zmq::send_flags::sndmore | zmq::send_flags::dontwait))
      return false;  // the client's pipe is full
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;  // the client is gone
    throw;
  }
  if (route.delimiter) router_.send(zmq::message_t(), zmq::send_flags::sndmore);
  for (size_t i = 0; i < frames.size(); ++i)
    router_.send(zmq::buffer(frames[i]), i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none);
  return true;
}

void Server::deliver_finished() {
  for (FinishedJob& finished : queue_->take_finished()) {
    std::vector<Route> routes;
    if (auto it = waiting_.find(finished.id); it != waiting_.end()) {
      routes = std::move(it->second.routes);
      waiting_.erase(it);
    }
    if (routes.empty()) stats_.count("replies.no_client");  // recovered after a restart: served by id
    // Marked so that a client can tell it from the answer to the request it
    // sent last on the same connection (a `result` poll may be answered
    // before or after this push).
    finished.reply.header["pushed"] = true;
    size_t delivered = 0;
    for (const Route& route : routes) {
      if (send(route, finished.reply)) ++delivered;
      else stats_.count("replies.unroutable");
    }
    stats_.count("replies.delivered", static_cast<int64_t>(delivered));
    if (!routes.empty() && delivered == 0)
      spdlog::info("job id={}: client gone, result kept for fetch by id", printable(finished.id));
  }
  std::deque<std::pair<Route, Message>> retrieved;
  {
    std::lock_guard<std::mutex> lock(retrieved_mutex_);
    retrieved.swap(retrieved_);
  }
  for (const auto& [route, reply] : retrieved)
    if (!send(route, reply)) stats_.count("replies.unroutable");
}

void Server::maintenance() {
  int64_t now = now_unix_ms();
  if (stop_requested_ && !draining_) {
    drain_deadline_ms_ = now + config_.drain_timeout_ms;
    draining_ = true;
    spdlog::info("shutdown requested: accepting no new jobs, draining {} queued jobs for up to {} ms",
                 queue_->queued(), config_.drain_timeout_ms);
    queue_->wake();
    retrieves_.wake();
  }
  queue_->maintain(now);

  auto resolve = [this]() -> std::string {
    if (!resolve_current_) return "";
    try {
      return resolve_current_();
    } catch (const std::exception& e) {
      spdlog::debug("reload: cannot resolve current: {}", e.what());
      return "";
    }
  };
  if (reload_requested_.exchange(false)) {
    spdlog::info("SIGHUP: reloading the artifact version that <root>/current names; the config file is not "
                 "re-read (restart the daemon for config changes)");
    std::string dir = resolve();
    if (dir.empty()) {
      std::lock_guard<std::mutex> lock(reload_mutex_);
      reload_status_["state"] = "failed";
      reload_status_["error"] = "reload requested, but no artifact version to load (no artifacts root configured "
                                "or <root>/current missing)";
      spdlog::error("reload: {}", reload_status_["error"].get<std::string>());
    } else {
      start_reload(dir, "SIGHUP");
    }
  }
  if (resolve_current_ && config_.reload_poll_ms > 0 && now - last_reload_poll_ms_ >= config_.reload_poll_ms) {
    last_reload_poll_ms_ = now;
    std::string dir = resolve();
    bool changed;
    {
      std::lock_guard<std::mutex> lock(reload_mutex_);
      changed = !dir.empty() && dir != last_current_dir_;
    }
    if (changed) start_reload(dir, "current changed");
  }
}

// ---------------------------------------------------------------- hot reload

void Server::start_reload(const std::string& version_dir, const std::string& why) {
  std::lock_guard<std::mutex> lock(reload_mutex_);
  last_current_dir_ = version_dir;
  if (reload_running_) {
    reload_queued_dir_ = version_dir;  // loaded right after the one in progress
    return;
  }
  if (reload_thread_.joinable()) reload_thread_.join();
  reload_running_ = true;
  spdlog::info("reload: loading {} ({})", version_dir, why);
  reload_status_ = {{"state", "loading"}, {"version_dir", version_dir}, {"reason", why}, {"started", utc_timestamp()}};
  reload_thread_ = std::thread([this, dir = version_dir]() mutable {
    while (true) {
      auto t0 = std::chrono::steady_clock::now();
      std::string error;
      try {
        backend_.reload(dir);
      } catch (const Error& e) {
        error = std::string(e.code_name()) + ": " + e.what();
      } catch (const std::exception& e) {
        error = std::string("internal: ") + e.what();
      }
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      std::lock_guard<std::mutex> lock(reload_mutex_);
      reload_status_["finished"] = utc_timestamp();
      reload_status_["load_ms"] = std::round(ms);
      if (error.empty()) {
        reload_status_["state"] = "ok";
        reload_status_.erase("error");
        reload_status_["artifact_version"] = backend_.artifact_version();
        stats_.count("reloads.ok");
        spdlog::info("reload: now serving '{}' from {} (loaded in {:.0f} ms)", backend_.artifact_version(), dir, ms);
      } else {
        reload_status_["state"] = "failed";
        reload_status_["error"] = error;
        reload_status_["artifact_version"] = backend_.artifact_version();
        stats_.count("reloads.failed");
        spdlog::error("reload: {} failed, still serving '{}': {}", dir, backend_.artifact_version(), error);
      }
      if (reload_queued_dir_.empty()) {
        reload_running_ = false;
        return;
      }
      dir = std::move(reload_queued_dir_);
      reload_queued_dir_.clear();
      reload_status_ = {{"state", "loading"}, {"version_dir", dir}, {"reason", "current changed"},
                        {"started", utc_timestamp()}};
    }
  });
}
// ---------------------------------------------------------------- worker

namespace {

// One thread that runs the tasks handed to it, in order: the models always
// run on the same thread, which keeps its thread-local state (ATen's OpenMP
// team, CUDA streams and graphs) as when the worker itself ran them.
class TaskThread {
 public:
  TaskThread() : thread_([this] { loop(); }) {}
  ~TaskThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    changed_.notify_one();
    thread_.join();
  }
  template <class Task>
  auto run(Task task) -> std::future<decltype(task())> {
    auto packaged = std::make_shared<std::packaged_task<decltype(task())()>>(std::move(task));
    std::future<decltype(task())> result = packaged->get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      tasks_.push_back([packaged] { (*packaged)(); });
    }
    changed_.notify_one();
    return result;
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      changed_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stop_, nothing left
      std::function<void()> task = std::move(tasks_.front());
      tasks_.pop_front();
      lock.unlock();
      task();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> tasks_;
  bool stop_ = false;
  std::thread thread_;  // last: starts after the members it reads
};

}  // namespace

void Server::worker_loop() {
  zmq::socket_t wake(context_, zmq::socket_type::pair);
  wake.connect(wake_endpoint_);
  // A pipeline of two batches: while the render thread runs the models on one
  // batch, this thread encodes the images of the batch before (on every core)
  // and stores its replies. With a GPU rendering a batch in milliseconds, the
  // encoding would otherwise take as long again. This thread alone talks to
  // the queue, as QueueBackend asks.
  TaskThread render;
  std::optional<RenderedJobs> rendered;  // rendered, not yet encoded
  auto finish_rendered = [&] {
    std::vector<Message> replies = rendered->finish();
    queue_->finish(rendered->jobs, std::move(replies));
    rendered.reset();
    (void)wake.send(zmq::str_buffer("w"), zmq::send_flags::dontwait);
  };
  while (true) {
    const bool stopping = draining_ && (queue_->drained() || now_unix_ms() > drain_deadline_ms_);
    if (stopping && !rendered) break;
    // With a batch of its own to finish, the worker does not wait for new jobs.
    std::vector<TakenJob> batch;
    if (!stopping) batch = queue_->take(config_.max_batch, std::chrono::milliseconds(config_.max_wait_ms), !rendered);
    if (batch.empty()) {
      if (rendered) finish_rendered();
      continue;
    }
    std::future<RenderedJobs> next = render.run([this, batch = std::move(batch)] { return start_batch(batch); });
    if (rendered) finish_rendered();  // while `next` renders
    rendered = next.get();
  }
  queue_->worker_stopped();
  worker_done_ = true;
  (void)wake.send(zmq::str_buffer("w"), zmq::send_flags::dontwait);
}

Server::RenderedJobs Server::start_batch(const std::vector<TakenJob>& batch) {
  const int64_t start = now_unix_ms();
  auto replies = std::make_shared<std::vector<Message>>(batch.size());
  RenderedJobs out;
  std::vector<JobPtr> live;
  std::vector<size_t> live_at;
  for (size_t i = 0; i < batch.size(); ++i) {
    const Job& job = *batch[i].job;
    out.jobs.push_back(batch[i].job);
    if (batch[i].reply || (job.deadline_ms > 0 && job.deadline_ms < start)) {
      (*replies)[i] = batch[i].reply ? *batch[i].reply : deadline_reply(job);
      finalize_timings(job, (*replies)[i], {{"queue_ms", start - job.accepted_ms}});
    } else {
      live.push_back(batch[i].job);
      live_at.push_back(i);
    }
  }
  if (live.empty()) {
    out.finish = [replies] { return std::move(*replies); };
    return out;
  }

  std::vector<edit::EditRequest> requests;
  for (const JobPtr& job : live) requests.push_back(job->edit);
  const auto t0 = std::chrono::steady_clock::now();
  Backend::FinishBatch finish;
  auto fail_all = [count = requests.size()](EditOutcome failure) -> Backend::FinishBatch {
    return [count, failure] { return std::vector<EditOutcome>(count, failure); };
  };
  try {
    std::lock_guard<std::mutex> engine(engine_mutex_);
    finish = backend_.start_edit_batch(requests);
  } catch (const Error& e) {
    finish = fail_all(EditOutcome::failure(e));
  } catch (const std::exception& e) {
    finish = fail_all(EditOutcome::failure(error_code_name(ErrorCode::kInternal), e.what()));
  }
  out.finish = [this, replies, live = std::move(live), live_at = std::move(live_at), finish = std::move(finish), start,
                t0] {
    std::vector<EditOutcome> outcomes;
    try {
      outcomes = finish();
      if (outcomes.size() != live.size())
        throw Error(ErrorCode::kInternal, "backend returned " + std::to_string(outcomes.size()) + " outcomes for " +
                                              std::to_string(live.size()) + " requests");
    } catch (const Error& e) {
      outcomes.assign(live.size(), EditOutcome::failure(e));
    } catch (const std::exception& e) {
      outcomes.assign(live.size(), EditOutcome::failure(error_code_name(ErrorCode::kInternal), e.what()));
    }
    // Models and encoding: the batch's own time, whatever ran beside it.
    const double run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    stats_.count("batches");
    stats_.observe("run", run_ms);
    stats_.observe("batch_size", static_cast<double>(live.size()));
    for (size_t k = 0; k < live.size(); ++k) {
      const JobPtr& job = live[k];
      json timings = {{"queue_ms", start - job->accepted_ms}, {"run_ms", std::round(run_ms * 1000) / 1000},
                      {"batch_size", live.size()}};
      Message& reply = (*replies)[live_at[k]];
      reply = outcomes[k].ok() ? edit_done_reply(job->id, *outcomes[k].result, timings)
                               : error_reply(job->id, outcomes[k].error_code, outcomes[k].error_message);
      finalize_timings(*job, reply, timings);
    }
    return std::move(*replies);
  };
  return out;
}

void Server::retrieve_loop() {
  zmq::socket_t wake(context_, zmq::socket_type::pair);
  wake.connect(wake_endpoint_);
  while (true) {
    if (draining_ && (retrieves_.size() == 0 || now_unix_ms() > drain_deadline_ms_)) break;
    std::vector<JobPtr> jobs = retrieves_.pop_batch(1, std::chrono::milliseconds(0), std::chrono::milliseconds(100));
    if (jobs.empty()) continue;
    run_retrieve(jobs.front());
    (void)wake.send(zmq::str_buffer("w"), zmq::send_flags::dontwait);
  }
  retriever_done_ = true;
  (void)wake.send(zmq::str_buffer("w"), zmq::send_flags::dontwait);
}

void Server::run_retrieve(const JobPtr& job) {
  Message reply;
  auto t0 = std::chrono::steady_clock::now();
  try {
    reply.header = reply_header(job->id, status::kDone);
    reply.header["type"] = "retrieve";
    std::lock_guard<std::mutex> engine(engine_mutex_);
    reply.header["result"] = backend_.retrieve(job->text, job->k);
  } catch (const Error& e) {
    reply = error_reply(job->id, e.code_name(), e.what());
  } catch (const std::exception& e) {
    reply = error_reply(job->id, error_code_name(ErrorCode::kInternal), e.what());
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  finalize_timings(*job, reply, {{"run_ms", std::round(ms * 1000) / 1000}});
  record_outcome(job, reply);
  std::lock_guard<std::mutex> lock(retrieved_mutex_);
  retrieved_.emplace_back(Route{job->route, job->route_delimiter}, std::move(reply));
}

void Server::record_outcome(const JobPtr& job, const Message& reply) {
  const json all_timings = reply.header["timings_ms"];
  int64_t total_ms = all_timings.value("total_ms", int64_t(0));
  std::string outcome = reply.header.value("status", std::string()) == status::kDone
                            ? "done"
                            : reply.header["error"].value("code", std::string("internal"));
  if (job->type == RequestType::kEdit) {
    stats_.count(outcome == "done" ? "jobs.done" : "jobs.error." + outcome);
    if (all_timings.contains("queue_ms")) stats_.observe("queue", all_timings["queue_ms"].get<double>());
    stats_.observe("total", static_cast<double>(total_ms));
    const json& diagnostics = reply.header.contains("diagnostics") ? reply.header["diagnostics"] : json();
    if (diagnostics.is_object() && diagnostics.contains("timings_ms") && diagnostics["timings_ms"].is_object())
      for (const auto& [stage, ms] : diagnostics["timings_ms"].items())
        if (ms.is_number()) stats_.observe("engine." + stage, ms.get<double>());
    spdlog::info("job id={} type=edit instr={} method={} latent={} alphas={} batch={} queue_ms={} run_ms={} total_ms={} "
                 "replayed={} outcome={}",
                 printable(job->id), short_hash(job->edit.instruction), edit::Method::kGlobal == job->edit.method ? "global" : "feu",
                 edit::latent_kind_name(job->edit.latent_kind),
                 job->edit.alphas.empty() ? std::string("default") : std::to_string(job->edit.alphas.size()),
                 all_timings.value("batch_size", 0), all_timings.value("queue_ms", 0.0),
                 all_timings.value("run_ms", 0.0), all_timings.value("total_ms", 0.0), job->replayed, outcome);
  } else {
    stats_.count(outcome == "done" ? "retrieves.done" : "retrieves.error." + outcome);
    stats_.observe("retrieve", all_timings.value("run_ms", 0.0));
    spdlog::info("job id={} type=retrieve text={} k={} run_ms={} outcome={}", printable(job->id),
                 short_hash(job->text), job->k, all_timings.value("run_ms", 0.0), outcome);
  }
}

// ---------------------------------------------------------------- status, ZAP

json Server::status_json() const {
  // The reload state first: a reload that it shows finished already swapped
  // the version and counted its outcome (both happen before its state is set),
  // so one status never shows "ok" beside the old version or the old count.
  json reload;
  {
    std::lock_guard<std::mutex> lock(reload_mutex_);
    reload = reload_status_;
  }
  json status = stats_.to_json();
  double uptime = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  status["server"] = {{"version", FEU_VERSION},
                      {"protocol", kProtocolVersion},
                      {"endpoint", endpoint_},
                      {"uptime_s", std::round(uptime * 10) / 10},
                      {"draining", draining_.load()},
                      {"curve", config_.curve.enabled}};
  status["artifact_version"] = backend_.artifact_version();
  status["engine"] = backend_.describe();
  status["memory"] = process_memory_json();
  status["reload"] = std::move(reload);
  status["queue"] = {{"capacity", config_.max_queue},
                     {"capacity_bytes", config_.max_queue_bytes},
                     {"max_batch", config_.max_batch},
                     {"max_wait_ms", config_.max_wait_ms},
                     {"retrieves", retrieves_.size()}};
  queue_->describe(status);
  return status;
}

void Server::zap_loop(std::vector<std::string> allowed_keys) {
  std::set<std::string> allowed(allowed_keys.begin(), allowed_keys.end());
  while (!zap_stop_) {
    zmq::pollitem_t item{zap_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
      if (!(item.revents & ZMQ_POLLIN)) continue;
      std::vector<zmq::message_t> request;
      (void)zmq::recv_multipart(zap_, std::back_inserter(request));
      // ZAP 1.0 (RFC 27): version, request id, domain, address, identity,
      // mechanism, credentials (the client's 32-byte public key for CURVE).
      bool ok = request.size() >= 7 && request[5].to_string() == "CURVE" && request[6].size() == 32 &&
                allowed.count(request[6].to_string()) > 0;
      std::string address = request.size() > 3 ? request[3].to_string() : "";
      std::string user = ok ? z85_encode(static_cast<const uint8_t*>(request[6].data()), 32) : "";
      if (!ok) spdlog::warn("CURVE: refused a client from {} (key not in the allow-list)", address);
      std::string request_id = request.size() > 1 ? request[1].to_string() : "";
      std::vector<zmq::const_buffer> reply = {zmq::str_buffer("1.0"), zmq::buffer(request_id),
                                              ok ? zmq::str_buffer("200") : zmq::str_buffer("400"),
                                              ok ? zmq::str_buffer("OK") : zmq::str_buffer("key not allowed"),
                                              zmq::buffer(user), zmq::str_buffer("")};
      (void)zmq::send_multipart(zap_, reply);
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
    }
  }
}

}  // namespace feu::service
