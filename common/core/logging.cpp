#include "core/logging.h"

#include <nlohmann/json.hpp>
#include <spdlog/pattern_formatter.h>
#include <spdlog/spdlog.h>

#include <memory>

#include "core/error.h"

namespace feu {
namespace {

// %* : the message as a JSON string (quotes, control characters and invalid
// UTF-8 escaped), so a request's text can never break a line's JSON.
class JsonMessageFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&, spdlog::memory_buf_t& dest) override {
    const std::string text(msg.payload.data(), msg.payload.size());
    const std::string quoted = nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    dest.append(quoted.data(), quoted.data() + quoted.size());
  }
  std::unique_ptr<custom_flag_formatter> clone() const override { return std::make_unique<JsonMessageFlag>(); }
};

}  // namespace

void configure_logging(const std::string& format, const std::string& level) {
  const spdlog::level::level_enum parsed = spdlog::level::from_str(level);
  check(parsed != spdlog::level::off || level == "off", ErrorCode::kInvalidArgument,
        "log level '" + level + "' is not one of trace, debug, info, warn, error");
  if (format == "text") {
    spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");
  } else if (format == "json") {
    auto formatter = std::make_unique<spdlog::pattern_formatter>(spdlog::pattern_time_type::utc);
    formatter->add_flag<JsonMessageFlag>('*').set_pattern(R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ","level":"%l","message":%*})");
    spdlog::set_formatter(std::move(formatter));
  } else {
    throw Error(ErrorCode::kInvalidArgument, "log format '" + format + "' is not one of text, json");
  }
  spdlog::set_level(parsed);
}

void log_line(LogLevel level, const std::string& message) {
  if (level == LogLevel::kWarn) spdlog::warn("{}", message);
  else spdlog::info("{}", message);
}

}  // namespace feu
