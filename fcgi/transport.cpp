// The libfcgi transport.
#include "transport.hpp"

#include <fcgiapp.h>

#include <climits>
#include <string>

namespace medimg::fcgi {

std::optional<std::string_view> FcgiTransport::param(std::string_view name) const {
    const char* v = FCGX_GetParam(std::string(name).c_str(), request_.envp);
    if (!v) return std::nullopt;
    return std::string_view(v);
}

void FcgiTransport::write(const char* data, std::size_t n) {
    while (n > 0) {
        int chunk = static_cast<int>(n > (1u << 30) ? (1u << 30) : n);
        if (FCGX_PutStr(data, chunk, request_.out) != chunk) throw ClientGone();
        data += chunk;
        n -= static_cast<std::size_t>(chunk);
    }
}

}  // namespace medimg::fcgi
