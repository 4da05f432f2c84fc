// Configuration loading: defaults < ini < .env < environment < flags.
#include "config.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <limits>
#include <system_error>

#include <ini.h>

#include "error.hpp"

extern char** environ;

namespace medimg {
namespace {

namespace stdfs = std::filesystem;

struct KeyRow {
    const char* section;
    const char* key;
    const char* env;   // MEDIMG_ name
};

constexpr std::array kKeys = {
    KeyRow{"paths", "data_root", "MEDIMG_DATA_ROOT"},
    KeyRow{"paths", "cache_dir", "MEDIMG_CACHE_DIR"},
    KeyRow{"paths", "label_dict", "MEDIMG_LABEL_DICT"},
    KeyRow{"paths", "label_colors", "MEDIMG_LABEL_COLORS"},
    KeyRow{"paths", "www_root", "MEDIMG_WWW_ROOT"},
    KeyRow{"server", "host", "MEDIMG_HOST"},
    KeyRow{"server", "port", "MEDIMG_PORT"},
    KeyRow{"server", "workers", "MEDIMG_WORKERS"},
    KeyRow{"server", "threads", "MEDIMG_THREADS"},
    KeyRow{"server", "dir_listing", "MEDIMG_DIR_LISTING"},
    KeyRow{"server", "cors_origins", "MEDIMG_CORS_ORIGINS"},
    KeyRow{"filter", "gzip_level", "MEDIMG_GZIP_LEVEL"},
    KeyRow{"cache", "enabled", "MEDIMG_CACHE_ENABLED"},
    KeyRow{"cache", "max_bytes", "MEDIMG_CACHE_MAX_BYTES"},
    KeyRow{"cache", "sendfile_header", "MEDIMG_SENDFILE_HEADER"},
    KeyRow{"limits", "max_voxels", "MEDIMG_MAX_VOXELS"},
    KeyRow{"limits", "max_label_ids", "MEDIMG_MAX_LABEL_IDS"},
    KeyRow{"limits", "max_queue", "MEDIMG_MAX_QUEUE"},
    KeyRow{"limits", "request_timeout", "MEDIMG_REQUEST_TIMEOUT"},
    KeyRow{"limits", "send_timeout", "MEDIMG_SEND_TIMEOUT"},
};

std::string trim(std::string_view s) {
    auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string_view::npos) return {};
    auto e = s.find_last_not_of(" \t\r\n");
    return std::string(s.substr(b, e - b + 1));
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (auto& c : out) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    return out;
}

[[noreturn]] void bad(std::string_view section, std::string_view key, std::string_view value,
                      std::string_view why) {
    throw Error(ErrorCode::BadParameter, "configuration: [" + std::string(section) + "] " +
                                             std::string(key) + " = \"" + std::string(value) +
                                             "\": " + std::string(why));
}

template <typename T>
T parse_int(std::string_view section, std::string_view key, std::string_view text, T lo, T hi) {
    std::string t = trim(text);
    T v{};
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || p != t.data() + t.size())
        bad(section, key, text, "not an integer");
    if (v < lo || v > hi)
        bad(section, key, text,
            "out of range " + std::to_string(lo) + ".." + std::to_string(hi));
    return v;
}

// Seconds, decimals allowed ("0.5"), 0 to 86400.
std::chrono::milliseconds parse_seconds(std::string_view section, std::string_view key,
                                        std::string_view text) {
    const std::string v = trim(text);
    char* end = nullptr;
    const double secs = v.empty() ? -1 : std::strtod(v.c_str(), &end);
    if (v.empty() || end != v.c_str() + v.size() || !(secs >= 0 && secs <= 86400))
        bad(section, key, text, "expected seconds from 0 to 86400");
    return std::chrono::milliseconds(static_cast<std::int64_t>(secs * 1000 + 0.5));
}

bool parse_bool(std::string_view section, std::string_view key, std::string_view text) {
    std::string t = lower(trim(text));
    if (t == "1" || t == "true" || t == "yes" || t == "on" || t == "enable") return true;
    if (t == "0" || t == "false" || t == "no" || t == "off" || t == "disable") return false;
    bad(section, key, text, "not a boolean (true/false, yes/no, on/off, 1/0)");
}

stdfs::path parse_path(std::string_view section, std::string_view key, std::string_view text,
                       const stdfs::path& relative_to) {
    std::string t = trim(text);
    if (t.find('\0') != std::string::npos) bad(section, key, text, "NUL in path");
    if (t.empty()) return {};
    stdfs::path p(t);
    if (p.is_relative() && !relative_to.empty()) p = relative_to / p;
    return p.lexically_normal();
}

