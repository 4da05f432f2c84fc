// The worker's endpoints (README.md), each registered on a Router, and
// the helpers they share.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "context.hpp"
#include "request.hpp"
#include "response.hpp"
#include "router.hpp"

namespace medimg::fcgi {

// /filtered-scans/{pid}/{file} and /filtered-scans/{pid}/{rel/path}
void register_filtered_scans(Router& router, const Context& context);
// /output/{pid}/{rel/path}/labels and /output/{pid}/{rel/path}/info
void register_labels(Router& router, const Context& context);
// /health
void register_health(Router& router, const Context& context);
// /metrics (Context::metrics, opened by Router::open_metrics())
void register_metrics(Router& router, const Context& context);
// All of the above.
void register_all(Router& router, const Context& context);

namespace detail {

// The worker's data root, for a route that reads beneath it. When the web
// server names its own data root (MEDIMG_DATA_ROOT, docs/DEPLOYMENT.md,
// "Changing the data root"), that folder must be this worker's: otherwise
// the static files and the worker's answers for one URL would come from two
// trees, so the request fails (500, the log names both folders) rather
// than answering from the wrong one.
const fs::DataRoot& data_root(const Context& context, const Request& request);

// "Wed, 21 Oct 2015 07:28:00 GMT"
std::string http_date(std::int64_t unix_seconds);
// Content-Disposition value with `name` quoted (and RFC 5987 filename* for
// non-ASCII names).
std::string attachment_disposition(const std::string& name);

}  // namespace detail
}  // namespace medimg::fcgi
