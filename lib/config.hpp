// Configuration of the worker and the CLI (DESIGN.md §6): built-in defaults,
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
#include <vector>

namespace medimg {

enum class SendfileHeader { None, XSendfile, XAccelRedirect };

struct Config {
    // [paths]
    std::filesystem::path data_root = "output";
    std::filesystem::path cache_dir;        // empty: {temp}/medimg-cache-{uid}
    std::filesystem::path label_dict;       // empty: {conf_dir}/vista3d_label_dict.json
    std::filesystem::path label_colors;     // empty: {conf_dir}/vista3d_label_colors.json
    std::filesystem::path www_root;         // empty: {share_dir}/www
    // [server]
    std::string host = "localhost";
    int port = 8888;
    int workers = 2;        // worker processes (lighttpd max-procs, spawn-fcgi -F)
    int threads = 4;        // request threads per worker process
    bool dir_listing = true;
    // Allowed CORS origins, applied by the web server `medimg serve` renders
    // (the worker sends no CORS headers: docs/SECURITY.md, "CORS"); {"*"}
    // means any origin, without credentials; empty (the default) means no
    // CORS headers at all.
    std::vector<std::string> cors_origins;
    // [filter]
    int gzip_level = 1;     // 1..9, as nibabel writes
    // [cache]
    bool cache_enabled = true;
    std::uint64_t cache_max_bytes = 2ull << 30;
    SendfileHeader sendfile_header = SendfileHeader::None;
    // [limits]
    std::uint64_t max_voxels = 512ull * 512 * 2048;
    std::uint64_t max_label_ids = 100000;
    int max_queue = 64;     // accepted requests waiting for a thread before 503
    // How long one request may read image data (ini: seconds, decimals
    // allowed); 0: no limit.
    std::chrono::milliseconds request_timeout{120000};
    // How long a streamed answer may wait for the client to take more bytes
    // before the request is aborted (ini: seconds, decimals allowed); 0: no
    // limit.
    std::chrono::milliseconds send_timeout{30000};

    // Where the values came from, for diagnostics: "section.key" → source
    // ("default", "ini FILE:LINE", ".env", "environment NAME", "flag").
    std::map<std::string, std::string> origin;
};

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
// environment, `.env`, ini, defaults. Environment names: MEDIMG_DATA_ROOT,
// MEDIMG_CACHE_DIR, MEDIMG_LABEL_DICT, MEDIMG_LABEL_COLORS, MEDIMG_WWW_ROOT,
// MEDIMG_HOST, MEDIMG_PORT, MEDIMG_WORKERS, MEDIMG_THREADS, MEDIMG_DIR_LISTING,
// MEDIMG_CORS_ORIGINS, MEDIMG_GZIP_LEVEL, MEDIMG_CACHE_ENABLED,
// MEDIMG_CACHE_MAX_BYTES, MEDIMG_SENDFILE_HEADER, MEDIMG_MAX_VOXELS,
// MEDIMG_MAX_LABEL_IDS, MEDIMG_MAX_QUEUE, MEDIMG_REQUEST_TIMEOUT,
// MEDIMG_SEND_TIMEOUT; and the old server's OUTPUT_FOLDER (data_root) and
// IMAGE_SERVER (a URL: host and port), each below its MEDIMG_ twin. Relative paths in the ini resolve against the ini's
// directory. Throws Error(BadParameter) naming the key and the value (an
// unknown section or key in the ini too), Error(NotFound) for a missing ini.
Config load_config(const ConfigSources& sources);

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

// Project directories found from the running executable: a build tree (an
// ancestor holding conf/vista3d_label_dict.json, or a CMakeCache.txt naming
// the source), else an install prefix ({prefix}/bin → /etc/medimg or
// {prefix}/etc/medimg, and {prefix}/share/medimg).
struct DataDirs {
    std::filesystem::path conf_dir;    // label tables, medimg.ini
    std::filesystem::path share_dir;   // www/, lighttpd/, apache/
};
DataDirs find_data_dirs(const std::filesystem::path& executable);
// /proc/self/exe resolved; empty when unavailable.
std::filesystem::path current_executable();

}  // namespace medimg
