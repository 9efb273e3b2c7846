// A quick "is anyone listening?" before a client waits for replies: ZeroMQ
// connects lazily and queues messages for a peer that may never come, so a
// client of a stopped daemon would otherwise wait out every timeout and retry.
#pragma once

#include <string>

namespace feu::service {

// For tcp:// endpoints: opens and closes a TCP connection to the host and port
// within `timeout_ms`. Throws feu::Error(unavailable-style io_error) naming the
// endpoint and the reason (connection refused, no route, timed out) when that
// fails. ipc://, inproc:// and other transports are not probed.
void probe_endpoint(const std::string& endpoint, int timeout_ms = 2000);

}  // namespace feu::service
