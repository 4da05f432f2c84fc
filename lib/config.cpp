// Configuration loading: defaults < ini < .env < environment < flags.
#include "config.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <fstream>
#include <limits>
#include <system_error>
#include <type_traits>
#include <variant>

#include <ini.h>

#include "error.hpp"

extern char** environ;

namespace medimg {
namespace {

namespace stdfs = std::filesystem;


using P = stdfs::path Config::*;

}  // namespace

// The schema. Order: the ini's order. Defaults are written here only.
const std::vector<ConfigKey>& config_schema() {
    static const std::vector<ConfigKey> schema = {
    {.section = "paths", .name = "data_root", .env = "MEDIMG_DATA_ROOT", .type = KeyType::Path,
     .field = P{&Config::data_root}, .default_value = "output", .required = true,
     .help = "per-patient tree {patient_id}/{nifti,scans,voxels/{scan}/original}/"},
    {.section = "paths", .name = "cache_dir", .env = "MEDIMG_CACHE_DIR", .type = KeyType::Path,
     .field = P{&Config::cache_dir}, .default_value = "",
     .help = "computed results; default {temp}/medimg-cache-{uid}"},
    {.section = "paths", .name = "label_dict", .env = "MEDIMG_LABEL_DICT", .type = KeyType::Path,
     .field = P{&Config::label_dict}, .default_value = "",
     .help = "label names {\"name\": id}; default the VISTA3D table in conf/"},
    {.section = "paths", .name = "label_colors", .env = "MEDIMG_LABEL_COLORS",
     .type = KeyType::Path, .field = P{&Config::label_colors}, .default_value = "",
     .help = "label colours; default the VISTA3D table in conf/"},
    {.section = "paths", .name = "www_root", .env = "MEDIMG_WWW_ROOT", .type = KeyType::Path,
     .field = P{&Config::www_root}, .default_value = "",
     .help = "the viewer and listing styles; default www/ next to conf/"},
    {.section = "server", .name = "host", .env = "MEDIMG_HOST", .type = KeyType::Text,
     .field = &Config::host, .default_value = "localhost", .forbidden = " /\t",
     .required = true, .help = "the one address `medimg serve` binds"},
    {.section = "server", .name = "port", .env = "MEDIMG_PORT", .type = KeyType::Integer,
     .field = &Config::port, .default_value = "8888", .min = 1, .max = 65535,
     .help = "TCP port of `medimg serve`"},
    {.section = "server", .name = "workers", .env = "MEDIMG_WORKERS", .type = KeyType::Integer,
     .field = &Config::workers, .default_value = "2", .min = 1, .max = 256,
     .help = "worker processes"},
    {.section = "server", .name = "threads", .env = "MEDIMG_THREADS", .type = KeyType::Integer,
     .field = &Config::threads, .default_value = "4", .min = 1, .max = 256,
     .help = "request threads in each worker process"},
    {.section = "server", .name = "dir_listing", .env = "MEDIMG_DIR_LISTING",
     .type = KeyType::Boolean, .field = &Config::dir_listing, .default_value = "true",
     .help = "directory listings under /output/"},
    {.section = "server", .name = "cors_origins", .env = "MEDIMG_CORS_ORIGINS",
     .type = KeyType::Origins, .field = &Config::cors_origins, .default_value = "",
     .help = "CORS allow-list applied by `medimg serve`; empty: no CORS headers"},
    {.section = "filter", .name = "gzip_level", .env = "MEDIMG_GZIP_LEVEL",
     .type = KeyType::Integer, .field = &Config::gzip_level, .default_value = "1", .min = 1,
     .max = 9, .help = "gzip level of filtered .nii.gz results (1 is what nibabel writes)"},
    {.section = "cache", .name = "enabled", .env = "MEDIMG_CACHE_ENABLED",
     .type = KeyType::Boolean, .field = &Config::cache_enabled, .default_value = "true",
     .help = "keep computed results in cache_dir"},
    {.section = "cache", .name = "max_bytes", .env = "MEDIMG_CACHE_MAX_BYTES",
     .type = KeyType::Size, .field = &Config::cache_max_bytes, .default_value = "2G",
     .min = 0, .max = INT64_MAX, .help = "upper bound of the cache directory"},
    {.section = "cache", .name = "group", .env = "MEDIMG_CACHE_GROUP", .type = KeyType::Text,
     .field = &Config::cache_group, .default_value = "", .forbidden = " \t:/",
     .help = "the group besides the owner that may read cached results; empty: nobody"},
    {.section = "cache", .name = "sendfile_header", .env = "MEDIMG_SENDFILE_HEADER",
     .type = KeyType::Choice, .field = &Config::sendfile_header, .default_value = "none",
     .choices = "none|X-Sendfile|X-Accel-Redirect",
     .help = "how the web server is told to send a cached result"},
    {.section = "limits", .name = "max_voxels", .env = "MEDIMG_MAX_VOXELS",
     .type = KeyType::Size, .field = &Config::max_voxels, .default_value = "536870912",
     .min = 1, .max = INT64_MAX, .help = "largest image accepted, in voxels"},
    {.section = "limits", .name = "max_label_ids", .env = "MEDIMG_MAX_LABEL_IDS",
     .type = KeyType::Integer, .field = &Config::max_label_ids, .default_value = "100000",
     .min = 1, .max = 1ll << 40, .help = "most distinct label ids one request selects"},
    {.section = "limits", .name = "max_intensity_bins", .env = "MEDIMG_MAX_INTENSITY_BINS",
     .type = KeyType::Integer, .field = &Config::max_intensity_bins, .default_value = "2097152",
     .min = 1024, .max = 1ll << 27,
     .help = "histogram bins (8 bytes each) one intensity-statistics request may hold"},
    {.section = "limits", .name = "max_queue", .env = "MEDIMG_MAX_QUEUE",
     .type = KeyType::Integer, .field = &Config::max_queue, .default_value = "64", .min = 0,
     .max = 100000, .help = "requests waiting for a thread before 503"},
    {.section = "limits", .name = "request_timeout", .env = "MEDIMG_REQUEST_TIMEOUT",
     .type = KeyType::Seconds, .field = &Config::request_timeout, .default_value = "120",
     .min = 0, .max = 86400, .help = "seconds one request may read image data; 0: no limit"},
    {.section = "limits", .name = "send_timeout", .env = "MEDIMG_SEND_TIMEOUT",
     .type = KeyType::Seconds, .field = &Config::send_timeout, .default_value = "30",
     .min = 0, .max = 86400,
     .help = "seconds a streamed answer may wait for the client; 0: no limit"},
    };
    return schema;
}

namespace {

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

std::int64_t parse_integer(std::string_view section, std::string_view key,
                           std::string_view text, std::int64_t lo, std::int64_t hi) {
    std::string t = trim(text);
    std::int64_t v{};
    auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (t.empty() || ec != std::errc() || p != t.data() + t.size())
        bad(section, key, text, "not an integer");
    if (v < lo || v > hi)
        bad(section, key, text,
            "out of range " + std::to_string(lo) + ".." + std::to_string(hi));
    return v;
}

// Seconds, decimals allowed ("0.5"), 0 to 86400.
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
        c.port = static_cast<int>(parse_integer("server", "IMAGE_SERVER", port, 1, 65535));
        c.origin["server.port"] = "environment IMAGE_SERVER";
    }
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
    for (const auto& row : config_schema()) {
        auto it = env.find(std::string(row.env));
        if (it == env.end()) continue;
        set_config_value(c, row.section, row.name, it->second, relative_to);
        c.origin[std::string(row.section) + "." + std::string(row.name)] =
            label + " " + std::string(row.env);
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
        if (!find_config_key(section, name)) {
            bool known_section = false;
            for (const auto& row : config_schema()) known_section |= std::string_view(section) == row.section;
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
        for (const auto& row : config_schema())
            k.push_back(std::string(row.section) + "." + std::string(row.name));
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

const ConfigKey* find_config_key(std::string_view section, std::string_view name) {
    for (const auto& row : config_schema())
        if (section == row.section && name == row.name) return &row;
    return nullptr;
}

void set_config_value(Config& c, std::string_view section, std::string_view key,
                      std::string_view value, const stdfs::path& relative_to) {
    const ConfigKey* row = find_config_key(section, key);
    if (!row)
        throw Error(ErrorCode::BadParameter, "configuration: unknown key [" +
                                                 std::string(section) + "] " + std::string(key));
    const std::string t = trim(value);
    std::visit(
        [&](auto member) {
            using T = std::remove_reference_t<decltype(c.*member)>;
            T& field = c.*member;
            if constexpr (std::is_same_v<T, stdfs::path>) {
                field = parse_path(section, key, value, relative_to);
                if (row->required && field.empty()) bad(section, key, value, "empty path");
            } else if constexpr (std::is_same_v<T, std::string>) {
                if ((row->required && t.empty()) ||
                    (!row->forbidden.empty() && t.find_first_of(row->forbidden) != std::string::npos))
                    bad(section, key, value,
                        row->name == "host" ? "not a host name or address"
                                            : "not a group name or number");
                field = t;
            } else if constexpr (std::is_same_v<T, bool>) {
                field = parse_bool(section, key, value);
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                field = parse_origins(section, key, value);
            } else if constexpr (std::is_same_v<T, SendfileHeader>) {
                // Choices in the order of the enum.
                const std::string v = lower(t);
                std::size_t index = 0, pos = 0;
                std::string_view choices = row->choices;
                for (;;) {
                    const auto bar = choices.find('|', pos);
                    const std::string choice(choices.substr(pos, bar - pos));
                    if (lower(choice) == v || (v.empty() && row->default_value == choice)) break;
                    if (bar == std::string_view::npos) {
                        std::string list(choices);
                        for (auto& ch : list)
                            if (ch == '|') ch = ',';
                        bad(section, key, value, "expected one of " + list);
                    }
                    pos = bar + 1;
                    ++index;
                }
                constexpr SendfileHeader order[] = {SendfileHeader::None, SendfileHeader::XSendfile,
                                                    SendfileHeader::XAccelRedirect};
                field = order[index];
            } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
                char* end = nullptr;
                const double secs = t.empty() ? -1 : std::strtod(t.c_str(), &end);
                if (t.empty() || end != t.c_str() + t.size() ||
                    !(secs >= static_cast<double>(row->min) && secs <= static_cast<double>(row->max)))
                    bad(section, key, value,
                        "expected seconds from " + std::to_string(row->min) + " to " +
                            std::to_string(row->max));
                field = std::chrono::milliseconds(static_cast<std::int64_t>(secs * 1000 + 0.5));
            } else if (row->type == KeyType::Size) {
                auto v = parse_size(value);
                if (!v || *v < static_cast<std::uint64_t>(row->min) ||
                    *v > static_cast<std::uint64_t>(row->max))
                    bad(section, key, value,
                        row->min > 0 ? "not a positive count"
                                     : "not a size (bytes, or with suffix K, M, G, T)");
                field = static_cast<T>(*v);
            } else {
                field = static_cast<T>(parse_integer(section, key, value, row->min, row->max));
            }
        },
        row->field);
}

std::string config_value_text(const Config& c, const ConfigKey& row) {
    return std::visit(
        [&](auto member) -> std::string {
            using T = std::remove_cvref_t<decltype(c.*member)>;
            const T& field = c.*member;
            if constexpr (std::is_same_v<T, stdfs::path>) {
                return field.string();
            } else if constexpr (std::is_same_v<T, std::string>) {
                return field;
            } else if constexpr (std::is_same_v<T, bool>) {
                return field ? "true" : "false";
            } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
                std::string out;
                for (const auto& o : field) out += (out.empty() ? "" : " ") + o;
                return out;
            } else if constexpr (std::is_same_v<T, SendfileHeader>) {
                std::string_view choices = row.choices;
                for (int i = 0; i < static_cast<int>(field); ++i)
                    choices.remove_prefix(choices.find('|') + 1);
                return std::string(choices.substr(0, choices.find('|')));
            } else if constexpr (std::is_same_v<T, std::chrono::milliseconds>) {
                char buf[32];
                std::snprintf(buf, sizeof buf, "%.3f", static_cast<double>(field.count()) / 1000);
                std::string s = buf;
                while (s.back() == '0') s.pop_back();
                if (s.back() == '.') s.pop_back();
                return s;
            } else {
                return std::to_string(field);
            }
        },
        row.field);
}

std::vector<std::pair<std::string, std::string>> config_environment(const Config& c) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& row : config_schema()) out.emplace_back(row.env, config_value_text(c, row));
    return out;
}

