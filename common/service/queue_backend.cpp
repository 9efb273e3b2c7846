#include "service/queue_backend.h"

#include "core/text.h"
#include "service/local_queue_backend.h"
#include "service/redis_queue_backend.h"

namespace feu::service {
using nlohmann::json;

std::unique_ptr<QueueBackend> make_queue_backend(const ServerConfig& config, ServiceStats& stats,
                                                 OutcomeRecorder record, VersionSource artifact_version) {
  if (config.queue.is_redis())
    return std::make_unique<RedisQueueBackend>(config, stats, std::move(record), std::move(artifact_version));
  return std::make_unique<LocalQueueBackend>(config, stats, std::move(record));
}

std::string printable_id(const std::string& id) { return escape_text(id, 128); }

void finalize_timings(const Job& job, Message& reply, const json& timings) {
  json all_timings = timings.is_object() ? timings : json::object();
  all_timings["total_ms"] = now_unix_ms() - job.accepted_ms;
  reply.header["timings_ms"] = all_timings;
}

Message deadline_reply(const Job& job) {
  return error_reply(job.id, error_code_name(ErrorCode::kDeadlineExceeded),
                     "the job waited past its deadline of " + std::to_string(job.deadline_ms - job.accepted_ms) +
                         " ms");
}

Message accepted_reply(const std::string& id) {
  Message reply;
  reply.header = reply_header(id, status::kAccepted);
  return reply;
}

Message not_found_reply(const std::string& id, int64_t retention_s) {
  return error_reply(id, error_code_name(ErrorCode::kNotFound),
                     "no job with id '" + printable_id(id) + "' (never submitted, or its result expired after " +
                         std::to_string(retention_s) + " s)");
}

Message no_such_job_reply(const std::string& id) {
  return error_reply(id, error_code_name(ErrorCode::kNotFound), "no job with id '" + printable_id(id) + "'");
}

Message id_conflict_reply(const std::string& id) {
  return error_reply(id, codes::kIdConflict, "id '" + printable_id(id) + "' was already used for a different request");
}

Message cancel_reply(const std::string& id, const std::string& state) {
  Message reply;
  reply.header = reply_header(id, status::kDone);
  reply.header["type"] = "cancel";
  reply.header["cancelled"] = state == "cancelled";
  reply.header["state"] = state;
  return reply;
}

Message cancelled_reply(const std::string& id) {
  return error_reply(id, error_code_name(ErrorCode::kCancelled), "cancelled by a client");
}

}  // namespace feu::service
