#include "service/redis_queue.h"

#include <hiredis/hiredis.h>

#include <sys/time.h>

#include <cstdlib>

#include "core/error.h"

namespace feu::service {
namespace {

// KEYS: job hash, stream. ARGV: digest, payload, max pending, id.
constexpr const char* kSubmitScript = R"lua(
local d = redis.call('HGET', KEYS[1], 'd')
if d then
  if d ~= ARGV[1] then return {'conflict', ''} end
  return {'known', redis.call('HGET', KEYS[1], 's') or ''}
end
local n = redis.call('XLEN', KEYS[2])
if n >= tonumber(ARGV[3]) then return {'busy', tostring(n)} end
local x = redis.call('XADD', KEYS[2], '*', 'id', ARGV[4], 'job', ARGV[2])
redis.call('HSET', KEYS[1], 'd', ARGV[1], 's', 'queued', 'x', x, 'n', 0)
return {'accepted', tostring(n + 1)}
)lua";

// KEYS: job hash, result, stream. ARGV: cancelled reply, ttl s.
constexpr const char* kCancelScript = R"lua(
local s = redis.call('HGET', KEYS[1], 's')
if not s then return 'unknown' end
if s ~= 'queued' then return s end
redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2])
redis.call('HSET', KEYS[1], 's', 'cancelled')
redis.call('EXPIRE', KEYS[1], ARGV[2])
local x = redis.call('HGET', KEYS[1], 'x')
if x then redis.call('XDEL', KEYS[3], x) end
return 'cancelled'
)lua";

// KEYS: job hash, result, stream, dead-letter stream.
// ARGV: group, entry id, max deliveries, dead reply, ttl s, job id.
constexpr const char* kStartScript = R"lua(
local s = redis.call('HGET', KEYS[1], 's')
if s ~= 'queued' and s ~= 'running' then
  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[3], ARGV[2])
  return 'skip'
end
local n = tonumber(redis.call('HGET', KEYS[1], 'n') or '0')
if n >= tonumber(ARGV[3]) then
  redis.call('XADD', KEYS[4], '*', 'id', ARGV[6], 'runs', tostring(n))
  redis.call('SET', KEYS[2], ARGV[4], 'NX', 'EX', ARGV[5])
  redis.call('HSET', KEYS[1], 's', 'done')
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  redis.call('XACK', KEYS[3], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[3], ARGV[2])
  return 'dead'
end
redis.call('HSET', KEYS[1], 's', 'running', 'n', n + 1)
return 'run'
)lua";

// KEYS: job hash, result, stream. ARGV: reply, ttl s, group, entry id.
constexpr const char* kFinishScript = R"lua(
redis.call('SET', KEYS[2], ARGV[1], 'NX', 'EX', ARGV[2])
redis.call('HSET', KEYS[1], 's', 'done')
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('XACK', KEYS[3], ARGV[3], ARGV[4])
redis.call('XDEL', KEYS[3], ARGV[4])
return 1
)lua";

// Publishes a heartbeat, then removes the dead workers that own no pending
// job (another worker claimed them) from the group, the set and their hashes.
// KEYS: workers, stream, worker hash. ARGV: group, timeout ms, worker hash
// prefix, consumer, version, pid, host.
constexpr const char* kHeartbeatScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[4])
redis.call('HSET', KEYS[3], 'consumer', ARGV[4], 'version', ARGV[5], 'pid', ARGV[6], 'host', ARGV[7],
           'last_seen_ms', now)
redis.call('PEXPIRE', KEYS[3], ARGV[2])
local oldest_live = now - tonumber(ARGV[2])
for _, c in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. oldest_live)) do
  local ok, pending = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[1], '-', '+', 1, c)
  if not ok or #pending == 0 then
    if ok then redis.call('XGROUP', 'DELCONSUMER', KEYS[2], ARGV[1], c) end
    redis.call('ZREM', KEYS[1], c)
    redis.call('DEL', ARGV[3] .. c)
  end
end
return now
)lua";

// KEYS: workers, stream, worker hash. ARGV: group, consumer.
constexpr const char* kRetireScript = R"lua(
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('DEL', KEYS[3])
local ok, pending = pcall(redis.call, 'XPENDING', KEYS[2], ARGV[1], '-', '+', 1, ARGV[2])
if ok and #pending == 0 then redis.call('XGROUP', 'DELCONSUMER', KEYS[2], ARGV[1], ARGV[2]) end
return 1
)lua";

// KEYS: workers. ARGV: timeout ms, worker hash prefix.
// Returns {now, {hash fields...}, ...} for the live workers.
constexpr const char* kWorkersScript = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {tostring(now)}
for _, c in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')) do
  local fields = redis.call('HGETALL', ARGV[2] .. c)
  if #fields > 0 then table.insert(out, fields) end