Config::Config() {
    for (const auto& row : config_schema()) {
        set_config_value(*this, row.section, row.name, row.default_value, {});
        origin[std::string(row.section) + "." + std::string(row.name)] = "default";
    }
}

Config load_config(const ConfigSources& src) {
    Config c;

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
    if (c.cache_dir.empty()) c.cache_dir = default_cache_dir(src.environment);
    return c;
}

stdfs::path default_cache_dir(const std::map<std::string, std::string>& environment) {
    auto absolute = [&](const char* name) -> stdfs::path {
        auto it = environment.find(name);
        if (it == environment.end()) return {};
        stdfs::path p = it->second.substr(0, it->second.find(':'));
        return p.is_absolute() ? p : stdfs::path();
    };
    if (auto p = absolute("CACHE_DIRECTORY"); !p.empty()) return p;
    if (auto p = absolute("XDG_CACHE_HOME"); !p.empty()) return p / "medimg";
    // A service user's home (www-data: /var/www) belongs to root and is no
    // place for a cache.
    if (auto home = absolute("HOME"); !home.empty() && home != "/") {
        struct stat st{};
        if (::stat(home.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == ::geteuid())
            return home / ".cache" / "medimg";
    }
    std::error_code ec;
    stdfs::path tmp = stdfs::temp_directory_path(ec);
    if (ec) tmp = "/tmp";
    return tmp / ("medimg-cache-" + std::to_string(::geteuid()));
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

namespace {

// True when `path` is `dir` or lies beneath it (both made canonical).
[[maybe_unused]] bool within(const stdfs::path& path, const stdfs::path& dir) {
    std::error_code ec;
    const stdfs::path p = stdfs::weakly_canonical(path, ec);
    if (ec) return false;
    const stdfs::path d = stdfs::weakly_canonical(dir, ec);
    if (ec || d.empty()) return false;
    return std::mismatch(p.begin(), p.end(), d.begin(), d.end()).second == d.end();
}

bool holds_label_tables(const stdfs::path& dir) {
    std::error_code ec;
    return stdfs::exists(dir / "conf" / "vista3d_label_dict.json", ec);
}

}  // namespace

DataDirs find_data_dirs(const stdfs::path& executable) {
    if (executable.empty()) return {};
    stdfs::path dir = executable.parent_path();
#if defined(MEDIMG_BUILT_IN) && defined(MEDIMG_BUILT_FROM)
    // A program of the build tree this library was compiled for (the build
    // system names both trees, lib/CMakeLists.txt) uses its source tree.
    if (within(dir, MEDIMG_BUILT_IN) && holds_label_tables(MEDIMG_BUILT_FROM))
        return {stdfs::path(MEDIMG_BUILT_FROM) / "conf", MEDIMG_BUILT_FROM};
#endif
    // A source tree: an ancestor holds the label tables.
    for (stdfs::path p = dir; !p.empty(); p = p.parent_path()) {
        if (holds_label_tables(p)) return {p / "conf", p};
        if (p == p.root_path()) break;
    }
    // Installed: {prefix}/bin/medimg-fcgi.
    stdfs::path prefix = dir.parent_path();
    stdfs::path conf = prefix == "/usr" ? stdfs::path("/etc/medimg") : prefix / "etc" / "medimg";
    return {conf, prefix / "share" / "medimg"};
}

}  // namespace medimg
