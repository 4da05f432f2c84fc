// Method + pattern → handler, and the one place errors become answers.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "context.hpp"
#include "request.hpp"
#include "response.hpp"
#include "transport.hpp"

namespace medimg::fcgi {

// Decoded path captures: "{pid}" → one segment, "{rest...}" → one or more
// segments joined with "/".
using PathParams = std::map<std::string, std::string>;
using Handler = std::function<Response(const Request&, const PathParams&)>;

// Which thread of the worker answers a route's requests (fcgi/main.cpp).
enum class AnswerOn {
    // A request thread ([server] threads), after the queue ([limits] max_queue).
    RequestThread,
    // The acceptor thread itself, before the queue: for an answer that must
    // come while every request thread is held by slow clients or long
    // filters (the liveness probe, /health). Literal patterns only, and a
    // handler that reads no file and cannot block: while it runs, nothing is
    // accepted.
    Acceptor,
};

class Router {
public:
    explicit Router(const Context& context) : context_(context) {}

    // `pattern`: "/" separated literals, "{name}" (one segment) and at most
    // one "{name...}" (one or more segments). Every route answers GET and
    // HEAD (HEAD: same headers, no body) and OPTIONS (CORS preflight, 204).
    // A route answered on the acceptor must be all literals, else
    // Error(Internal).
    void add(std::string pattern, Handler handler, AnswerOn on = AnswerOn::RequestThread);

    // Whether the acceptor answers this request itself: GET or HEAD whose
    // path (`uri` before any '?') is exactly the pattern of a route added
    // with AnswerOn::Acceptor. Compares text only: nothing is decoded, so a
    // path that only decodes to the pattern goes to a request thread.
    bool answers_on_acceptor(std::string_view method, std::string_view uri) const noexcept;

    // Routes one request; throws Error for every refusal (no route: NotFound;
    // other methods: MethodNotAllowed).
    Response dispatch(const Request& request) const;

    // The registered patterns, in registration order (the order dispatch()
    // tries them): what /openapi.json must describe.
    std::vector<std::string> patterns() const;

    // Opens the pool's shared counters (Context::metrics) for the routes
    // registered so far: call once, after every add(). A failure is logged
    // and leaves /metrics answering 503; requests are answered regardless.
    void open_metrics(Context& context) const;

    // Reads the request from `transport`, dispatches it, turns any exception
    // into the JSON error answer (Error → its table status; std::bad_alloc →
    // 503 busy with Retry-After; anything else → 500 internal_error, logged),
    // adds the header every answer carries (nosniff) and writes it. CORS is
    // the web server's (docs/SECURITY.md, "CORS"): the worker sends none.
    // Never throws; a client that went away is dropped silently.
    void handle(Transport& transport) const;

private:
    struct Route {
        std::vector<std::string> segments;
        Handler handler;
    };
    Response dispatch(const Request& request, std::size_t& route_index) const;
    bool match(const Route& route, const std::vector<std::string_view>& path,
               PathParams& params) const;

    const Context& context_;
    std::vector<Route> routes_;
    std::vector<std::string> acceptor_paths_;   // the AnswerOn::Acceptor patterns
};

// Renders the 503 answer for a request refused before routing (queue full).
Response busy_response(int retry_after_seconds);

}  // namespace medimg::fcgi
