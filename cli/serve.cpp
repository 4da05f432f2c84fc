// `medimg serve`: the embedded default server. Renders lighttpd's
// configuration from lighttpd/medimg-serve.conf.in into a private runtime
// directory, checks it (`lighttpd -tt`), runs `lighttpd -D` in the foreground
// with a medimg-fcgi worker pool (lighttpd's bin-path spawning), and on
// SIGINT/SIGTERM stops lighttpd and its workers and removes the directory.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cli_util.hpp"
#include "commands.hpp"
#include "config.hpp"
#include "error.hpp"

extern char** environ;

namespace medimg::cli {
namespace {

namespace fs = std::filesystem;

constexpr const char* kUsage =
    "usage: medimg serve [--host HOST] [--port PORT] [--disable-dir-listing]\n"
    "                    [--data-root DIR] [--workers N] [--threads N]\n"
    "                    [--config FILE] [--cache-dir DIR] [--cors-origins LIST] [--quiet]\n"
    "\n"
    "Serves DATA_ROOT with lighttpd and a medimg-fcgi worker pool:\n"
    "  /output/...                 the data root (static: Range, ETag, listings)\n"
    "  /filtered-scans/...         filtered label maps\n"
    "  /output/.../labels, /info   label and header JSON\n"
    "  /viewer.html?patient=ID     the NiiVue viewer\n"
    "A data root without patient folders gets a generated demo patient\n"
    "(medimg demo; MEDIMG_DEMO_SIZE=NXxNYxNZ overrides its 512x512x400).\n"
    "\n"
    "options (defaults from the environment, .env, the ini file, then built-in):\n"
    "  --host HOST             bind exactly this address (default localhost,\n"
    "                          which is 127.0.0.1 whatever the resolver says)\n"
    "  --port PORT             TCP port (default 8888; or IMAGE_SERVER=http://HOST:PORT)\n"
    "  --disable-dir-listing   no directory listings under /output/\n"
    "  --data-root DIR         per-patient tree (default ./output; or OUTPUT_FOLDER)\n"
    "  --workers N             worker processes (default 2)\n"
    "  --threads N             request threads per worker (default 4)\n"
    "  --config FILE           medimg.ini (default: $MEDIMG_CONFIG, else none)\n"
    "  --cache-dir DIR         filtered results (default: inside the runtime directory)\n"
    "  --cors-origins LIST     origins other pages may read from (space or comma\n"
    "                          separated), or \"*\" (any, without credentials);\n"
    "                          default none: no CORS headers\n"
    "  --quiet                 no access log on stderr\n";

const std::vector<OptionSpec> kOptions = {
    {"--host", true},      {"--port", true},      {"--disable-dir-listing", false},
    {"--data-root", true}, {"--workers", true},   {"--threads", true},
    {"--config", true},    {"--cache-dir", true}, {"--cors-origins", true},
    {"--quiet", false}};

// ---------------------------------------------------------------------------
// Rendering

// A value placed between double quotes in lighttpd's configuration. A value
// with quotes, backslashes or control characters is refused rather than
// risk lighttpd reading something else.
std::string conf_string(const std::string& value, std::string_view what) {
    for (unsigned char c : value)
        if (c == '"' || c == '\\' || c < 0x20 || c == 0x7f)
            throw Error(ErrorCode::BadParameter,
                        std::string(what) +
                            ": characters lighttpd's configuration cannot hold: " + value);
    return value;
}

// Replaces every @NAME@; a placeholder left over is a template bug.
std::string render(std::string text, const std::map<std::string, std::string>& values) {
    for (const auto& [name, value] : values) {
        const std::string key = "@" + name + "@";
        for (std::size_t at = text.find(key); at != std::string::npos;
             at = text.find(key, at + value.size()))
            text.replace(at, key.size(), value);
    }
    for (std::size_t at = text.find('@'); at != std::string::npos; at = text.find('@', at + 1)) {
        const auto end = text.find('@', at + 1);
        if (end == std::string::npos) break;
        const std::string name = text.substr(at + 1, end - at - 1);
        bool placeholder = !name.empty();
        for (char c : name) placeholder = placeholder && ((c >= 'A' && c <= 'Z') || c == '_');
        if (placeholder)
            throw Error(ErrorCode::Internal, "lighttpd template: unknown placeholder @" + name + "@");
    }
    return text;
}

std::string read_text(const fs::path& file) {
    std::ifstream in(file, std::ios::binary);
    if (!in) throw Error(ErrorCode::NotFound, "cannot read " + file.string());
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

void write_text(const fs::path& file, const std::string& text) {
    std::ofstream out(file, std::ios::binary | std::ios::trunc);
    out << text;
    out.close();
    if (!out) throw Error(ErrorCode::Io, "cannot write " + file.string());
}

// "localhost" and names under ".localhost" (any case, optional final dot):
// RFC 6761 §6.3 reserves them for loopback, to be answered without asking the
// resolver (a minimal root may have no /etc/hosts; DNS may say anything).
bool is_localhost_name(std::string host) {
    if (!host.empty() && host.back() == '.') host.pop_back();
    for (char& c : host) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    constexpr std::string_view name = "localhost";
    return host == name || (host.size() > name.size() + 1 && host.ends_with(".localhost"));
}

// The numeric address lighttpd binds: `host` resolved (localhost names →
// 127.0.0.1), IPv4 preferred. Only that address, never every interface.
std::string resolve_host(const std::string& host) {
    if (is_localhost_name(host)) return "127.0.0.1";
    for (int family : {AF_INET, AF_INET6}) {
        addrinfo hints{};
        hints.ai_family = family;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (::getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) continue;
        char text[INET6_ADDRSTRLEN] = {};
        const void* addr =
            family == AF_INET
                ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr)
                : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(res->ai_addr)->sin6_addr);
        ::inet_ntop(family, addr, text, sizeof text);
        ::freeaddrinfo(res);
        return text;
    }
    throw Error(ErrorCode::BadParameter, "server.host: cannot resolve " + host);
}

bool is_any_address(const std::string& numeric) { return numeric == "0.0.0.0" || numeric == "::"; }
bool is_ipv6(const std::string& numeric) { return numeric.find(':') != std::string::npos; }

std::string join(const std::vector<std::string>& items, const char* sep) {
    std::string out;
    for (const auto& s : items) out += (out.empty() ? "" : sep) + s;
    return out;
}

// Every key of the schema as MEDIMG_* variables (config_environment()), so
// the workers run with exactly the configuration resolved here (lighttpd
// starts them in the binary's directory, where the caller's `.env` is not),
// except the cache directory and the sendfile header, which serve decides.
// The worker sends no CORS headers whatever MEDIMG_CORS_ORIGINS says:
// lighttpd owns CORS (CORS_ORIGINS below; docs/SECURITY.md, "CORS").
std::vector<std::pair<std::string, std::string>> worker_environment(const Config& c,
                                                                    const fs::path& cache_dir) {
    Config worker = c;
    worker.cache_dir = cache_dir;
    // lighttpd sends cached results itself (Range, conditional GET).
    worker.sendfile_header = c.cache_enabled ? SendfileHeader::XSendfile : SendfileHeader::None;
    return config_environment(worker);
}

// ---------------------------------------------------------------------------
// Processes

fs::path find_program(const std::string& name, const std::vector<fs::path>& fallbacks) {
    if (const char* path = std::getenv("PATH")) {
        std::stringstream dirs(path);
        std::string dir;
        while (std::getline(dirs, dir, ':')) {
            if (dir.empty()) continue;
            const fs::path p = fs::path(dir) / name;
            if (::access(p.c_str(), X_OK) == 0) return p;
        }
    }
    for (const auto& p : fallbacks)
        if (::access(p.c_str(), X_OK) == 0) return p;
    return {};
}

// Runs argv with default signal handling and `child_mask`; stdin from
// /dev/null; stdout and stderr to `output_fd` when given, else ours.
pid_t spawn(const std::vector<std::string>& argv, const sigset_t& child_mask, bool new_group,
            int output_fd = -1) {
    std::vector<char*> cargv;
    for (const auto& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (new_group) flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setflags(&attr, flags);
    posix_spawnattr_setsigmask(&attr, &child_mask);
    sigset_t defaults;
    sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD, SIGPIPE}) sigaddset(&defaults, s);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    if (new_group) posix_spawnattr_setpgroup(&attr, 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (output_fd >= 0) {
        posix_spawn_file_actions_adddup2(&actions, output_fd, 1);
        posix_spawn_file_actions_adddup2(&actions, output_fd, 2);
    }
    pid_t pid = -1;
    const int rc = ::posix_spawn(&pid, cargv[0], &actions, &attr, cargv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) throw Error(ErrorCode::Io, "cannot run " + argv[0] + ": " + std::strerror(rc));
    return pid;
}

int wait_exit_code(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

// Children of this process (lighttpd, and its workers when lighttpd died
// first: we are their subreaper), zombies included.
std::vector<pid_t> own_children() {
    std::vector<pid_t> out;
    const long self = ::getpid();
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator("/proc", ec)) {
        const std::string name = entry.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream stat(entry.path() / "stat");
        std::string line;
        if (!std::getline(stat, line)) continue;
        const auto close = line.rfind(')');
        if (close == std::string::npos || close + 2 >= line.size()) continue;
        std::istringstream rest(line.substr(close + 2));
        char state = 0;
        long ppid = 0;
        rest >> state >> ppid;
        if (ppid == self) out.push_back(static_cast<pid_t>(std::stol(name)));
    }
    return out;
}

void reap(const std::vector<pid_t>& pids) {
    for (pid_t p : pids) ::waitpid(p, nullptr, WNOHANG);
}

// Stops every remaining child: SIGTERM, then SIGKILL after `grace`.
void stop_children(std::chrono::milliseconds grace) {
    auto children = own_children();
    for (pid_t p : children) ::kill(p, SIGTERM);
    const auto deadline = std::chrono::steady_clock::now() + grace;
    while (!children.empty() && std::chrono::steady_clock::now() < deadline) {
        reap(children);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        children = own_children();
    }
    for (pid_t p : children) ::kill(p, SIGKILL);
    for (pid_t p : children) ::waitpid(p, nullptr, 0);
}

bool port_answers(const std::string& numeric_host, int port) {
    addrinfo hints{};
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* res = nullptr;
    if (::getaddrinfo(numeric_host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0)
        return false;
    const int fd = ::socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool ok = fd >= 0 && ::connect(fd, res->ai_addr, res->ai_addrlen) == 0;
    if (fd >= 0) ::close(fd);
    ::freeaddrinfo(res);
    return ok;
}

bool has_patient_folders(const fs::path& root) {
    std::error_code ec;
    for (const auto& entry : fs::directory_iterator(root, ec)) {
        const std::string name = entry.path().filename().string();
        if (!name.empty() && name[0] != '.' && entry.is_directory(ec)) return true;
    }
    return false;
}

// The private runtime directory, mode 0700: $XDG_RUNTIME_DIR/medimg-{port}-XXXXXX,
// else /tmp/medimg-{uid}-{port}-XXXXXX. Several instances never share one.
fs::path make_runtime_dir(int port) {
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    std::error_code ec;
    std::string pattern;
    if (xdg && *xdg && fs::is_directory(xdg, ec) && ::access(xdg, W_OK) == 0)
        pattern = std::string(xdg) + "/medimg-" + std::to_string(port) + "-XXXXXX";
    else
        pattern = "/tmp/medimg-" + std::to_string(::getuid()) + "-" + std::to_string(port) + "-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr)
        throw Error(ErrorCode::Io,
                    "cannot create a runtime directory " + pattern + ": " + std::strerror(errno));
    ::chmod(buf.data(), 0700);
    return fs::path(buf.data());
}

struct RuntimeDir {
    fs::path path;
    ~RuntimeDir() {
        if (path.empty()) return;
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

int serve(const Args& args) {
    const ParsedArgs parsed = parse_args(args, kOptions);
    if (print_help(parsed, kUsage)) return 0;
    if (!parsed.positional.empty())
        throw Error(ErrorCode::BadParameter, "unexpected argument '" + parsed.positional[0] + "'");

    // Configuration: flags over the environment (MEDIMG_*, IMAGE_SERVER,
    // OUTPUT_FOLDER) over .env over the ini over built-in defaults.
    ConfigSources sources;
    if (auto v = parsed.value("--config")) sources.ini_file = fs::absolute(*v);
    sources.environment = environment_map();
    std::error_code ec;
    sources.working_dir = fs::current_path(ec);
    sources.dotenv_dir = sources.working_dir;
    const std::map<std::string, std::string> flag_keys = {
        {"--host", "server.host"},          {"--port", "server.port"},
        {"--data-root", "paths.data_root"}, {"--workers", "server.workers"},
        {"--threads", "server.threads"},    {"--cache-dir", "paths.cache_dir"},
        {"--cors-origins", "server.cors_origins"}};
    for (const auto& [flag, key] : flag_keys)
        if (auto v = parsed.value(flag)) sources.flags[key] = *v;
    if (parsed.has("--disable-dir-listing")) sources.flags["server.dir_listing"] = "false";
    const fs::path exe = current_executable();
    const DataDirs dirs = find_data_dirs(exe);
    sources.conf_dir = dirs.conf_dir;
    sources.share_dir = dirs.share_dir;
    Config config = load_config(sources);
    if (!sources.ini_file) {
        const auto named = sources.environment.find("MEDIMG_CONFIG");
        if (named != sources.environment.end() && !named->second.empty())
            sources.ini_file = fs::absolute(named->second);
    }

    if (config.port < 1 || config.port > 65535)
        throw Error(ErrorCode::BadParameter, "server.port: out of range: " + std::to_string(config.port));
    if (config.workers < 1 || config.workers > 256)
        throw Error(ErrorCode::BadParameter,
                    "server.workers: must be 1..256, got " + std::to_string(config.workers));

    const fs::path lighttpd_dir = dirs.share_dir / "lighttpd";
    const fs::path template_file = lighttpd_dir / "medimg-serve.conf.in";
    if (!fs::exists(template_file, ec))
        throw Error(ErrorCode::NotFound, "lighttpd template not found: " + template_file.string());
    // lighttpd/cors.lua reads the CORS header values from this one list
    // (docs/SECURITY.md, "CORS"): refuse to start rather than fail each answer.
    const fs::path cors_headers = dirs.share_dir / "apache" / "cors-headers.conf";
    if (!config.cors_origins.empty() && !fs::exists(cors_headers, ec))
        throw Error(ErrorCode::NotFound, "CORS header list not found: " + cors_headers.string());
    // Build tree: {build}/cli/medimg and {build}/fcgi/medimg-fcgi; installed:
    // both in {prefix}/bin.
    fs::path worker_binary = exe.parent_path().parent_path() / "fcgi" / "medimg-fcgi";
    if (::access(worker_binary.c_str(), X_OK) != 0) worker_binary = exe.parent_path() / "medimg-fcgi";
    if (::access(worker_binary.c_str(), X_OK) != 0)
        throw Error(ErrorCode::NotFound, "medimg-fcgi not found next to " + exe.string());
    const fs::path lighttpd =
        find_program("lighttpd", {"/usr/sbin/lighttpd", "/usr/local/sbin/lighttpd"});
    if (lighttpd.empty())
        throw Error(ErrorCode::NotFound, "lighttpd not found in PATH or /usr/sbin (apt-get install lighttpd)");

    // The data root: created if missing; a demo patient when it holds none.
    fs::path data_root = fs::absolute(config.data_root).lexically_normal();
    if (data_root.has_parent_path() && data_root.filename().empty()) data_root = data_root.parent_path();
    fs::create_directories(data_root, ec);
    if (!fs::is_directory(data_root, ec))
        throw Error(ErrorCode::NotFound, "data root is not a directory: " + data_root.string());
    data_root = fs::canonical(data_root);
    config.data_root = data_root;

    // A closed stdout (`medimg serve | head`) must not end us before
    // lighttpd and the workers are stopped.
    std::signal(SIGPIPE, SIG_IGN);
    sigset_t stop_signals, old_mask, child_mask;
    sigemptyset(&stop_signals);
    for (int s : {SIGINT, SIGTERM, SIGHUP, SIGCHLD}) sigaddset(&stop_signals, s);
    pthread_sigmask(SIG_BLOCK, &stop_signals, &old_mask);
    sigemptyset(&child_mask);

    if (!has_patient_folders(data_root)) {
        std::vector<std::string> demo_args = {exe.string(), "demo", data_root.string()};
        if (const char* size = std::getenv("MEDIMG_DEMO_SIZE"); size && *size) {
            demo_args.push_back("--size");
            demo_args.push_back(size);
        }
        std::string shown;
        for (std::size_t i = 1; i < demo_args.size(); ++i) shown += " " + demo_args[i];
        std::printf("No patient folders in %s: generating a demo patient (medimg%s)...\n",
                    data_root.c_str(), shown.c_str());
        std::fflush(stdout);
        const pid_t demo = spawn(demo_args, child_mask, false);
        if (const int rc = wait_exit_code(demo); rc != 0)
            throw Error(ErrorCode::Io, "medimg demo failed (exit code " + std::to_string(rc) + ")");
    }

    const std::string bind = resolve_host(config.host);
    if (is_any_address(bind))
        std::fprintf(stderr, "medimg serve: warning: %s binds every interface\n", config.host.c_str());

    RuntimeDir runtime{make_runtime_dir(config.port)};
    fs::create_directory(runtime.path / "empty");
    const auto cache_origin = config.origin.find("paths.cache_dir");
    const bool default_cache =
        cache_origin == config.origin.end() || cache_origin->second == "default";
    fs::path cache_dir = default_cache ? runtime.path / "cache" : fs::absolute(config.cache_dir);
    // Private whatever the umask (docs/SECURITY.md): the worker refuses a
    // cache directory others may write and sets 0700 on the rest.
    if (!fs::is_directory(cache_dir, ec)) {
        fs::create_directories(cache_dir.parent_path(), ec);
        ::mkdir(cache_dir.c_str(), 0700);
    }
    if (!fs::is_directory(cache_dir, ec))
        throw Error(ErrorCode::Io, "cannot create cache directory " + cache_dir.string());
    cache_dir = fs::canonical(cache_dir);

    // lighttpd appends "-0" … "-N" to the socket name.
    const fs::path socket = runtime.path / "fcgi.sock";
    if (socket.string().size() + 5 > sizeof(sockaddr_un{}.sun_path))
        throw Error(ErrorCode::BadParameter,
                    "runtime directory path too long for a socket: " + runtime.path.string());

    // lighttpd splits bin-path at spaces.
    const auto no_spaces = [](const std::string& s, std::string_view what) {
        if (s.find(' ') != std::string::npos)
            throw Error(ErrorCode::BadParameter,
                        std::string(what) + ": a path with spaces cannot start the workers: " + s);
        return conf_string(s, what);
    };
    std::string worker_command = no_spaces(worker_binary.string(), "medimg-fcgi") +
                                 " --threads " + std::to_string(config.threads);
    if (sources.ini_file) worker_command += " --config " + no_spaces(sources.ini_file->string(), "--config");
    std::string environment;
    for (const auto& [name, value] : worker_environment(config, cache_dir))
        environment += "    \"" + name + "\" => \"" + conf_string(value, name) + "\",\n";
    if (!environment.empty()) environment.pop_back();

    const fs::path www_root = fs::absolute(config.www_root).lexically_normal();
    const std::map<std::string, std::string> values = {
        // lighttpd 1.4.69 takes an IPv6 address in brackets, without server.use-ipv6.
        {"HOST", is_ipv6(bind) ? "[" + bind + "]" : bind},
        {"PORT", std::to_string(config.port)},
        {"RUNTIME_DIR", conf_string(runtime.path.string(), "runtime directory")},
        {"ACCESS_LOG", parsed.has("--quiet") ? "/dev/null" : "/dev/stderr"},
        {"DATA_ROOT", conf_string(data_root.string(), "data root")},
        {"WWW_ROOT", conf_string(www_root.string(), "paths.www_root")},
        {"LIGHTTPD_DIR", conf_string(lighttpd_dir.string(), "share directory")},
        {"CACHE_DIR", conf_string(cache_dir.string(), "paths.cache_dir")},
        {"DIR_LISTING", config.dir_listing ? "enable" : "disable"},
        // lighttpd/cors.lua applies the allow-list; empty: no CORS headers.
        {"CORS_ORIGINS", conf_string(join(config.cors_origins, " "), "server.cors_origins")},
        {"SOCKET", conf_string(socket.string(), "socket")},
        {"WORKER_COMMAND", worker_command},
        {"WORKERS", std::to_string(config.workers)},
        {"WORKER_ENVIRONMENT", environment},
    };
    const fs::path conf_file = runtime.path / "lighttpd.conf";
    write_text(conf_file, render(read_text(template_file), values));

    // Check the configuration before serving.
    {
        const fs::path check_log = runtime.path / "check.log";
        const int fd = ::open(check_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        const pid_t check = spawn({lighttpd.string(), "-tt", "-f", conf_file.string()}, child_mask,
                                  false, fd);
        if (fd >= 0) ::close(fd);
        if (const int rc = wait_exit_code(check); rc != 0) {
            std::fprintf(stderr, "medimg serve: lighttpd rejects the configuration %s:\n%s",
                         conf_file.c_str(), read_text(check_log).c_str());
            return 1;
        }
    }

    // Workers are reparented to us if lighttpd dies first, so none outlives
    // `medimg serve`. lighttpd gets its own process group: a Ctrl-C reaches
    // us, and we stop it in order.
    ::prctl(PR_SET_CHILD_SUBREAPER, 1);
    const pid_t server = spawn({lighttpd.string(), "-D", "-f", conf_file.string()}, child_mask, true);

    const std::string host_in_url = is_ipv6(bind) ? "[" + bind + "]" : bind;
    const std::string url = "http://" + host_in_url + ":" + std::to_string(config.port) + "/";
    bool announced = false;
    bool server_alive = true;
    int exit_code = 0;
    const auto started = std::chrono::steady_clock::now();
    for (;;) {
        if (!announced && port_answers(bind, config.port)) {
            announced = true;
            std::printf("Serving %s on %s\n", data_root.c_str(), url.c_str());
            std::printf("  browse  %soutput/%s\n", url.c_str(),
                        config.dir_listing ? "" : "  (directory listings disabled)");
            std::printf("  viewer  %sviewer.html\n", url.c_str());
            std::printf("  workers %d x %d threads, cache %s\n", config.workers, config.threads,
                        cache_dir.c_str());
            std::printf("Press Ctrl-C to stop.\n");
            std::fflush(stdout);
        }
        if (!announced && std::chrono::steady_clock::now() - started > std::chrono::seconds(15)) {
            std::fprintf(stderr, "medimg serve: lighttpd does not answer on %s\n", url.c_str());
            exit_code = 1;
            break;
        }
        timespec timeout{0, announced ? 500'000'000L : 50'000'000L};
        const int sig = ::sigtimedwait(&stop_signals, nullptr, &timeout);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            std::printf("Stopping (%s)\n", sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : "SIGHUP");
            std::fflush(stdout);
            break;
        }
        int status = 0;
        if (::waitpid(server, &status, WNOHANG) == server) {
            server_alive = false;
            std::fprintf(stderr, "medimg serve: lighttpd exited unexpectedly (%s %d)\n",
                         WIFEXITED(status) ? "exit code" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            exit_code = 1;
            break;
        }
        // Orphaned workers (lighttpd restarted one) end up here: reap them.
        std::vector<pid_t> others;
        for (pid_t p : own_children())
            if (p != server) others.push_back(p);
        reap(others);
    }

    if (server_alive) {
        // SIGTERM: lighttpd stops at once and terminates its bin-path workers.
        ::kill(server, SIGTERM);
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
        int status = 0;
        pid_t done = 0;
        while ((done = ::waitpid(server, &status, WNOHANG)) == 0 &&
               std::chrono::steady_clock::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (done == 0) {
            ::kill(server, SIGKILL);
            ::waitpid(server, &status, 0);
        }
    }
    stop_children(std::chrono::milliseconds(3000));
    pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    return exit_code;
}

}  // namespace

int run_serve(const Args& args) {
    return run_guarded("serve", [&] { return serve(args); });
}

}  // namespace medimg::cli
