// How feu's programs log (spdlog): one place for the line format.
//   text: 2026-11-28T09:55:13.123 info message
//   json: {"time":"2026-11-28T09:55:13.123Z","level":"info","message":"..."}  (one object per line,
//         for log shippers; the message JSON-escaped)
#pragma once

#include <string>

namespace feu {

// `format`: "text" or "json"; `level`: trace, debug, info, warn, error.
// Errors: invalid_argument naming the bad value.
void configure_logging(const std::string& format, const std::string& level);

// One log line through the configured logger, for code that must not include
// spdlog: translation units that see libtorch's headers would pick up its
// bundled fmt instead of the one Debian's spdlog was built against.
enum class LogLevel { kInfo, kWarn };
void log_line(LogLevel level, const std::string& message);

}  // namespace feu
