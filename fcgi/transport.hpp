// The seam between routes and the wire: CGI parameters in, response bytes
// out. FcgiTransport speaks libfcgi; MemoryTransport serves tests.
#pragma once

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

struct FCGX_Request;

namespace medimg::fcgi {

// The client went away while we were writing (FCGX_PutStr = -1, ECONNRESET).
class ClientGone : public std::runtime_error {
public:
    ClientGone() : std::runtime_error("client closed the connection") {}
};

class Transport {
public:
    virtual ~Transport() = default;
    // A CGI parameter (REQUEST_METHOD, REQUEST_URI, HTTP_ORIGIN, ...).
    virtual std::optional<std::string_view> param(std::string_view name) const = 0;
    // Writes all bytes or throws ClientGone.
    virtual void write(const char* data, std::size_t n) = 0;
    void write(std::string_view s) { write(s.data(), s.size()); }
};

// Over one accepted libfcgi request (not owned). With a send timeout > 0
// (`[limits] send_timeout`, docs/SECURITY.md), a write that finds no room on
// the connection for that long throws ClientGone and stalled() turns true:
// a client that stops reading costs a thread at most about that long. The
// timeout also holds for libfcgi's own writes (SO_SNDTIMEO), so the final
// flush in FCGX_Finish_r cannot block longer either.
class FcgiTransport final : public Transport {
public:
    explicit FcgiTransport(FCGX_Request& request,
                           std::chrono::milliseconds send_timeout = std::chrono::milliseconds(0));
    std::optional<std::string_view> param(std::string_view name) const override;
    void write(const char* data, std::size_t n) override;
    using Transport::write;
    // True once a write was given up for want of room (send timeout).
    bool stalled() const noexcept { return stalled_; }

private:
    FCGX_Request& request_;
    std::chrono::milliseconds send_timeout_;
    bool stalled_ = false;
};

// Parameters given up front; output collected in `output`.
class MemoryTransport final : public Transport {
public:
    MemoryTransport() = default;
    explicit MemoryTransport(std::map<std::string, std::string> params)
        : params(std::move(params)) {}
    std::optional<std::string_view> param(std::string_view name) const override {
        auto it = params.find(std::string(name));
        if (it == params.end()) return std::nullopt;
        return std::string_view(it->second);
    }
    void write(const char* data, std::size_t n) override { output.append(data, n); }
    using Transport::write;

    std::map<std::string, std::string> params;
    std::string output;
};

}  // namespace medimg::fcgi
