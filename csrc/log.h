// The native code's own log lines on stderr: the gRPC server's failures whose detail a client
// does not get (it gets a request id to quote) and ONNX Runtime's messages. Plain text by
// default; with `engine serve --log-json`, one JSON object per line with the fields
// engine.monitoring.logging writes (time, level, logger, message, request_id), so that every
// line of the process parses. Thread-safe; rare, so not fast.
#pragma once

#include <string>
#include <string_view>

namespace engine {

// Switches every later line to JSON (true) or text (false, the default). Process-wide.
void SetJsonLogs(bool json);

// One line at `level` ("ERROR", "WARNING", ...) from `logger`. `message` and `request_id` may
// hold client text: they are escaped (text) or JSON-quoted (JSON), so neither can start a line
// of its own. An empty request_id is logged as "-".
void LogLine(std::string_view level, std::string_view logger, std::string_view message,
             std::string_view request_id = {});

// A string made safe for one text log line: control characters, including line breaks, and
// the backslash escaped as \xNN; nothing cut.
std::string EscapeForLog(std::string_view text);

// The JSON line LogLine writes, for a given time stamp (exposed for tests).
std::string JsonLogLine(std::string_view time, std::string_view level, std::string_view logger,
                        std::string_view message, std::string_view request_id);

}  // namespace engine
