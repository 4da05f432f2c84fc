// Rendering a Response on a transport.
#include "response.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <strings.h>
#include <vector>

#include <nlohmann/json.hpp>

namespace medimg::fcgi {

FileBody::~FileBody() {
    if (fd_ >= 0) ::close(fd_);
}

namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool header_safe(std::string_view s) {
    for (unsigned char c : s)
        if (c == '\r' || c == '\n' || c == '\0') return false;
    return true;
}

}  // namespace

void Response::set_header(std::string_view name, std::string value) {
    remove_header(name);
    headers.emplace_back(std::string(name), std::move(value));
}

void Response::add_header(std::string_view name, std::string value) {
    headers.emplace_back(std::string(name), std::move(value));
}

const std::string* Response::header(std::string_view name) const {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return &v;
    return nullptr;
}

void Response::remove_header(std::string_view name) {
    std::erase_if(headers, [&](const auto& kv) { return iequals(kv.first, name); });
}

Response Response::json(int status, std::string body) {
    Response r;
    r.status = status;
    r.set_header("Content-Type", "application/json");
    r.body = std::move(body);
    return r;
}

Response Response::error(const Error& e) {
    nlohmann::json j = {{"detail", e.what()}, {"error", std::string(e.id())}};
    // Replace invalid UTF-8 (a detail quoting raw input) instead of throwing.
    return json(e.http_status(), j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

std::string_view reason_phrase(int status) noexcept {
    switch (status) {
        case 200: return "OK";
        case 204: return "No Content";
        case 206: return "Partial Content";
        case 304: return "Not Modified";
        case 400: return "Bad Request";
        case 403: return "Forbidden";
        case 404: return "Not Found";
        case 405: return "Method Not Allowed";
        case 413: return "Content Too Large";
        case 415: return "Unsupported Media Type";
        case 422: return "Unprocessable Content";
        case 500: return "Internal Server Error";
        case 503: return "Service Unavailable";
        default: return "Unknown";
    }
}

void write_response(Transport& out, const Response& r, bool head_only) {
    for (const auto& [k, v] : r.headers)
        if (k.empty() || !header_safe(k) || !header_safe(v))
            throw Error(ErrorCode::Internal, "refusing to send a header with CR, LF or NUL");
    if (r.status < 100 || r.status > 999) throw Error(ErrorCode::Internal, "bad status code");
    const bool no_body_status = r.status == 204 || r.status == 304 || r.status < 200;
    const bool delegated = r.header("X-Sendfile") || r.header("X-Accel-Redirect");
    std::string head = "Status: " + std::to_string(r.status) + " " +
                       std::string(reason_phrase(r.status)) + "\r\n";
    for (const auto& [k, v] : r.headers) head += k + ": " + v + "\r\n";
    if (!no_body_status && !delegated && !r.header("Content-Length"))
        head += "Content-Length: " +
                std::to_string(r.file ? r.file->size() : r.body.size()) + "\r\n";
    head += "\r\n";
    out.write(head);
    if (head_only || no_body_status || delegated) return;
    if (!r.file) {
        out.write(r.body);
        return;
    }
    std::vector<char> buf(256 * 1024);
    std::uint64_t offset = 0, left = r.file->size();
    while (left > 0) {
        std::size_t want = left < buf.size() ? static_cast<std::size_t>(left) : buf.size();
        ssize_t got = ::pread(r.file->fd(), buf.data(), want, static_cast<off_t>(offset));
        if (got < 0 && errno == EINTR) continue;
        // The length is already announced: a short file can only end the
        // connection early (the web server then reports a truncated answer).
        if (got <= 0) throw ClientGone();
        out.write(buf.data(), static_cast<std::size_t>(got));
        offset += static_cast<std::uint64_t>(got);
        left -= static_cast<std::uint64_t>(got);
    }
}

}  // namespace medimg::fcgi
