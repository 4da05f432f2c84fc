// GET /health: liveness for load balancers and the old server's clients.
#include <nlohmann/json.hpp>

#include "routes/routes.hpp"

namespace medimg::fcgi {

void register_health(Router& router, const Context& context) {
    // Answered on the acceptor (AnswerOn::Acceptor): a liveness probe must
    // not wait behind requests that stall on slow clients
    // (docs/ARCHITECTURE.md, "One request").
    router.add(
        "/health",
        [](const Request&, const PathParams&) {
            nlohmann::ordered_json j = {
                {"status", "healthy"}, {"service", "image-server"}, {"version", MEDIMG_VERSION}};
            Response r = Response::json(200, j.dump());
            r.set_header("Cache-Control", "no-store");
            return r;
        },
        AnswerOn::Acceptor);
}

void register_all(Router& router, const Context& context) {
    register_health(router, context);
    register_metrics(router, context);
    register_filtered_scans(router, context);
    register_labels(router, context);
}

}  // namespace medimg::fcgi