std::vector<std::string> parse_origins(std::string_view section, std::string_view key,
                                       std::string_view text) {
    std::vector<std::string> out;
    std::string t(text);
    for (char& c : t)
        if (c == ',' || c == '\t') c = ' ';
    std::size_t pos = 0;
    while (pos < t.size()) {
        auto b = t.find_first_not_of(' ', pos);
        if (b == std::string::npos) break;
        auto e = t.find(' ', b);
        if (e == std::string::npos) e = t.size();
        std::string o = t.substr(b, e - b);
        pos = e;
        if (o == "*") {
            out.push_back(o);
            continue;
        }
        // An origin is scheme://host[:port], nothing more (no path, no slash).
        auto sep = o.find("://");
        if (sep == std::string::npos || sep == 0 || o.size() == sep + 3 ||
            o.find('/', sep + 3) != std::string::npos)
            bad(section, key, text, "origin \"" + o + "\" is not scheme://host[:port]");
        while (!o.empty() && o.back() == '/') o.pop_back();
        out.push_back(o);
    }
    if (std::find(out.begin(), out.end(), "*") != out.end() && out.size() > 1)
        bad(section, key, text, "\"*\" cannot be combined with other origins");
    return out;
}

// host and port from the old server's IMAGE_SERVER, e.g. "http://localhost:8888".
void apply_image_server(Config& c, std::string_view value) {
    std::string v = trim(value);
    auto sep = v.find("://");
    std::string rest = sep == std::string::npos ? v : v.substr(sep + 3);
    if (auto slash = rest.find('/'); slash != std::string::npos) rest.resize(slash);
    std::string host = rest, port;
    if (!rest.empty() && rest.front() == '[') {
        auto close = rest.find(']');
        if (close == std::string::npos) bad("server", "IMAGE_SERVER", value, "bad IPv6 host");
        host = rest.substr(1, close - 1);
        if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
    } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
    }
    if (host.empty()) bad("server", "IMAGE_SERVER", value, "no host");
    c.host = host;
    c.origin["server.host"] = "environment IMAGE_SERVER";
    if (!port.empty()) {
        c.port = parse_int<int>("server", "IMAGE_SERVER", port, 1, 65535);
        c.origin["server.port"] = "environment IMAGE_SERVER";
    }
}

const KeyRow* find_key(std::string_view section, std::string_view key) {
    for (const auto& row : kKeys)
        if (section == row.section && key == row.key) return &row;
    return nullptr;
}

// Applies MEDIMG_* and the old names from one KEY=VALUE map (environment or .env).
void apply_env_map(Config& c, const std::map<std::string, std::string>& env,
                   const stdfs::path& relative_to, const std::string& label) {
    // The old server's names first, so the MEDIMG_ twins win.
    if (auto it = env.find("OUTPUT_FOLDER"); it != env.end() && !trim(it->second).empty()) {
        set_config_value(c, "paths", "data_root", it->second, relative_to);
        c.origin["paths.data_root"] = label + " OUTPUT_FOLDER";
    }
    if (auto it = env.find("IMAGE_SERVER"); it != env.end() && !trim(it->second).empty())
        apply_image_server(c, it->second);
    for (const auto& row : kKeys) {
        auto it = env.find(row.env);
        if (it == env.end()) continue;
        set_config_value(c, row.section, row.key, it->second, relative_to);
        c.origin[std::string(row.section) + "." + row.key] = label + " " + row.env;
    }
}

std::map<std::string, std::string> read_dotenv(const stdfs::path& file) {
    std::map<std::string, std::string> out;
    std::ifstream in(file);
    if (!in) return out;
    std::string line;
    int lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        std::string t = trim(line);
        if (t.empty() || t[0] == '#') continue;
        if (t.rfind("export ", 0) == 0) t = trim(t.substr(7));
        auto eq = t.find('=');
        if (eq == std::string::npos || eq == 0)
            throw Error(ErrorCode::BadParameter, file.string() + ":" + std::to_string(lineno) +
                                                     ": expected KEY=VALUE");
        std::string key = trim(t.substr(0, eq));
        std::string value = trim(t.substr(eq + 1));
        if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') &&
            value.back() == value.front())
            value = value.substr(1, value.size() - 2);
        out[key] = value;
    }
    return out;
}

struct IniState {
    Config* config;
    stdfs::path dir;
    std::string file;
    std::string error;
    int line = 0;
};

