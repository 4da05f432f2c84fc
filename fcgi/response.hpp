// An answer: status, headers, and a body held in memory or in an open file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "error.hpp"
#include "transport.hpp"

namespace medimg::fcgi {

// An open descriptor closed when the last owner lets go.
class FileBody {
public:
    FileBody(int fd, std::uint64_t size) : fd_(fd), size_(size) {}
    ~FileBody();
    FileBody(const FileBody&) = delete;
    FileBody& operator=(const FileBody&) = delete;
    int fd() const noexcept { return fd_; }
    std::uint64_t size() const noexcept { return size_; }

private:
    int fd_;
    std::uint64_t size_;
};

struct Response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;                    // used when `file` is null
    std::shared_ptr<FileBody> file;      // streamed from offset 0

    void set_header(std::string_view name, std::string value);   // replaces
    void add_header(std::string_view name, std::string value);
    const std::string* header(std::string_view name) const;      // case-insensitive
    void remove_header(std::string_view name);

    static Response json(int status, std::string body);
    // {"detail": what(), "error": id} with the table's status.
    static Response error(const Error& e);
};

// The reason phrase of a status ("Not Found"); "Unknown" for others.
std::string_view reason_phrase(int status) noexcept;

// Writes "Status: NNN Reason", the headers, a blank line, then the body
// unless `head_only` (HEAD, or statuses that carry none: 204, 304).
// Content-Length is added for bodies the worker sends itself, unless an
// X-Sendfile / X-Accel-Redirect header hands the body to the web server.
// Header names/values with CR, LF or NUL throw Error(Internal) before
// anything is written. Throws ClientGone from the transport.
void write_response(Transport& out, const Response& response, bool head_only);

}  // namespace medimg::fcgi