end
return out
)lua";

std::string reply_string(const redisReply* reply) {
  if (reply && (reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS ||
                reply->type == REDIS_REPLY_ERROR))
    return std::string(reply->str, reply->len);
  if (reply && reply->type == REDIS_REPLY_INTEGER) return std::to_string(reply->integer);
  return "";
}

timeval timeval_of(int ms) { return timeval{ms / 1000, static_cast<suseconds_t>((ms % 1000) * 1000)}; }

}  // namespace

RedisAddress RedisAddress::parse(const std::string& url) {
  auto bad = [&](const std::string& why) -> Error {
    return Error(ErrorCode::kConfigError, "daemon.queue.url '" + url + "' " + why +
                                              " (expected redis://host:port/db, e.g. redis://127.0.0.1:6379/0)");
  };
  const std::string scheme = "redis://";
  if (url.rfind(scheme, 0) != 0) throw bad("does not start with redis://");
  std::string rest = url.substr(scheme.size());
  RedisAddress address;
  if (size_t slash = rest.find('/'); slash != std::string::npos) {
    std::string db = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
    if (!db.empty()) {
      if (db.find_first_not_of("0123456789") != std::string::npos || db.size() > 4) throw bad("has a bad db number");
      address.db = std::stoi(db);
    }
  }
  if (rest.find('@') != std::string::npos) throw bad("holds credentials, which this build does not support");
  size_t colon = rest.rfind(':');
  address.host = colon == std::string::npos ? rest : rest.substr(0, colon);
  if (colon != std::string::npos) {
    std::string port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != std::string::npos)
      throw bad("has a bad port");
    address.port = std::stoi(port);
    if (address.port <= 0 || address.port > 65535) throw bad("has a port out of range");
  }
  if (address.host.empty()) throw bad("names no host");
  return address;
}

void RedisQueue::ReplyDeleter::operator()(redisReply* reply) const {
  if (reply) freeReplyObject(reply);
}

RedisQueue::RedisQueue(RedisQueueConfig config)
    : config_(std::move(config)), address_(RedisAddress::parse(config_.url)) {}

RedisQueue::~RedisQueue() { disconnect(); }

void RedisQueue::disconnect() {
  if (context_) redisFree(context_);
  context_ = nullptr;
}

void RedisQueue::fail(const std::string& what) {
  std::string why = context_ && context_->err ? std::string(context_->errstr) : std::string("no reply");
  disconnect();
  throw Error(ErrorCode::kIoError, "redis " + address_.host + ":" + std::to_string(address_.port) + ": " + what +
                                       ": " + why);
}

void RedisQueue::connect() {
  if (context_) return;
  context_ = redisConnectWithTimeout(address_.host.c_str(), address_.port, timeval_of(config_.connect_timeout_ms));
  if (!context_) throw Error(ErrorCode::kIoError, "redis: cannot allocate a connection");
  if (context_->err) fail("cannot connect");
  redisSetTimeout(context_, timeval_of(config_.connect_timeout_ms));
  if (address_.db != 0) command({"SELECT", std::to_string(address_.db)});
}

std::vector<RedisQueue::Reply> RedisQueue::pipeline(const std::vector<std::vector<std::string>>& commands) {
  connect();
  for (const auto& argv : commands) {
    std::vector<const char*> args;
    std::vector<size_t> lengths;
    for (const std::string& arg : argv) {
      args.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    if (redisAppendCommandArgv(context_, static_cast<int>(args.size()), args.data(), lengths.data()) != REDIS_OK)
      fail("cannot queue " + argv[0]);
  }
  std::vector<Reply> replies;
  std::string error;
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) fail(commands[i][0] + " failed");
    Reply reply(static_cast<redisReply*>(raw));
    if (reply->type == REDIS_REPLY_ERROR && error.empty()) error = commands[i][0] + ": " + reply_string(reply.get());
    replies.push_back(std::move(reply));
  }
  // Replies of the whole pipeline were read first: the connection stays in step.
  if (!error.empty()) throw Error(ErrorCode::kIoError, "redis refused " + error);
  return replies;
}

RedisQueue::Reply RedisQueue::command(const std::vector<std::string>& argv) {
  return std::move(pipeline({argv}).front());
}

