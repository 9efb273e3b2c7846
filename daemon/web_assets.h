// The web page (daemon/web) and the OpenAPI document (daemon/openapi.json),
// embedded at build time (daemon/embed_assets.cmake), by URL path.
#pragma once

#include "service/http_front.h"

namespace feu::daemon {

service::HttpAssets web_assets();

}  // namespace feu::daemon
