// Filling lighttpd/medimg-serve.conf.in (see lighttpd_conf.hpp).
#include "lighttpd_conf.hpp"

#include "error.hpp"

namespace medimg::cli {
namespace {

bool is_placeholder_name(std::string_view name) {
    if (name.empty()) return false;
    for (char c : name)
        if (!((c >= 'A' && c <= 'Z') || c == '_')) return false;
    return true;
}

std::string join(const std::vector<std::string>& items, const char* sep) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
    return out;
}

// A path that goes into bin-path, which lighttpd splits at spaces.
std::string command_word(const std::filesystem::path& path, std::string_view what) {
    const std::string s = path.string();
    if (s.find(' ') != std::string::npos)
        throw Error(ErrorCode::BadParameter,
                    std::string(what) + ": a path with spaces cannot start the workers: " + s);
    return lighttpd_string(s, what);
}

std::string worker_command(const LighttpdSettings& s) {
    std::string command = command_word(s.worker_binary, "medimg-fcgi") + " --threads " +
                          std::to_string(s.worker_threads);
    if (s.worker_config) command += " --config " + command_word(*s.worker_config, "--config");
    return command;
}

// One `"NAME" => "value",` line per variable, the last without its newline.
std::string worker_environment(const LighttpdSettings& s) {
    std::string lines;
    for (const auto& [name, value] : s.worker_environment)
        lines += "    \"" + lighttpd_string(name, name) + "\" => \"" + lighttpd_string(value, name) + "\",\n";
    if (!lines.empty()) lines.pop_back();
    return lines;
}

}  // namespace

std::string lighttpd_string(const std::string& value, std::string_view what) {
    for (unsigned char c : value)
        if (c == '"' || c == '\\' || c < 0x20 || c == 0x7f)
            throw Error(ErrorCode::BadParameter,
                        std::string(what) + ": characters lighttpd's configuration cannot hold: " + value);
    return value;
}

std::string fill_placeholders(std::string_view text, const std::map<std::string, std::string>& values) {
    std::string out;
    out.reserve(text.size());
    std::size_t from = 0;
    for (std::size_t at = text.find('@'); at != std::string_view::npos; at = text.find('@', from)) {
        const std::size_t end = text.find('@', at + 1);
        if (end == std::string_view::npos) break;
        const std::string_view name = text.substr(at + 1, end - at - 1);
        if (!is_placeholder_name(name)) {
            out.append(text.substr(from, at + 1 - from));   // a lone '@' is text
            from = at + 1;
            continue;
        }
        const auto value = values.find(std::string(name));
        if (value == values.end())
            throw Error(ErrorCode::Internal, "lighttpd template: unknown placeholder @" + std::string(name) + "@");
        out.append(text.substr(from, at - from));
        out += value->second;
        from = end + 1;
    }
    out.append(text.substr(from));
    return out;
}

std::string render_lighttpd_conf(std::string_view template_text, const LighttpdSettings& s) {
    const bool ipv6 = s.bind.find(':') != std::string::npos;
    const std::map<std::string, std::string> values = {
        // lighttpd 1.4.69 takes an IPv6 address in brackets, without server.use-ipv6.
        {"HOST", lighttpd_string(ipv6 ? "[" + s.bind + "]" : s.bind, "server.host")},
        {"PORT", std::to_string(s.port)},
        {"RUNTIME_DIR", lighttpd_string(s.runtime_dir.string(), "runtime directory")},
        {"ACCESS_LOG", s.access_log ? "/dev/stderr" : "/dev/null"},
        {"DATA_ROOT", lighttpd_string(s.data_root.string(), "data root")},
        {"WWW_ROOT", lighttpd_string(s.www_root.string(), "paths.www_root")},
        {"LIGHTTPD_DIR", lighttpd_string(s.lighttpd_dir.string(), "share directory")},
        {"CACHE_DIR", lighttpd_string(s.cache_dir.string(), "paths.cache_dir")},
        {"DIR_LISTING", s.dir_listing ? "enable" : "disable"},
        // lighttpd/cors.lua applies the allow-list; empty: no CORS headers.
        {"CORS_ORIGINS", lighttpd_string(join(s.cors_origins, " "), "server.cors_origins")},
        {"SOCKET", lighttpd_string(s.socket.string(), "socket")},
        {"WORKER_COMMAND", worker_command(s)},
        {"WORKERS", std::to_string(s.workers)},
        {"WORKER_ENVIRONMENT", worker_environment(s)},
    };
    return fill_placeholders(template_text, values);
}

}  // namespace medimg::cli