std::vector<RedisQueue::SubmitResult> RedisQueue::submit(const std::vector<Submission>& jobs, size_t max_pending) {
  std::vector<std::vector<std::string>> commands;
  for (const Submission& job : jobs)
    commands.push_back({"EVAL", kSubmitScript, "2", job_key(job.id), config_.stream, job.digest, job.payload,
                        std::to_string(max_pending), job.id});
  std::vector<Reply> replies = pipeline(commands);
  std::vector<SubmitResult> results;
  for (const Reply& reply : replies) {
    SubmitResult result;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
      throw Error(ErrorCode::kInternal, "redis: unexpected reply to the submit script");
    std::string state = reply_string(reply->element[0]);
    std::string detail = reply_string(reply->element[1]);
    if (state == "accepted") result.state = SubmitState::kAccepted;
    else if (state == "known") result.state = SubmitState::kKnown;
    else if (state == "conflict") result.state = SubmitState::kConflict;
    else result.state = SubmitState::kBusy;
    if (result.state == SubmitState::kKnown) result.job_state = detail;
    else if (!detail.empty()) result.depth = std::stoull(detail);
    results.push_back(result);
  }
  return results;
}

std::string RedisQueue::state_of(const std::string& id) {
  return reply_string(command({"HGET", job_key(id), "s"}).get());
}

std::vector<std::optional<std::string>> RedisQueue::results(const std::vector<std::string>& ids) {
  std::vector<std::optional<std::string>> out;
  if (ids.empty()) return out;
  std::vector<std::string> argv = {"MGET"};
  for (const std::string& id : ids) argv.push_back(result_key(id));
  Reply reply = command(argv);
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements != ids.size())
    throw Error(ErrorCode::kInternal, "redis: unexpected reply to MGET");
  for (size_t i = 0; i < reply->elements; ++i) {
    const redisReply* item = reply->element[i];
    if (item->type == REDIS_REPLY_STRING) out.emplace_back(std::string(item->str, item->len));
    else out.emplace_back(std::nullopt);
  }
  return out;
}

RedisQueue::CancelState RedisQueue::cancel(const std::string& id, const std::string& cancelled_reply) {
  std::string state = reply_string(command({"EVAL", kCancelScript, "3", job_key(id), result_key(id), config_.stream,
                                            cancelled_reply, std::to_string(config_.result_ttl_s)})
                                       .get());
  if (state == "cancelled") return CancelState::kCancelled;
  if (state == "unknown") return CancelState::kUnknown;
  if (state == "queued" || state == "running") return CancelState::kRunning;
  return CancelState::kFinished;
}

void RedisQueue::ensure_group() {
  try {
    // From id 0: jobs submitted before any worker existed are served too.
    command({"XGROUP", "CREATE", config_.stream, config_.group, "0", "MKSTREAM"});
  } catch (const Error& e) {
    if (std::string(e.what()).find("BUSYGROUP") == std::string::npos) throw;
  }
}

std::vector<StreamJob> RedisQueue::parse_entries(const redisReply* entries) const {
  std::vector<StreamJob> jobs;
  if (!entries || entries->type != REDIS_REPLY_ARRAY) return jobs;
  for (size_t i = 0; i < entries->elements; ++i) {
    const redisReply* entry = entries->element[i];
    // A deleted entry (a cancelled job) still pending shows as [id, nil].
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2) continue;
    StreamJob job;
    job.entry_id = reply_string(entry->element[0]);
    const redisReply* fields = entry->element[1];
    if (fields->type != REDIS_REPLY_ARRAY) continue;
    for (size_t f = 0; f + 1 < fields->elements; f += 2) {
      std::string name = reply_string(fields->element[f]);
      if (name == "id") job.id = reply_string(fields->element[f + 1]);
      else if (name == "job") job.payload = reply_string(fields->element[f + 1]);
    }
    jobs.push_back(std::move(job));
  }
  return jobs;
}

std::vector<StreamJob> RedisQueue::read(const std::string& consumer, size_t count, int block_ms) {
  std::vector<std::string> argv = {"XREADGROUP", "GROUP", config_.group, consumer, "COUNT", std::to_string(count)};
  if (block_ms > 0) {
    argv.push_back("BLOCK");
    argv.push_back(std::to_string(block_ms));
  }
  argv.insert(argv.end(), {"STREAMS", config_.stream, ">"});
  Reply reply = command(argv);
  // [[stream, [entries...]]], or nil when nothing came.
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) return {};
  const redisReply* stream = reply->element[0];
  if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2) return {};
  return parse_entries(stream->element[1]);
}

std::vector<StreamJob> RedisQueue::claim_stale(const std::string& consumer, size_t count) {
  Reply reply = command({"XAUTOCLAIM", config_.stream, config_.group, consumer,
                         std::to_string(config_.visibility_timeout_ms), "0-0", "COUNT", std::to_string(count)});
  // [next cursor, [entries...], [deleted ids...]]
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2) return {};
  std::vector<StreamJob> jobs = parse_entries(reply->element[1]);
  if (reply->elements >= 3 && reply->element[2]->type == REDIS_REPLY_ARRAY && reply->element[2]->elements > 0) {
    // Entries deleted while pending (cancelled jobs): nothing to run, only acknowledge.
    std::vector<std::string> ack = {"XACK", config_.stream, config_.group};
    for (size_t i = 0; i < reply->element[2]->elements; ++i) ack.push_back(reply_string(reply->element[2]->element[i]));
    command(ack);
  }
  return jobs;
}

