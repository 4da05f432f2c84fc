// An HTTP request as the web server hands it over in CGI parameters.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "transport.hpp"

namespace medimg::fcgi {

struct Request {
    std::string method;        // REQUEST_METHOD, upper case as sent
    std::string uri;           // REQUEST_URI as sent
    std::string path;          // raw (still percent-encoded) path part of uri
    std::string query;         // raw text after the first '?', without it
    std::string origin;        // HTTP_ORIGIN, or empty
    std::string if_none_match; // HTTP_IF_NONE_MATCH, or empty
    std::string access_control_request_method;   // preflight
    // MEDIMG_DATA_ROOT as the web server passes it (a FastCGI parameter its
    // configuration sets; a client cannot: request headers arrive as HTTP_*),
    // or empty. See data_root() in routes/routes.hpp.
    std::string server_data_root;

    // Routes on REQUEST_URI (docs/ARCHITECTURE.md), never SCRIPT_NAME/PATH_INFO.
    // Throws Error(BadPath) when REQUEST_URI is missing or not an
    // origin-form path ("/...").
    static Request from(const Transport& transport);
};

// Query "a=1&b=x%2Cy" into decoded (name, value) pairs in order; "+" is a
// space; a name without "=" has an empty value. Throws Error(BadParameter)
// on a malformed escape, NUL or invalid UTF-8.
std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query);

// The value of the last `name` in `params`, if any (later values win).
std::optional<std::string> query_value(
    const std::vector<std::pair<std::string, std::string>>& params, std::string_view name);

// True when an If-None-Match header value matches `etag` ("*", or a
// comma-separated list compared weakly, W/ prefixes ignored).
bool etag_matches(std::string_view if_none_match, std::string_view etag);

}  // namespace medimg::fcgi
