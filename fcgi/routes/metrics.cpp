// GET /metrics: the pool's counters in the Prometheus text exposition format
// 0.0.4 (README.md; docs/DEPLOYMENT.md, "Metrics").
#include "error.hpp"
#include "routes/routes.hpp"

namespace medimg::fcgi {

void register_metrics(Router& router, const Context& context) {
    router.add("/metrics", [&context](const Request&, const PathParams&) {
        if (!context.metrics)
            throw Error(ErrorCode::Io, "the metrics file could not be opened when the worker started");
        std::int64_t bytes = -1, max_bytes = -1;
        if (context.cache) {
            bytes = static_cast<std::int64_t>(context.cache->size_bytes());
            max_bytes = static_cast<std::int64_t>(context.cache->max_bytes());
        }
        Response r;
        r.status = 200;
        r.body = context.metrics->render(bytes, max_bytes);
        r.set_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        r.set_header("Cache-Control", "no-store");
        return r;
    });
}

}  // namespace medimg::fcgi