std::vector<RedisQueue::StartState> RedisQueue::start(const std::vector<StreamJob>& jobs,
                                                      const std::vector<std::string>& dead_replies) {
  std::vector<std::vector<std::string>> commands;
  for (size_t i = 0; i < jobs.size(); ++i)
    commands.push_back({"EVAL", kStartScript, "4", job_key(jobs[i].id), result_key(jobs[i].id), config_.stream,
                        dead_key(), config_.group, jobs[i].entry_id, std::to_string(config_.max_deliveries),
                        dead_replies[i], std::to_string(config_.result_ttl_s), jobs[i].id});
  std::vector<StartState> states;
  for (const Reply& reply : pipeline(commands)) {
    std::string state = reply_string(reply.get());
    states.push_back(state == "run" ? StartState::kRun : state == "dead" ? StartState::kDead : StartState::kSkip);
  }
  return states;
}

void RedisQueue::finish(const std::vector<StreamJob>& jobs, const std::vector<std::string>& replies) {
  std::vector<std::vector<std::string>> commands;
  for (size_t i = 0; i < jobs.size(); ++i)
    commands.push_back({"EVAL", kFinishScript, "3", job_key(jobs[i].id), result_key(jobs[i].id), config_.stream,
                        replies[i], std::to_string(config_.result_ttl_s), config_.group, jobs[i].entry_id});
  if (!commands.empty()) pipeline(commands);
}

void RedisQueue::heartbeat(const WorkerBeat& worker) {
  command({"EVAL", kHeartbeatScript, "3", workers_key(), config_.stream, worker_key(worker.consumer), config_.group,
           std::to_string(config_.worker_timeout_ms), worker_key(""), worker.consumer, worker.version,
           std::to_string(worker.pid), worker.host});
}

void RedisQueue::retire(const std::string& consumer) {
  command({"EVAL", kRetireScript, "3", workers_key(), config_.stream, worker_key(consumer), config_.group, consumer});
}

std::vector<WorkerBeat> RedisQueue::workers() {
  Reply reply = command({"EVAL", kWorkersScript, "1", workers_key(), std::to_string(config_.worker_timeout_ms),
                         worker_key("")});
  std::vector<WorkerBeat> out;
  if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) return out;
  const int64_t now = std::stoll(reply_string(reply->element[0]));
  for (size_t i = 1; i < reply->elements; ++i) {
    const redisReply* fields = reply->element[i];
    if (fields->type != REDIS_REPLY_ARRAY) continue;
    WorkerBeat worker;
    for (size_t f = 0; f + 1 < fields->elements; f += 2) {
      std::string name = reply_string(fields->element[f]);
      std::string value = reply_string(fields->element[f + 1]);
      if (name == "consumer") worker.consumer = value;
      else if (name == "version") worker.version = value;
      else if (name == "host") worker.host = value;
      else if (name == "pid") worker.pid = std::strtoll(value.c_str(), nullptr, 10);
      else if (name == "last_seen_ms") worker.last_seen_ms = std::strtoll(value.c_str(), nullptr, 10);
    }
    worker.age_ms = now - worker.last_seen_ms;
    out.push_back(std::move(worker));
  }
  return out;
}

size_t RedisQueue::depth() { return static_cast<size_t>(command({"XLEN", config_.stream})->integer); }

std::vector<std::string> RedisQueue::consumer_names() {
  std::vector<std::string> names;
  try {
    Reply reply = command({"XINFO", "CONSUMERS", config_.stream, config_.group});
    if (reply->type != REDIS_REPLY_ARRAY) return names;
    // One field list per consumer: name, <name>, pending, <n>, ...
    for (size_t i = 0; i < reply->elements; ++i) {
      const redisReply* fields = reply->element[i];
      if (fields->type != REDIS_REPLY_ARRAY) continue;
      for (size_t f = 0; f + 1 < fields->elements; f += 2)
        if (reply_string(fields->element[f]) == "name") names.push_back(reply_string(fields->element[f + 1]));
    }
  } catch (const Error& e) {
    if (!connected()) throw;  // else: no group yet
  }
  return names;
}

size_t RedisQueue::dead_letters() { return static_cast<size_t>(command({"XLEN", dead_key()})->integer); }

}  // namespace feu::service
