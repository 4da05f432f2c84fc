// Routing, the error catch point, and the headers on every answer.
#include "router.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <new>
#include <stdexcept>

#include "error.hpp"
#include "fs/data_root.hpp"

namespace medimg::fcgi {
namespace {

constexpr const char* kAllow = "GET, HEAD, OPTIONS";

std::vector<std::string_view> split_path(std::string_view path) {
    std::vector<std::string_view> out;
    if (!path.empty() && path.front() == '/') path.remove_prefix(1);
    std::size_t pos = 0;
    while (true) {
        auto slash = path.find('/', pos);
        out.push_back(path.substr(pos, slash == std::string_view::npos ? path.npos : slash - pos));
        if (slash == std::string_view::npos) break;
        pos = slash + 1;
    }
    return out;
}

// One path segment decoded once. A decoded "/" would create a segment the
// URL did not have, and control characters have no place in file names
// (nor in the Content-Disposition they end up in): both are BadPath.
std::string decode_segment(std::string_view raw) {
    std::string s = fs::percent_decode(raw);
    for (unsigned char c : s) {
        if (c == '/') throw Error(ErrorCode::BadPath, "encoded slash (%2F) inside a path segment");
        if (c < 0x20 || c == 0x7f) throw Error(ErrorCode::BadPath, "control character in path");
    }
    return s;
}

bool is_capture(std::string_view seg) { return seg.size() > 2 && seg.front() == '{' && seg.back() == '}'; }
bool is_rest(std::string_view seg) { return is_capture(seg) && seg.size() > 5 && seg.substr(seg.size() - 4) == "...}"; }
std::string capture_name(std::string_view seg) {
    seg = seg.substr(1, seg.size() - 2);
    if (seg.size() > 3 && seg.substr(seg.size() - 3) == "...") seg.remove_suffix(3);
    return std::string(seg);
}

}  // namespace

Response busy_response(int retry_after_seconds) {
    Response r = Response::error(Error(ErrorCode::Busy, "all workers are busy; retry shortly"));
    r.set_header("Retry-After", std::to_string(retry_after_seconds));
    r.set_header("X-Content-Type-Options", "nosniff");
    return r;
}

void Router::add(std::string pattern, Handler handler, AnswerOn on) {
    Route route;
    for (auto seg : split_path(pattern)) route.segments.emplace_back(seg);
    route.handler = std::move(handler);
    if (on == AnswerOn::Acceptor) {
        for (const auto& seg : route.segments)
            if (is_capture(seg))
                throw Error(ErrorCode::Internal, "route " + pattern + ": a route answered on the acceptor "
                                                                     "must be literal");
        acceptor_paths_.push_back(pattern);
    }
    routes_.push_back(std::move(route));
}

bool Router::answers_on_acceptor(std::string_view method, std::string_view uri) const noexcept {
    if (method != "GET" && method != "HEAD") return false;
    const std::string_view path = uri.substr(0, uri.find('?'));
    for (const auto& p : acceptor_paths_)
        if (path == p) return true;
    return false;
}

bool Router::match(const Route& route, const std::vector<std::string_view>& path,
                   PathParams& params) const {
    const auto& pat = route.segments;
    auto rest = std::find_if(pat.begin(), pat.end(), [](const std::string& s) { return is_rest(s); });
    const std::size_t before = static_cast<std::size_t>(rest - pat.begin());
    const std::size_t after = rest == pat.end() ? 0 : pat.size() - before - 1;
    if (rest == pat.end() ? path.size() != pat.size() : path.size() < before + after + 1)
        return false;
    auto one = [&](const std::string& p, std::string_view s) {
        if (is_capture(p)) return true;
        return p == s;
    };
    for (std::size_t i = 0; i < before; ++i)
        if (!one(pat[i], path[i])) return false;
    for (std::size_t i = 0; i < after; ++i)
        if (!one(pat[pat.size() - 1 - i], path[path.size() - 1 - i])) return false;
    // Matched: decode the captures (decoding errors are the client's).
    for (std::size_t i = 0; i < before; ++i)
        if (is_capture(pat[i])) params[capture_name(pat[i])] = decode_segment(path[i]);
    for (std::size_t i = 0; i < after; ++i) {
        const auto& p = pat[pat.size() - 1 - i];
        if (is_capture(p)) params[capture_name(p)] = decode_segment(path[path.size() - 1 - i]);
    }
    if (rest != pat.end()) {
        std::string joined;
        for (std::size_t i = before; i < path.size() - after; ++i) {
            if (i > before) joined += '/';
            joined += decode_segment(path[i]);
        }
        params[capture_name(*rest)] = joined;
    }
    return true;
}

std::vector<std::string> Router::patterns() const {
    std::vector<std::string> out;
    for (const auto& route : routes_) {
        std::string p;
        for (const auto& seg : route.segments) p += "/" + seg;
        out.push_back(p);
    }
    return out;
}

void Router::open_metrics(Context& context) const {
    // Beside the results cache, also when the cache is off
    // (docs/DEPLOYMENT.md, "Metrics").
    try {
        if (context.config.cache_dir.empty()) throw std::runtime_error("no cache directory is configured");
        context.metrics = Metrics::open(context.config.cache_dir, patterns(), context.config.threads);
    } catch (const std::exception& e) {
        context.log(std::string("metrics are off: ") + e.what());
    }
}

Response Router::dispatch(const Request& request) const {
    std::size_t index = 0;
    return dispatch(request, index);
}

Response Router::dispatch(const Request& request, std::size_t& route_index) const {
    const auto path = split_path(request.path);
    route_index = routes_.size();
    for (std::size_t i = 0; i < routes_.size(); ++i) {
        const auto& route = routes_[i];
        PathParams params;
        if (!match(route, path, params)) continue;
        route_index = i;
        if (request.method == "GET" || request.method == "HEAD")
            return route.handler(request, params);
        if (request.method == "OPTIONS") {
            Response r;
            r.status = 204;
            r.set_header("Allow", kAllow);
            return r;
        }
        throw Error(ErrorCode::MethodNotAllowed,
                    "method " + request.method + " is not allowed; use GET, HEAD or OPTIONS");
    }
    throw Error(ErrorCode::NotFound, "no such endpoint");
}

namespace {

// The body bytes an answer carries to the client, for /metrics: none for
// HEAD, 204 and 304; for X-Sendfile / X-Accel-Redirect answers the file the
// web server sends.
std::uint64_t body_bytes(const Response& r, bool head, const Context& context) {
    if (head || r.status == 204 || r.status == 304 || r.status < 200) return 0;
    struct stat st{};
    if (const auto* p = r.header("X-Sendfile"))
        return ::stat(p->c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
    if (const auto* p = r.header("X-Accel-Redirect")) {
        const std::string prefix = "/medimg-cache/";
        if (context.cache && p->rfind(prefix, 0) == 0) {
            const auto file = context.cache->dir() / p->substr(prefix.size());
            return ::stat(file.c_str(), &st) == 0 ? static_cast<std::uint64_t>(st.st_size) : 0;
        }
        return 0;
    }
    return r.file ? r.file->size() : r.body.size();
}

}  // namespace

void Router::handle(Transport& transport) const {
    Request request;
    Response response;
    bool head = false;
    std::size_t route_index = routes_.size();
    const auto started = std::chrono::steady_clock::now();
    Metrics* metrics = context_.metrics.get();
    struct Busy {
        Metrics* m;
        explicit Busy(Metrics* m) : m(m) {
            if (m) m->add_busy(1);
        }
        ~Busy() {
            if (m) m->add_busy(-1);
        }
    } busy(metrics);
    try {
        try {
            request = Request::from(transport);
            head = request.method == "HEAD";
            response = dispatch(request, route_index);
        } catch (const Error& e) {
            // A failure of the server itself (Io, Internal) may name its own
            // files (the cache, the temporary folder): the client gets the
            // kind of failure, the log the whole sentence (docs/SECURITY.md).
            const bool own_failure = e.code() == ErrorCode::Io || e.code() == ErrorCode::Internal;
            response = Response::error(own_failure ? Error(e.code(), "the server could not complete the request; "
                                                                     "its log says why")
                                                   : e);
            if (e.code() == ErrorCode::MethodNotAllowed) response.set_header("Allow", kAllow);
            if (e.code() == ErrorCode::Busy) response.set_header("Retry-After", "5");
            if (e.http_status() >= 500)
                context_.log(std::string(request.method) + " " + request.uri + ": " + e.what());
        } catch (const std::bad_alloc&) {
            // Memory pressure is transient: the client may retry.
            response = busy_response(5);
            context_.log(request.method + " " + request.uri + ": out of memory (answered 503)");
        } catch (const ClientGone&) {
            return;
        } catch (const std::exception& e) {
            response = Response::error(Error(ErrorCode::Internal, "internal error"));
            context_.log(request.method + " " + request.uri + ": internal error: " + e.what());
        } catch (...) {
            response = Response::error(Error(ErrorCode::Internal, "internal error"));
            context_.log(request.method + " " + request.uri + ": internal error (unknown exception)");
        }
        response.set_header("X-Content-Type-Options", "nosniff");
        // No CORS headers: the web server owns CORS in every deployment, on
        // every answer (docs/SECURITY.md, "CORS"); a second source of them
        // would drift from its list.
        write_response(transport, response, head);
        if (metrics) {
            const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
            metrics->count_request(route_index, response.status, took.count(),
                                   body_bytes(response, head, context_));
        }
    } catch (const ClientGone&) {
    } catch (const std::exception& e) {
        context_.log(request.method + " " + request.uri + ": cannot send the answer: " + e.what());
    }
}

}  // namespace medimg::fcgi
