// The daemon's wire protocol, both ways: a request's frames parse into a validated request or a
// ProtocolError with its code (nothing else may escape: the server would answer "internal"), and
// a reply's frames decode into an edit result or a ProtocolError (what a client meets from a
// faulty server). The input is a packed frame list (service/frames.h, the journal's encoding),
// or, when it is not one, a single header frame, so that plain JSON inputs work too.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "service/frames.h"
#include "service/protocol.h"

using namespace feu::service;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<Frame> frames;
  if (!unpack_frames(reinterpret_cast<const char*>(data), size, &frames))
    frames = {Frame(reinterpret_cast<const char*>(data), size)};
  if (frames.empty()) return 0;
  const Limits limits;
  try {
    const Request request = parse_request(frames, limits);
    if (request.type == RequestType::kEdit) (void)edit_request_digest(request.edit);
  } catch (const ProtocolError&) {
    (void)salvage_id(frames[0], limits);
  }
  try {
    (void)decode_edit_result(from_frames(frames));
  } catch (const ProtocolError&) {
  }
  return 0;
}
