#include "service/endpoint_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/error.h"

namespace feu::service {

void probe_endpoint(const std::string& endpoint, int timeout_ms) {
  const std::string prefix = "tcp://";
  if (endpoint.compare(0, prefix.size(), prefix) != 0) return;
  std::string address = endpoint.substr(prefix.size());
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return;  // ZeroMQ reports the malformed endpoint itself
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host == "*") host = "127.0.0.1";

  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const int resolved = getaddrinfo(host.c_str(), port.c_str(), &hints, &found);
  check(resolved == 0, ErrorCode::kIoError,
        "cannot reach " + endpoint + ": " + gai_strerror(resolved) + " (is the address right?)");
  std::string reason = "no address";
  bool reached = false;
  for (addrinfo* a = found; a && !reached; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) {
      reason = std::strerror(errno);
      continue;
    }
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc == 0) {
      reached = true;
    } else if (errno == EINPROGRESS) {
      pollfd pfd{fd, POLLOUT, 0};
      rc = poll(&pfd, 1, timeout_ms);
      if (rc == 0) {
        reason = "no answer within " + std::to_string(timeout_ms) + " ms";
      } else if (rc > 0) {
        int error = 0;
        socklen_t len = sizeof error;
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
        if (error == 0) reached = true;
        else reason = std::strerror(error);
      } else {
        reason = std::strerror(errno);
      }
    } else {
      reason = std::strerror(errno);
    }
    close(fd);
  }
  freeaddrinfo(found);
  check(reached, ErrorCode::kIoError,
        "nothing answers at " + endpoint + " (" + reason + "): is feu-daemon running there? (--server ADDR)");
}

}  // namespace feu::service
