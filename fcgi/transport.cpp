// The libfcgi transport.
#include "transport.hpp"

#include <fcgiapp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <cerrno>
#include <string>

namespace medimg::fcgi {

namespace {

// libfcgi fills an 8 KiB record buffer and writes it out when it is full; a
// piece of this size flushes at most twice, and only after poll() found room.
constexpr std::size_t kPiece = 16 * 1024;

}  // namespace

FcgiTransport::FcgiTransport(FCGX_Request& request, std::chrono::milliseconds send_timeout)
    : request_(request), send_timeout_(send_timeout) {
    if (send_timeout_.count() > 0 && request_.ipcFd >= 0) {
        // The accepted connection to the web server, never the listening
        // socket: this bounds each write(2) libfcgi makes on it.
        timeval tv{};
        tv.tv_sec = static_cast<time_t>(send_timeout_.count() / 1000);
        tv.tv_usec = static_cast<suseconds_t>((send_timeout_.count() % 1000) * 1000);
        ::setsockopt(request_.ipcFd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    }
}

std::optional<std::string_view> FcgiTransport::param(std::string_view name) const {
    const char* v = FCGX_GetParam(std::string(name).c_str(), request_.envp);
    if (!v) return std::nullopt;
    return std::string_view(v);
}

void FcgiTransport::write(const char* data, std::size_t n) {
    const bool timed = send_timeout_.count() > 0 && request_.ipcFd >= 0;
    while (n > 0) {
        if (timed) {
            pollfd p{request_.ipcFd, POLLOUT, 0};
            int rc;
            do {
                rc = ::poll(&p, 1, static_cast<int>(send_timeout_.count()));
            } while (rc < 0 && errno == EINTR);
            if (rc == 0) {
                stalled_ = true;
                throw ClientGone();
            }
        }
        const std::size_t chunk = n < kPiece ? n : kPiece;
        if (FCGX_PutStr(data, static_cast<int>(chunk), request_.out) != static_cast<int>(chunk)) {
            const int err = FCGX_GetError(request_.out);
            if (err == EAGAIN || err == EWOULDBLOCK) stalled_ = true;   // SO_SNDTIMEO
            throw ClientGone();
        }
        data += chunk;
        n -= chunk;
    }
}

}  // namespace medimg::fcgi