int ini_handler(void* user, const char* section, const char* name, const char* value
#if INI_HANDLER_LINENO
                ,
                int lineno
#endif
) {
    auto* st = static_cast<IniState*>(user);
    try {
        if (!find_key(section, name)) {
            bool known_section = false;
            for (const auto& row : kKeys) known_section |= std::string_view(section) == row.section;
            throw Error(ErrorCode::BadParameter,
                        "configuration: " +
                            (known_section ? "unknown key \"" + std::string(name) +
                                                 "\" in section [" + section + "]"
                                           : "unknown section [" + std::string(section) +
                                                 "] (key \"" + name + "\")"));
        }
        set_config_value(*st->config, section, name, value, st->dir);
        st->config->origin[std::string(section) + "." + name] = "ini " + st->file;
        return 1;
    } catch (const Error& e) {
        if (st->error.empty()) st->error = e.what();
        return 0;
    }
}

}  // namespace

const std::vector<std::string>& config_keys() {
    static const std::vector<std::string> keys = [] {
        std::vector<std::string> k;
        for (const auto& row : kKeys) k.push_back(std::string(row.section) + "." + row.key);
        return k;
    }();
    return keys;
}

std::optional<std::uint64_t> parse_size(std::string_view text) {
    std::string t = trim(text);
    std::uint64_t v = 0;
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || p == t.data()) return std::nullopt;
    std::string suffix = lower(trim(std::string_view(p, t.data() + t.size() - p)));
    int shift = 0;
    if (!suffix.empty()) {
        static const std::array<std::pair<char, int>, 5> units = {
            {{'k', 10}, {'m', 20}, {'g', 30}, {'t', 40}, {'p', 50}}};
        auto u = std::find_if(units.begin(), units.end(),
                              [&](auto& e) { return e.first == suffix[0]; });
        if (u == units.end()) return std::nullopt;
        std::string rest = suffix.substr(1);
        if (!(rest.empty() || rest == "b" || rest == "ib")) return std::nullopt;
        shift = u->second;
    }
    if (shift && v > (std::numeric_limits<std::uint64_t>::max() >> shift)) return std::nullopt;
    return v << shift;
}

void set_config_value(Config& c, std::string_view section, std::string_view key,
                      std::string_view value, const stdfs::path& relative_to) {
    if (!find_key(section, key))
        throw Error(ErrorCode::BadParameter, "configuration: unknown key [" +
                                                 std::string(section) + "] " + std::string(key));
    const std::string k = std::string(section) + "." + std::string(key);
    if (k == "paths.data_root") {
        c.data_root = parse_path(section, key, value, relative_to);
        if (c.data_root.empty()) bad(section, key, value, "empty path");
    } else if (k == "paths.cache_dir") {
        c.cache_dir = parse_path(section, key, value, relative_to);
    } else if (k == "paths.label_dict") {
        c.label_dict = parse_path(section, key, value, relative_to);
    } else if (k == "paths.label_colors") {
        c.label_colors = parse_path(section, key, value, relative_to);
    } else if (k == "paths.www_root") {
        c.www_root = parse_path(section, key, value, relative_to);
    } else if (k == "server.host") {
        std::string h = trim(value);
        if (h.empty() || h.find_first_of(" /\t") != std::string::npos)
            bad(section, key, value, "not a host name or address");
        c.host = h;
    } else if (k == "server.port") {
        c.port = parse_int<int>(section, key, value, 1, 65535);
    } else if (k == "server.workers") {
        c.workers = parse_int<int>(section, key, value, 1, 256);
    } else if (k == "server.threads") {
        c.threads = parse_int<int>(section, key, value, 1, 256);
    } else if (k == "server.dir_listing") {
        c.dir_listing = parse_bool(section, key, value);
    } else if (k == "server.cors_origins") {
        c.cors_origins = parse_origins(section, key, value);
    } else if (k == "filter.gzip_level") {
        c.gzip_level = parse_int<int>(section, key, value, 1, 9);
    } else if (k == "cache.enabled") {
        c.cache_enabled = parse_bool(section, key, value);
    } else if (k == "cache.max_bytes") {
        auto v = parse_size(value);
        if (!v) bad(section, key, value, "not a size (bytes, or with suffix K, M, G, T)");
        c.cache_max_bytes = *v;
    } else if (k == "cache.sendfile_header") {
        std::string v = lower(trim(value));
        if (v == "x-sendfile") c.sendfile_header = SendfileHeader::XSendfile;
        else if (v == "x-accel-redirect") c.sendfile_header = SendfileHeader::XAccelRedirect;
        else if (v == "none" || v.empty()) c.sendfile_header = SendfileHeader::None;
        else bad(section, key, value, "expected X-Sendfile, X-Accel-Redirect or none");
    } else if (k == "limits.max_voxels") {
        auto v = parse_size(value);   // plain counts; suffixes as powers of 1024
        if (!v || *v == 0) bad(section, key, value, "not a positive count");
        c.max_voxels = *v;
    } else if (k == "limits.max_label_ids") {
        c.max_label_ids = parse_int<std::uint64_t>(section, key, value, 1, 1ull << 40);
    } else if (k == "limits.max_queue") {
        c.max_queue = parse_int<int>(section, key, value, 0, 100000);
    } else if (k == "limits.request_timeout") {
        c.request_timeout = parse_seconds(section, key, value);
    } else if (k == "limits.send_timeout") {
        c.send_timeout = parse_seconds(section, key, value);
    }
}

