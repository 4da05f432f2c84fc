// CGI parameters into a Request; query strings; If-None-Match.
#include "request.hpp"

#include "error.hpp"
#include "fs/data_root.hpp"

namespace medimg::fcgi {

Request Request::from(const Transport& t) {
    Request r;
    auto get = [&](std::string_view name) {
        auto v = t.param(name);
        return v ? std::string(*v) : std::string();
    };
    r.method = get("REQUEST_METHOD");
    r.uri = get("REQUEST_URI");
    r.origin = get("HTTP_ORIGIN");
    r.if_none_match = get("HTTP_IF_NONE_MATCH");
    r.access_control_request_method = get("HTTP_ACCESS_CONTROL_REQUEST_METHOD");
    r.server_data_root = get("MEDIMG_DATA_ROOT");
    if (r.uri.empty() || r.uri.front() != '/')
        throw Error(ErrorCode::BadPath, "request URI is missing or not a path");
    auto q = r.uri.find('?');
    r.path = r.uri.substr(0, q);
    if (q != std::string::npos) r.query = r.uri.substr(q + 1);
    if (auto hash = r.query.find('#'); hash != std::string::npos) r.query.resize(hash);
    return r;
}

std::vector<std::pair<std::string, std::string>> parse_query(std::string_view query) {
    std::vector<std::pair<std::string, std::string>> out;
    auto decode = [](std::string_view s) {
        std::string plus(s);
        for (auto& c : plus)
            if (c == '+') c = ' ';
        try {
            return fs::percent_decode(plus);
        } catch (const Error& e) {
            throw Error(ErrorCode::BadParameter, std::string("malformed query string: ") + e.what());
        }
    };
    std::size_t pos = 0;
    while (pos <= query.size()) {
        auto amp = query.find('&', pos);
        std::string_view item = query.substr(pos, amp == std::string_view::npos ? query.npos : amp - pos);
        if (!item.empty()) {
            auto eq = item.find('=');
            if (eq == std::string_view::npos) out.emplace_back(decode(item), std::string());
            else out.emplace_back(decode(item.substr(0, eq)), decode(item.substr(eq + 1)));
        }
        if (amp == std::string_view::npos) break;
        pos = amp + 1;
    }
    return out;
}

std::optional<std::string> query_value(
    const std::vector<std::pair<std::string, std::string>>& params, std::string_view name) {
    std::optional<std::string> v;
    for (const auto& [k, value] : params)
        if (k == name) v = value;
    return v;
}

bool etag_matches(std::string_view header, std::string_view etag) {
    auto strip_weak = [](std::string_view s) {
        if (s.size() >= 2 && s.substr(0, 2) == "W/") s.remove_prefix(2);
        return s;
    };
    etag = strip_weak(etag);
    std::size_t pos = 0;
    while (pos < header.size()) {
        auto comma = header.find(',', pos);
        std::string_view item = header.substr(pos, comma == std::string_view::npos ? header.npos : comma - pos);
        while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
        while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
        if (item == "*" || (!item.empty() && strip_weak(item) == etag)) return true;
        if (comma == std::string_view::npos) break;
        pos = comma + 1;
    }
    return false;
}

}  // namespace medimg::fcgi
