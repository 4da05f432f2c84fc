// Configuration of the worker and the CLI (conf/medimg.ini): built-in defaults,
// the ini file, `.env`, the environment and command-line flags, checked once
// at start. A bad value throws Error(BadParameter) naming the key.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace medimg {

enum class SendfileHeader { None, XSendfile, XAccelRedirect };

// The effective configuration. Every field is one key of config_schema(),
// which holds its default: a default-constructed Config has those defaults.
struct Config {
    Config();

    // [paths]
    std::filesystem::path data_root;
    std::filesystem::path cache_dir;        // empty: see default_cache_dir()
    std::filesystem::path label_dict;       // empty: {conf_dir}/vista3d_label_dict.json
    std::filesystem::path label_colors;     // empty: {conf_dir}/vista3d_label_colors.json
    std::filesystem::path www_root;         // empty: {share_dir}/www
    // [server]
    std::string host;
    int port = 0;
    int workers = 0;        // worker processes (lighttpd max-procs, spawn-fcgi -F)
    int threads = 0;        // request threads per worker process
    bool dir_listing = false;
    // Allowed CORS origins, applied by the web server `medimg serve` renders
    // (the worker sends no CORS headers: docs/SECURITY.md, "CORS"); {"*"}
    // means any origin, without credentials; empty (the default) means no
    // CORS headers at all.
    std::vector<std::string> cors_origins;
    // [filter]
    int gzip_level = 0;     // 1..9, as nibabel writes
    // [cache]
    bool cache_enabled = false;
    std::uint64_t cache_max_bytes = 0;
    // The one group besides the owner that may read cache entries (the web
    // server's, for X-Sendfile); empty: nobody.
    std::string cache_group;
    SendfileHeader sendfile_header = SendfileHeader::None;
    // [limits]
    std::uint64_t max_voxels = 0;
    std::uint64_t max_label_ids = 0;
    // Histogram bins one intensity-statistics request may hold (8 bytes each).
    std::uint64_t max_intensity_bins = 0;
    int max_queue = 0;      // accepted requests waiting for a thread before 503
    // How long one request may read image data; 0: no limit.
    std::chrono::milliseconds request_timeout{0};
    // How long a streamed answer may wait for the client to take more bytes
    // before the request is aborted; 0: no limit.
    std::chrono::milliseconds send_timeout{0};

    // Where the values came from, for diagnostics: "section.key" → source
    // ("default", "ini FILE", ".env NAME", "environment NAME", "flag").
    std::map<std::string, std::string> origin;
};

// The one declaration of every configuration key (conf/medimg.ini): parsing,
// validation, the MEDIMG_* names, the defaults, what `medimg serve` passes
// its workers and the documented conf/medimg.ini all come from this table
// (tests/unit/config_test.cpp checks the ini against it).
enum class KeyType {
    Path,      // relative: against the ini's directory (ini) or the working directory
    Text,      // trimmed; `forbidden` characters refused
    Integer,   // whole number in [min, max]
    Boolean,   // true/false, yes/no, on/off, 1/0
    Size,      // bytes, with optional K/M/G/T suffix (powers of 1024), in [min, max]
    Seconds,   // decimals allowed, in [min, max]
    Origins,   // space/comma-separated scheme://host[:port], or "*"
    Choice,    // one of `choices` ("A|B|c"), matched case-insensitively
};

// The Config member a key sets.
using ConfigField =
    std::variant<std::filesystem::path Config::*, std::string Config::*, int Config::*,
                 bool Config::*, std::uint64_t Config::*, std::vector<std::string> Config::*,
                 SendfileHeader Config::*, std::chrono::milliseconds Config::*>;

struct ConfigKey {
    std::string_view section;
    std::string_view name;
    std::string_view env;             // environment and .env name
    KeyType type;
    ConfigField field;
    std::string_view default_value;   // as written in the ini; "" = empty
    std::int64_t min = 0;             // Integer, Size, Seconds
    std::int64_t max = 0;
    std::string_view choices = {};    // Choice
    std::string_view forbidden = {};  // Text
    bool required = false;            // Path, Text: empty refused
    std::string_view help = {};       // one sentence
};