Config load_config(const ConfigSources& src) {
    Config c;
    for (const auto& k : config_keys()) c.origin[k] = "default";

    std::optional<stdfs::path> ini = src.ini_file;
    if (!ini) {
        if (auto it = src.environment.find("MEDIMG_CONFIG");
            it != src.environment.end() && !it->second.empty())
            ini = src.working_dir / it->second;
    }
    if (ini) {
        stdfs::path file = src.working_dir / *ini;
        std::error_code ec;
        if (!stdfs::is_regular_file(file, ec))
            throw Error(ErrorCode::NotFound, "configuration file " + file.string() + " not found");
        IniState st{&c, file.parent_path(), file.string(), {}, 0};
        int rc = ini_parse(file.c_str(), ini_handler, &st);
        if (!st.error.empty())
            throw Error(ErrorCode::BadParameter,
                        file.string() + (rc > 0 ? ":" + std::to_string(rc) : "") + ": " + st.error);
        if (rc < 0)
            throw Error(ErrorCode::Io, "cannot read configuration file " + file.string());
        if (rc > 0)
            throw Error(ErrorCode::BadParameter,
                        file.string() + ":" + std::to_string(rc) + ": syntax error");
    }
    if (src.dotenv_dir) {
        stdfs::path dotenv = *src.dotenv_dir / ".env";
        auto map = read_dotenv(dotenv);
        apply_env_map(c, map, *src.dotenv_dir, ".env");
    }
    apply_env_map(c, src.environment, src.working_dir, "environment");
    for (const auto& [name, value] : src.flags) {
        auto dot = name.find('.');
        if (dot == std::string::npos)
            throw Error(ErrorCode::BadParameter, "configuration: bad flag key " + name);
        set_config_value(c, name.substr(0, dot), name.substr(dot + 1), value, src.working_dir);
        c.origin[name] = "flag";
    }

    // Defaults that depend on where the program lives.
    if (c.label_dict.empty() && !src.conf_dir.empty())
        c.label_dict = src.conf_dir / "vista3d_label_dict.json";
    if (c.label_colors.empty() && !src.conf_dir.empty())
        c.label_colors = src.conf_dir / "vista3d_label_colors.json";
    if (c.www_root.empty() && !src.share_dir.empty()) c.www_root = src.share_dir / "www";
    if (c.cache_dir.empty()) {
        std::error_code ec;
        stdfs::path tmp = stdfs::temp_directory_path(ec);
        if (ec) tmp = "/tmp";
        c.cache_dir = tmp / ("medimg-cache-" + std::to_string(::getuid()));
    }
    return c;
}

std::map<std::string, std::string> environment_map() {
    std::map<std::string, std::string> out;
    for (char** e = environ; e && *e; ++e) {
        std::string_view kv(*e);
        auto eq = kv.find('=');
        if (eq == std::string_view::npos) continue;
        out.emplace(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
    return out;
}

stdfs::path current_executable() {
    std::error_code ec;
    auto p = stdfs::read_symlink("/proc/self/exe", ec);
    return ec ? stdfs::path() : p;
}

DataDirs find_data_dirs(const stdfs::path& executable) {
    std::error_code ec;
    if (executable.empty()) return {};
    stdfs::path dir = executable.parent_path();
    // Build tree: the source root is an ancestor, or named by CMakeCache.txt.
    for (stdfs::path p = dir; !p.empty(); p = p.parent_path()) {
        if (stdfs::exists(p / "conf" / "vista3d_label_dict.json", ec))
            return {p / "conf", p};
        if (stdfs::exists(p / "CMakeCache.txt", ec)) {
            std::ifstream cache(p / "CMakeCache.txt");
            std::string line;
            const std::string prefix = "CMAKE_HOME_DIRECTORY:INTERNAL=";
            while (std::getline(cache, line))
                if (line.rfind(prefix, 0) == 0) {
                    stdfs::path src = line.substr(prefix.size());
                    if (stdfs::exists(src / "conf" / "vista3d_label_dict.json", ec))
                        return {src / "conf", src};
                }
        }
        if (p == p.root_path()) break;
    }
    // Installed: {prefix}/bin/medimg-fcgi.
    stdfs::path prefix = dir.parent_path();
    stdfs::path conf = prefix == "/usr" ? stdfs::path("/etc/medimg") : prefix / "etc" / "medimg";
    return {conf, prefix / "share" / "medimg"};
}

}  // namespace medimg