const std::vector<ConfigKey>& config_schema();
// The schema row of "section.key"; nullptr when there is none.
const ConfigKey* find_config_key(std::string_view section, std::string_view name);

// The value of one key as text that set_config_value() reads back to the
// same value (sizes in bytes, booleans true/false, origins space-separated).
std::string config_value_text(const Config& config, const ConfigKey& key);

// Every key as its environment name and config_value_text(): what a process
// needs to run with exactly `config` (`medimg serve` gives it to its workers).
std::vector<std::pair<std::string, std::string>> config_environment(const Config& config);

// Everything load_config() reads, passed in so tests and callers control it.
struct ConfigSources {
    std::optional<std::filesystem::path> ini_file;   // none: no ini
    // Process environment (see environment_map()); MEDIMG_CONFIG names the
    // ini file when ini_file is unset.
    std::map<std::string, std::string> environment;
    // Directory holding `.env` (usually the working directory); none: skipped.
    std::optional<std::filesystem::path> dotenv_dir;
    // Command-line flags as "section.key" → value (e.g. "server.threads").
    std::map<std::string, std::string> flags;
    // Directory relative paths from the environment, `.env` and flags
    // resolve against (the working directory).
    std::filesystem::path working_dir = ".";
    // Where default label tables live (see find_data_dirs()); empty: no default.
    std::filesystem::path conf_dir;
    std::filesystem::path share_dir;
};

// Builds the effective configuration, precedence highest first: flags,
// environment, `.env`, ini, defaults. Environment names: each key's `env`
// in config_schema(); and the old server's OUTPUT_FOLDER (data_root) and
// IMAGE_SERVER (a URL: host and port), each below its MEDIMG_ twin. Relative paths in the ini resolve against the ini's
// directory. Throws Error(BadParameter) naming the key and the value (an
// unknown section or key in the ini too), Error(NotFound) for a missing ini.
Config load_config(const ConfigSources& sources);

// The cache directory used when none is configured, private to this user:
// $CACHE_DIRECTORY (systemd CacheDirectory=, its first entry), else
// $XDG_CACHE_HOME/medimg, else $HOME/.cache/medimg when that home belongs
// to this user, else {temp}/medimg-cache-{uid} (which the cache creates 0700
// and refuses when another user took it first). `environment` as in
// ConfigSources.
std::filesystem::path default_cache_dir(const std::map<std::string, std::string>& environment);

// Sets one "section.key" from text, exactly as load_config() does.
// Throws Error(BadParameter) naming the key and value.
void set_config_value(Config& config, std::string_view section, std::string_view key,
                      std::string_view value, const std::filesystem::path& relative_to);

// The known "section.key" names, in ini order.
const std::vector<std::string>& config_keys();

// The process environment as a map (reads `environ`; the caller decides
// whether to use it).
std::map<std::string, std::string> environment_map();

// Size with an optional binary suffix: "1048576", "512K", "64M", "2G", "1T"
// (also "KiB"/"MB"-style spellings, all powers of 1024). nullopt when malformed
// or overflowing.
std::optional<std::uint64_t> parse_size(std::string_view text);

// Project directories found from the running executable: the source tree
// of the build tree the library was compiled in, when the executable lies in
// that build tree (both named at compile time, lib/CMakeLists.txt); else a
// source tree (an ancestor holding conf/vista3d_label_dict.json); else an
// install prefix ({prefix}/bin → /etc/medimg or {prefix}/etc/medimg, and
// {prefix}/share/medimg).
struct DataDirs {
    std::filesystem::path conf_dir;    // label tables, medimg.ini
    std::filesystem::path share_dir;   // www/, lighttpd/, apache/
};
DataDirs find_data_dirs(const std::filesystem::path& executable);
// /proc/self/exe resolved; empty when unavailable.
std::filesystem::path current_executable();

}  // namespace medimg
